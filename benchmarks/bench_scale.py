"""Scale: how many vehicles one replica serves when each posts a 1 s batch of 10 Hz samples
(10 motor samples, columns in msgpack as the client sends them) every second, with p99 latency
under 100 ms; and the same with two replicas on a Redis hub behind nginx.

The load is open-loop: every vehicle has its own keep-alive connection and a send time each
second (spread over the second); latency runs from the planned send time to the last byte of
the answer, so a late answer delays the next request's clock too (no coordinated omission).
The load generator is one asyncio process with prebuilt requests (about 20 us of client CPU
per request); the service and the generator share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import msgpack
import numpy as np

from benchmarks.common import goal, machine, table
from clients.python.columns import binary_columns

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.deploy import start_nginx  # noqa: E402
from support.processes import RedisServer, start_services  # noqa: E402

P99_GOAL_MS = 100.0
RUN_S = 8.0
BATCH = 10  # samples per request: 1 s of 10 Hz


def step_request(host: str, vehicle_id: str) -> bytes:
    """A POST /step of one second of motor samples for `vehicle_id`, restarting its twin from
    a new pack each time (options.replace), stored and published as a chained step would be."""
    t = np.arange(BATCH) * 0.1
    columns = {
        "dt_s": [0.1] * BATCH,
        "motors": [{"torque_nm": (120.0 + 30.0 * np.sin(t)).tolist(),
                    "speed_rad_s": (310.0 + 5.0 * t).tolist()}],
        "wheel_speed_m_s": (12.3 + 0.2 * t).tolist(),
    }  # fmt: skip
    body = msgpack.packb(
        {"vehicle_id": vehicle_id, "samples": binary_columns(columns), "options": {"replace": True}}
    )
    head = (
        f"POST /step HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/msgpack\r\n"
        f"Accept: application/msgpack\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _vehicle(
    host: str, port: int, request: bytes, phase_s: float, t0: float, end: float, out: list
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    planned = t0 + phase_s
    try:
        while planned < end:
            delay = planned - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            status = await _read_response(reader)
            out.append((planned, loop.time() - planned, status))
            planned += 1.0
    finally:
        writer.close()


async def _run(
    url: str, vehicles: int, seconds: float
) -> tuple[float, float, float, dict[int, int]]:
    """(p50 ms, p99 ms, answers per second, {status: count} of the answers other than 200)
    of `vehicles` posting each second."""
    host, port = url.removeprefix("http://").split(":")
    requests = [step_request(host, f"scale-{i:05d}") for i in range(vehicles)]
    rng = random.Random(1)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 1.0  # connections open first
    warm = t0 + 1.0  # the first second is left out
    end = t0 + seconds
    results: list[tuple[float, float, int]] = []
    await asyncio.gather(
        *(_vehicle(host, int(port), r, rng.random(), t0, end, results) for r in requests)
    )
    kept = [(latency, status) for planned, latency, status in results if planned >= warm]
    lat = sorted(latency for latency, _ in kept)
    errors = dict(Counter(status for _, status in kept if status != 200))
    p50 = statistics.median(lat) * 1e3
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3
    return p50, p99, len(kept) / (end - warm), errors


def ramp(url: str, counts: list[int]) -> tuple[list[list[object]], int]:
    """Rows per vehicle count and the largest count with p99 under the goal and no errors."""
    rows: list[list[object]] = []
    best = 0
    for n in counts:
        p50, p99, rate, errors = asyncio.run(_run(url, n, RUN_S))
        ok = p99 < P99_GOAL_MS and not errors and rate >= 0.95 * n
        shown = ", ".join(f"{count} x {status}" for status, count in sorted(errors.items()))
        rows.append([n, rate, p50, p99, shown or 0, "yes" if ok else "no"])
        print(f"[scale] {n} vehicles: {rate:.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
              + (f", answers other than 200: {shown}" if shown else ""), flush=True)  # fmt: skip
        if not ok:
            break
        best = n
    return rows, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--counts",
        default=",".join(str(c) for c in range(100, 3001, 100)),
        help="vehicle counts to try, ascending (each run until p99 passes the goal)",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    header = ["vehicles", "answers/s", "p50 ms", "p99 ms", "errors (count x status)",
              "p99 < 100 ms"]  # fmt: skip
    os.environ.setdefault("TWIN_LOG_LEVEL", "warning")
    with RedisServer() as redis, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        redis.start()
        (one,) = stack.enter_context(start_services(1, hub_url=redis.url))
        rows_one, best_one = ramp(one, counts)
        stack.close()
        urls = stack.enter_context(start_services(2, hub_url=redis.url))
        upstreams = [u.removeprefix("http://") for u in urls]
        nginx = stack.enter_context(start_nginx(upstreams, Path(tmp)))
        rows_two, best_two = ramp(nginx.url, [c for c in counts if c >= best_one // 2] or counts)
    cores = os.cpu_count()
    table(f"Scale: one replica, Redis hub ({machine()})", header, rows_one)
    table(f"Scale: two replicas behind nginx, one Redis hub ({machine()})", header, rows_two)
    ratio = best_two / best_one if best_one else float("nan")
    print(
        f"\nVehicles at 10 Hz (1 s batches) with p99 < {P99_GOAL_MS:g} ms: one replica "
        f"{best_one}, two replicas {best_two} ({ratio:.2f}x; goal >= 1.7x). This machine has "
        f"{cores} cores for the replicas, nginx, Redis and the load generator together."
    )
    goal("Vehicles one replica sustains at 10 Hz, p99 < 100 ms", best_one, None, "vehicles")
    goal("Two replicas behind nginx x one replica (vehicles)", ratio, 1.7)


if __name__ == "__main__":
    main()
