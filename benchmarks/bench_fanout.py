"""WebSocket fan-out: messages per second one replica delivers to 100 clients, and the delay
from POST /step on replica A to delivery on replica B (both replicas on one private Redis).

    python -m benchmarks.bench_fanout [--clients 100] [--steps 1000] [--latency-steps 500]

The clients run in two separate processes (so the figure is the service's, as far as the
machine's cores allow); steps are single-sample POST /step requests from 4 concurrent posters.
Fan-out is measured with and without permessage-deflate, which browsers negotiate by default
and which costs the service one compression per client per message.

Issue 7 adds delivery latency under load, on one service process with the memory hub:
(a) 1,000 subscribers of one vehicle stepping at 10 steps/s, and (b) 1,000 vehicles stepping at
1 step/s each (1,000 steps/s, spread evenly) to 10 /ws/fleet subscribers; each against a light
baseline of the same path measured in the same run. Latency is from the moment the poster
writes POST /step to the moment a client's socket read returns the message, both on
CLOCK_MONOTONIC (one clock for every process of the machine); the rev in the HTTP response
ties each message to its send time. Nothing is added to the API.

The load side is kept light so that the service is what is measured: the subscribers are
hand-written asyncio WebSocket clients (handshake by hand, frames parsed in `data_received`,
no compression offered, messages parsed only after the run) on uvloop in two worker processes,
and the poster is a raw HTTP/1.1 keep-alive client on uvloop in this process. The CPU each
process used during the run is printed so the reader can see who was saturated.

    python -m benchmarks.bench_fanout --only issue7 [--subscribers 1000] [--load-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.common import machine, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.processes import RedisServer, ServiceProcess, start_services  # noqa: E402

CLIENT_PROCESSES = 2
POSTERS = 4


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


# -- fan-out --------------------------------------------------------------------------------


def _client_process(
    url: str, count: int, last_rev: int, compression: str | None, ready: Any, results: Any
) -> None:
    asyncio.run(_clients(url, count, last_rev, compression, ready, results))


async def _clients(
    url: str, count: int, last_rev: int, compression: str | None, ready: Any, results: Any
) -> None:
    from websockets.asyncio.client import connect

    conns = [await connect(url, compression=compression, max_size=None) for _ in range(count)]
    ready.put(count)

    async def consume(ws: Any) -> tuple[int, int, float, float]:
        received = gaps = 0
        first = last = 0.0
        prev = None
        while True:
            message = json.loads(await ws.recv())
            now = time.time()
            first = first or now
            last = now
            received += 1
            if prev is not None and message["rev"] != prev + 1:
                gaps += 1
            prev = message["rev"]
            if prev >= last_rev:
                return received, gaps, first, last

    try:
        stats = await asyncio.wait_for(asyncio.gather(*(consume(ws) for ws in conns)), 120)
    finally:
        for ws in conns:
            await ws.close()
    results.put(stats)


async def _post_steps(base_url: str, vehicle_id: str, steps: int) -> float:
    """Post `steps` single-sample steps from POSTERS concurrent posters; returns seconds."""
    body = {
        "vehicle_id": vehicle_id,
        "samples": [{"dt_s": 0.1, "power_kw": 20.0}],
        "options": {"replace": True},
    }
    remaining = steps
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def poster() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                resp = await client.post("/step", json=body)
                resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(POSTERS)))
        return time.perf_counter() - started


def fanout(
    base_url: str, clients: int, steps: int, compression: str | None, vehicle_id: str
) -> list[Any]:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    per_process = [
        clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES)
        for i in range(CLIENT_PROCESSES)
    ]
    url = ws_url(base_url, f"/ws/vehicles/{vehicle_id}")
    procs = [
        ctx.Process(target=_client_process, args=(url, n, steps, compression, ready, results))
        for n in per_process
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    started = time.time()
    post_s = asyncio.run(_post_steps(base_url, vehicle_id, steps))
    stats = [s for _ in procs for s in results.get(timeout=180)]
    for p in procs:
        p.join(30)
    received = sum(s[0] for s in stats)
    gaps = sum(s[1] for s in stats)
    elapsed = max(s[3] for s in stats) - started
    return [
        clients,
        "deflate" if compression else "off",
        steps,
        f"{steps / post_s:.0f}",
        f"{received / elapsed:.0f}",
        f"{received / (clients * steps):.1%}",
        gaps,
        f"{elapsed:.2f}",
    ]


# -- cross-replica latency ------------------------------------------------------------------


async def latency(url_a: str, url_b: str, steps: int) -> list[list[Any]]:
    from websockets.asyncio.client import connect

    body = {
        "vehicle_id": "bench-latency",
        "samples": [{"dt_s": 0.1, "power_kw": 20.0}],
        "options": {"replace": True},
    }
    delivery_ms: list[float] = []
    response_ms: list[float] = []
    async with (
        connect(ws_url(url_b, "/ws/vehicles/bench-latency")) as ws,
        httpx.AsyncClient(base_url=url_a, timeout=10) as client,
    ):
        await client.post("/step", json=body)  # warm up both sides
        while json.loads(await ws.recv())["type"] != "state":
            pass
        for _ in range(steps):
            t0 = time.perf_counter()
            post = asyncio.create_task(client.post("/step", json=body))
            message = json.loads(await ws.recv())
            delivery_ms.append((time.perf_counter() - t0) * 1000)
            resp = await post
            response_ms.append((time.perf_counter() - t0) * 1000)
            assert resp.json()["rev"] == message["rev"]

    def row(name: str, values: list[float]) -> list[Any]:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return [
            name,
            len(values),
            f"{statistics.median(values):.2f}",
            f"{p99:.2f}",
            f"{ordered[-1]:.2f}",
        ]

    return [
        row("POST /step on A -> message on B's WebSocket", delivery_ms),
        row("POST /step on A -> HTTP response (for comparison)", response_ms),
    ]


# -- issue 7: delivery latency under load (memory hub, one service process) ---------------------

LOAD_CLIENT_PROCESSES = 2
POST_CONNECTIONS = 16  # keep-alive connections of the paced poster
HANDSHAKE_CONCURRENCY = 64  # WebSocket handshakes in flight per client process
SETTLE_S = 0.5  # after the clients are connected (snapshots go out), before posting
DRAIN_S = 1.0  # after the last post, before the clients stop listening
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _run_uvloop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro)
    return uvloop.run(coro)


class _RawWebSocket(asyncio.Protocol):
    """About the lightest WebSocket client Python allows: the handshake written by hand, frames
    parsed in `data_received`, the receive time taken once per socket read, and messages kept
    as bytes until the run is over. No extension is offered, so the server does not compress.
    Pings are answered; a close frame is recorded and answered."""

    def __init__(self, host_port: str, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages: list[tuple[float, bytes]] = []
        self.close_code: int | None = None
        self.lost = False
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if status_line.split(b" ")[1:2] != [b"101"]:
                self.opened.set_exception(ConnectionError(status_line.decode(errors="replace")))
                self._close_transport()
                return
            self._upgraded = True
            self.opened.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:  # servers never mask (RFC 6455 5.1)
                self._close_transport()
                return
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode in (0, 1, 2):
                if b0 & 0x80 and not self._fragments:
                    self.messages.append((now, payload))
                elif b0 & 0x80:
                    self.messages.append((now, b"".join([*self._fragments, payload])))
                    self._fragments.clear()
                else:
                    self._fragments.append(payload)
            elif opcode == 9:
                self._send(0xA, payload)
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._send(0x8, payload[:2])
                self._close_transport()
                return
        del buf[:pos]

    def _send(self, opcode: int, payload: bytes) -> None:
        """A masked frame (clients must mask); only control frames, so < 126 bytes."""
        if self._transport is None or self._transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self._transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def _close_transport(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def close(self) -> None:
        self._send(0x8, (1000).to_bytes(2, "big"))
        self._close_transport()


def _load_worker(commands: Any, replies: Any) -> None:
    """A client process: serves ("connect", host, port, paths) then "stop", until None."""
    _run_uvloop(_load_worker_main(commands, replies))


async def _open_ws(
    loop: asyncio.AbstractEventLoop, gate: asyncio.Semaphore, host: str, port: int, path: str
) -> _RawWebSocket:
    async with gate:
        _, proto = await loop.create_connection(
            lambda: _RawWebSocket(f"{host}:{port}", path), host, port
        )
        await asyncio.wait_for(proto.opened, 30)
        return proto


async def _load_worker_main(commands: Any, replies: Any) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command = await asyncio.to_thread(commands.get)
        if command is None:
            return
        _, host, port, paths = command
        gate = asyncio.Semaphore(HANDSHAKE_CONCURRENCY)
        outcomes = await asyncio.gather(
            *(_open_ws(loop, gate, host, port, p) for p in paths), return_exceptions=True
        )
        conns = [c for c in outcomes if isinstance(c, _RawWebSocket)]
        errors = [repr(c) for c in outcomes if not isinstance(c, _RawWebSocket)]
        replies.put(("ready", len(conns), errors[:3]))
        await asyncio.to_thread(commands.get)  # "stop"
        closed = [c.close_code for c in conns if c.close_code is not None]
        lost = sum(c.lost for c in conns)
        for conn in conns:
            conn.close()
        received = []
        for conn in conns:
            states = []
            for t, payload in conn.messages:
                message = orjson.loads(payload)
                if message["type"] == "state":
                    states.append((message["vehicle_id"], message["rev"], t))
            received.append(states)
        replies.put(("done", received, closed, lost))


class LoadClients:
    """LOAD_CLIENT_PROCESSES client processes, kept for every scenario (one spawn each)."""

    def __init__(self, processes: int = LOAD_CLIENT_PROCESSES) -> None:
        ctx = mp.get_context("spawn")
        self.replies = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(processes)]
        self.procs = [
            ctx.Process(target=_load_worker, args=(q, self.replies), daemon=True)
            for q in self.commands
        ]
        for proc in self.procs:
            proc.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def connect(self, host: str, port: int, paths: list[str]) -> None:
        n = len(self.commands)
        for i, queue in enumerate(self.commands):
            queue.put(("connect", host, port, paths[i::n]))
        connected, errors = 0, []
        for _ in self.commands:
            _, count, errs = self.replies.get(timeout=120)
            connected += count
            errors += errs
        if connected != len(paths):
            raise RuntimeError(
                f"only {connected} of {len(paths)} WebSocket clients connected: {errors}"
            )

    def collect(self) -> tuple[list[list[tuple[str, int, float]]], list[int], int]:
        for queue in self.commands:
            queue.put("stop")
        received: list[list[tuple[str, int, float]]] = []
        closed: list[int] = []
        lost = 0
        for _ in self.commands:
            _, rec, codes, n_lost = self.replies.get(timeout=120)
            received += rec
            closed += codes
            lost += n_lost
        return received, closed, lost

    def close(self) -> None:
        for queue in self.commands:
            queue.put(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()


@dataclass
class PostResult:
    sent: dict[tuple[str, int], float] = field(default_factory=dict)  # (vehicle, rev) -> t
    response_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first: float = 0.0
    last: float = 0.0


def step_request(host: str, port: int, vehicle_id: str, dt_s: float) -> bytes:
    body = orjson.dumps(
        {
            "vehicle_id": vehicle_id,
            "samples": [{"dt_s": dt_s, "power_kw": 20.0}],
            "options": {"replace": True},
        }
    )
    return (
        f"POST /step HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def paced_posts(
    host: str, port: int, plan: list[tuple[float, str, bytes]], connections: int = POST_CONNECTIONS
) -> PostResult:
    """Send each (offset_s, vehicle_id, request) at its offset from now, over `connections`
    keep-alive connections; a request waits for a free connection if all are busy (so the
    rate actually posted is reported, not assumed)."""
    result = PostResult()
    next_item = 0
    start = time.monotonic() + 0.05

    async def worker() -> None:
        nonlocal next_item
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_item < len(plan):
                offset, vehicle_id, request = plan[next_item]
                next_item += 1
                delay = start + offset - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.monotonic()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                match = _CONTENT_LENGTH.search(head)
                body = await reader.readexactly(int(match.group(1)) if match else 0)
                t1 = time.monotonic()
                if head[9:12] != b"200":
                    result.errors += 1
                    continue
                result.sent[(vehicle_id, orjson.loads(body)["rev"])] = t0
                result.response_ms.append((t1 - t0) * 1000)
                result.first = min(result.first or t0, t0)
                result.last = max(result.last, t0)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(connections, len(plan)))))
    return result


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Scenario:
    name: str
    feed: str
    subscribers: int
    vehicles: int
    steps_per_s: float
    paths: list[str]
    plan: list[tuple[float, str, bytes]]


def one_vehicle(
    host: str,
    port: int,
    name: str,
    vehicle_id: str,
    subscribers: int,
    steps_per_s: float,
    seconds: float,
) -> Scenario:
    request = step_request(host, port, vehicle_id, 1 / steps_per_s)
    steps = round(steps_per_s * seconds)
    return Scenario(
        name,
        "vehicle",
        subscribers,
        1,
        steps_per_s,
        [f"/ws/vehicles/{vehicle_id}"] * subscribers,
        [(i / steps_per_s, vehicle_id, request) for i in range(steps)],
    )


def fleet(
    host: str,
    port: int,
    name: str,
    prefix: str,
    vehicles: int,
    hz: float,
    subscribers: int,
    seconds: float,
) -> Scenario:
    ids = [f"{prefix}{i:05d}" for i in range(vehicles)]
    requests = [step_request(host, port, v, 1 / hz) for v in ids]
    rate = vehicles * hz
    steps = round(rate * seconds)
    return Scenario(
        name,
        "fleet",
        subscribers,
        vehicles,
        rate,
        ["/ws/fleet"] * subscribers,
        [(i / rate, ids[i % vehicles], requests[i % vehicles]) for i in range(steps)],
    )


def run_scenario(
    scenario: Scenario,
    service_pid: int,
    port: int,
    clients: LoadClients,
    py_spy: list[str] | None = None,
) -> dict[str, Any]:
    """Connect the subscribers, post the plan, collect. `py_spy`: a py-spy command to run on
    the service while posting (its output is the caller's business)."""
    host = "127.0.0.1"
    clients.connect(host, port, scenario.paths)
    time.sleep(SETTLE_S)
    spy = None
    if py_spy:
        spy = subprocess.Popen(py_spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
    pids = {"service": [service_pid], "poster": [os.getpid()], "clients": clients.pids}
    cpu0 = {k: [_cpu_seconds(p) for p in v] for k, v in pids.items()}
    ticks0, wall0 = _machine_ticks(), time.monotonic()
    posted = _run_uvloop(paced_posts(host, port, scenario.plan))
    cpu1 = {k: [_cpu_seconds(p) for p in v] for k, v in pids.items()}
    ticks1, wall = _machine_ticks(), time.monotonic() - wall0
    time.sleep(DRAIN_S)
    received, closed, lost = clients.collect()
    if spy is not None:
        spy.wait(60)
    latencies = sorted(
        (t - posted.sent[(v, rev)]) * 1000
        for conn in received
        for v, rev, t in conn
        if (v, rev) in posted.sent
    )
    cpu = {
        k: [
            (max(0.0, b[0] + b[1] - a[0] - a[1]) / wall * 100, max(0.0, b[1] - a[1]) / wall * 100)
            for a, b in zip(cpu0[k], cpu1[k], strict=True)
        ]
        for k in pids
    }
    steps = len(posted.sent)
    span = posted.last - posted.first
    return {
        "scenario": scenario,
        "latencies": latencies,
        "expected": steps * scenario.subscribers,
        "steps": steps,
        "errors": posted.errors,
        "rate": (steps - 1) / span if span > 0 else float("nan"),
        "response_ms": sorted(posted.response_ms),
        "closed": closed,
        "lost": lost,
        "cpu": cpu,
        "machine": (ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1]) * 100,
        "wall": wall,
    }


def latency_row(r: dict[str, Any], base: dict[str, Any] | None) -> list[Any]:
    s: Scenario = r["scenario"]
    lat, resp = r["latencies"], r["response_ms"]
    p50, p99 = (_pct(lat, 0.5), _pct(lat, 0.99)) if lat else (float("nan"), float("nan"))
    if base is None:
        ratio = "baseline"
    else:
        b = base["latencies"]
        ratio = f"{p50 / _pct(b, 0.5):.1f}x / {p99 / _pct(b, 0.99):.1f}x" if lat and b else "-"
    delivered = f"{len(lat)} / {r['expected']}"
    if r["closed"] or r["lost"]:
        delivered += f" ({len(r['closed'])} closed {sorted(set(r['closed']))}, {r['lost']} lost)"
    if r["errors"]:
        delivered += f" ({r['errors']} POST errors)"
    return [
        s.name,
        s.feed,
        s.subscribers,
        s.vehicles,
        f"{s.steps_per_s:g}",
        f"{r['rate']:.0f}",
        delivered,
        f"{p50:.1f}",
        f"{p99:.1f}",
        f"{lat[-1] if lat else float('nan'):.1f}",
        ratio,
        f"{_pct(resp, 0.5):.1f} / {_pct(resp, 0.99):.1f} / {resp[-1]:.1f}" if resp else "-",
    ]


def cpu_row(r: dict[str, Any]) -> list[Any]:
    def fmt(values: list[tuple[float, float]]) -> str:
        return " + ".join(f"{total:.0f} (sys {system:.0f})" for total, system in values)

    cpu = r["cpu"]
    return [
        r["scenario"].name,
        fmt(cpu["service"]),
        fmt(cpu["poster"]),
        fmt(cpu["clients"]),
        f"{r['machine']:.0f}",
        f"{r['wall']:.1f}",
    ]


def raise_open_files(needed: int) -> None:
    """Children (service, client processes) inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else max(needed, hard)
    try:  # raising the hard limit needs root; otherwise go as high as allowed
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def py_spy_command(out_dir: Path | None, name: str, pid: int, seconds: float) -> list[str] | None:
    """`py-spy record` of the service while posting, as collapsed stacks (one line a stack,
    for flamegraph.pl or speedscope); None when not asked for."""
    if out_dir is None:
        return None
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(binary).exists():
        raise SystemExit(
            "--py-spy needs py-spy (pip install py-spy; attaching needs root or ptrace permission)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        f"{seconds:.0f}",
        "--rate",
        "100",
        "--native",
        "--format",
        "raw",
        "-o",
        str(out_dir / f"fanout-{name}.txt"),
    ]


def load_latency(
    subscribers: int,
    fleet_vehicles: int,
    fleet_subscribers: int,
    seconds: float,
    baseline_seconds: float,
    py_spy_dir: Path | None = None,
) -> None:
    raise_open_files(2 * subscribers + 1024)
    svc = ServiceProcess(hub_url="memory://")
    svc.start()
    clients = LoadClients()
    try:
        assert svc.process is not None
        host, port = "127.0.0.1", svc.port
        for _ in range(20):  # warm up the step path (preset load, first allocations)
            httpx.post(
                f"{svc.url}/step",
                timeout=10,
                json={
                    "vehicle_id": "lat-warm",
                    "samples": [{"dt_s": 0.1, "power_kw": 20.0}],
                    "options": {"replace": True},
                },
            ).raise_for_status()
        pid = svc.process.pid
        # (scenario, index of its baseline, py-spy command or None)
        scenarios = [
            (
                one_vehicle(
                    host,
                    port,
                    "baseline: 1 subscriber, 1 vehicle at 10 steps/s",
                    "lat-one-base",
                    1,
                    10,
                    baseline_seconds,
                ),
                None,
                None,
            ),
            (
                one_vehicle(
                    host,
                    port,
                    f"(a) {subscribers:,} subscribers, 1 vehicle at 10 steps/s",
                    "lat-one",
                    subscribers,
                    10,
                    seconds,
                ),
                0,
                py_spy_command(py_spy_dir, "a", pid, seconds),
            ),
            (
                fleet(
                    host,
                    port,
                    f"baseline: {fleet_subscribers} fleet subscribers, 1 vehicle at 10 steps/s",
                    "lat-fleet-base-",
                    1,
                    10,
                    fleet_subscribers,
                    baseline_seconds,
                ),
                None,
                None,
            ),
            (
                fleet(
                    host,
                    port,
                    f"(b) {fleet_subscribers} fleet subscribers, "
                    f"{fleet_vehicles:,} vehicles at 1 step/s",
                    "lat-fleet-",
                    fleet_vehicles,
                    1,
                    fleet_subscribers,
                    seconds,
                ),
                2,
                py_spy_command(py_spy_dir, "b", pid, seconds),
            ),
        ]
        results = [
            run_scenario(scenario, pid, port, clients, spy) for scenario, _, spy in scenarios
        ]
        rows = [
            latency_row(r, None if b is None else results[b])
            for r, (_, b, _) in zip(results, scenarios, strict=True)
        ]
        table(
            "Delivery latency under load (memory hub, one service process): POST /step "
            "written -> message read by each WebSocket client",
            [
                "scenario",
                "feed",
                "subscribers",
                "vehicles",
                "steps/s target",
                "steps/s posted",
                "delivered / expected",
                "p50 ms",
                "p99 ms",
                "max ms",
                "p50 / p99 vs baseline",
                "POST round trip p50 / p99 / max ms",
            ],
            rows,
        )
        table(
            f"CPU while posting (% of one core, of which in the kernel; {os.cpu_count()} "
            f"cores; poster = this process, {LOAD_CLIENT_PROCESSES} client processes)",
            [
                "scenario",
                "service %",
                "poster %",
                "client processes %",
                "whole machine % of all cores",
                "s",
            ],
            [cpu_row(r) for r in results],
        )
    finally:
        clients.close()
        svc.stop()


def issue3(args: argparse.Namespace) -> None:
    env = {"TWIN_WS_QUEUE_SIZE": "1024"}  # measure delivery, not the slow-client policy
    with RedisServer() as redis:
        redis.start()
        with start_services(2, hub_url=redis.url, env=env) as (url_a, url_b):
            rows = [
                fanout(url_a, args.clients, args.steps, compression, f"bench-fan-{i}")
                for i, compression in enumerate((None, "deflate"))
            ]
            table(
                f"Fan-out: one replica (Redis hub) to {args.clients} WebSocket clients",
                [
                    "clients",
                    "compression",
                    "steps",
                    "steps/s posted",
                    "messages/s delivered",
                    "delivered",
                    "gaps",
                    "s",
                ],
                rows,
            )
            table(
                "Cross-replica delay (Redis pub/sub), sequential steps",
                ["path", "n", "median ms", "p99 ms", "max ms"],
                asyncio.run(latency(url_a, url_b, args.latency_steps)),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("all", "issue3", "issue7"), default="all")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--latency-steps", type=int, default=500)
    parser.add_argument(
        "--subscribers",
        type=int,
        default=1000,
        help="scenario (a): subscribers of one vehicle at 10 steps/s",
    )
    parser.add_argument(
        "--fleet-vehicles", type=int, default=1000, help="scenario (b): vehicles at 1 step/s each"
    )
    parser.add_argument("--fleet-subscribers", type=int, default=10)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record the service with py-spy during (a) and (b) into DIR "
        "(slows the service: the latency tables are then not comparable)",
    )
    args = parser.parse_args()
    print(f"bench_fanout on {machine()}")
    if args.only in ("all", "issue3"):
        issue3(args)
    if args.only in ("all", "issue7"):
        load_latency(
            args.subscribers,
            args.fleet_vehicles,
            args.fleet_subscribers,
            args.load_seconds,
            args.baseline_seconds,
            args.py_spy,
        )


if __name__ == "__main__":
    main()
