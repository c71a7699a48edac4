"""HTTP: single-sample POST /step requests per second against GET /health on the same server
and settings. Load generator: wrk (C, event-driven, one thread on the second core), so the
generator is not the bottleneck."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import msgpack
import orjson

from benchmarks.common import goal, machine, service, table
from clients.python.columns import binary_columns, to_columns

DURATION_S = 8
CONNECTIONS = 32


def wrk(url: str, script: Path | None = None) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms)."""
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError("non-2xx responses under load:\n" + out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return rps, pct("50"), pct("99")


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_http: skipped, wrk is not installed (apt-get install wrk)")
        return
    with service() as url, tempfile.TemporaryDirectory() as tmp:
        first = httpx.post(
            url + "/step",
            json={
                "vehicle_id": "http-bench",
                "samples": [{"dt_s": 0.1, "power_kw": 20.0}],
                "options": {"replace": True},
            },
        ).json()
        request = {
            "vehicle_id": "http-bench",
            "state": first["state"],
            "samples": [
                {
                    "dt_s": 0.1,
                    "motors": [{"torque_nm": 120.0, "speed_rad_s": 310.0}],
                    "wheel_speed_m_s": 12.3,
                    "ambient_c": 25.0,
                }
            ],
            # wrk repeats one body: each request restarts the twin from the same state
            # (stored and published as a chained step would be).
            "options": {"replace": True},
        }
        json_body = Path(tmp) / "step.json"
        json_body.write_bytes(orjson.dumps(request))
        packed = {**request, "samples": binary_columns(to_columns(request["samples"]) or {})}
        msgpack_body = Path(tmp) / "step.msgpack"
        msgpack_body.write_bytes(msgpack.packb(packed))
        scripts = []
        for name, path, headers in (
            ("json", json_body, {"Content-Type": "application/json"}),
            ("msgpack", msgpack_body,
             {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}),
        ):  # fmt: skip
            script = Path(tmp) / f"step-{name}.lua"
            lines = ['wrk.method = "POST"']
            lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
            lines.append(f'local f = io.open("{path}", "rb")\nwrk.body = f:read("*a")\nf:close()')
            script.write_text("\n".join(lines) + "\n")
            scripts.append(script)
        wrk(url + "/health")  # warm-up
        health = wrk(url + "/health")
        step = wrk(url + "/step", scripts[0])
        step_packed = wrk(url + "/step", scripts[1])
    rows = [
        ["GET /health (baseline)", health[0], health[1], health[2], 1.0],
        ["POST /step, 1 sample with state (JSON row)", step[0], step[1], step[2],
         step[0] / health[0]],
        ["POST /step, 1 sample with state (msgpack columns, as the client sends)",
         step_packed[0], step_packed[1], step_packed[2], step_packed[0] / health[0]],
    ]  # fmt: skip
    table(
        f"HTTP: one uvicorn worker, wrk -t1 -c{CONNECTIONS} ({machine()})",
        ["request", "req/s", "p50 ms", "p99 ms", "x /health"],
        rows,
    )
    print("\nGoal: /step >= 0.7 x /health.")
    goal("Single-sample POST /step (JSON row) x GET /health, req/s", step[0] / health[0], 0.7)
    goal("Single-sample POST /step (msgpack columns) x GET /health, req/s",
         step_packed[0] / health[0], 0.7)  # fmt: skip


if __name__ == "__main__":
    main()
