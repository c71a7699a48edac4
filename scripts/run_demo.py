"""Run the twin service and a demo bridge together (what `make run` calls).

Starts ``python -m twin_service`` on 127.0.0.1:8008 with the in-process hub (no Redis) and an
SQLite store in .twin/history.sqlite3 (so the history, and the demo car's pack, survive a
restart; ``--store-url memory://`` keeps nothing), waits until it answers /health, then starts
``python -m bridge cycle`` (continuing from the stored pack when there is one): a demo day of
two UDDS passes (24 km) at 10x real time, then parked for the rest of the 24 h day (an hour per
wall second), plugged in overnight at 11 kW when SOC is below 30 %; the pack ages with its
preset's physical model (naumann) at DEMO_TIME_MULTIPLIER x (aging time only, never SOC or
temperature), so a forecast from its history sees an ordinary car. ``--toy-aging`` runs the
original demo model (seed, 10,000x) instead. It prints the dashboard URL and what the feed is,
and runs until Ctrl-C or SIGTERM. Then it stops the bridge first (it sends what it has
buffered), then the service, and exits 0. If either child exits on its own, the other is
stopped and its exit code is returned.

The children run in process groups of their own, so a Ctrl-C in the terminal reaches only this
runner, which stops them in order; on Linux they are also told to exit if the runner is killed
outright (PR_SET_PDEATHSIG), so nothing is left behind.

Only the standard library is used here: the runner works before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The first start compiles the model core (numba; about 2 minutes on 2 cores), later ones load
# it from the on-disk cache in seconds.
STARTUP_TIMEOUT_S = 300.0
COMPILING_NOTICE_S = 10.0
# The bridge flushes its buffer on SIGINT for up to 30 s (bridge.__main__); a little more here.
BRIDGE_STOP_TIMEOUT_S = 35.0
SERVICE_STOP_TIMEOUT_S = 10.0
HURRY_TIMEOUT_S = 3.0
POLL_S = 0.2
PR_SET_PDEATHSIG = 1
DEMO_TIME_MULTIPLIER = 10.0  # a simulated day ages the pack like 10 days
DEFAULT_STORE = f"sqlite:///{REPO_ROOT / '.twin' / 'history.sqlite3'}"


class RunError(RuntimeError):
    """Startup failed; the message is meant for the user."""


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function that makes the child get SIGTERM when this runner dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # the running program, libc included
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class Child:
    name: str
    argv: list[str]
    stop_signal: signal.Signals
    stop_timeout_s: float
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            self.argv, cwd=REPO_ROOT, env=env, process_group=0, preexec_fn=_die_with_parent()
        )

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, hurry: Callable[[], bool]) -> None:
        """Ask politely and wait; if ``hurry()`` turns true, ask again (the bridge and uvicorn
        both take a second signal as "quit now"); kill when time is up. Always reaps."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        self._signal(self.stop_signal)
        deadline = time.monotonic() + self.stop_timeout_s
        hurried = False
        while process.poll() is None and time.monotonic() < deadline:
            if not hurried and hurry():
                hurried = True
                self._signal(self.stop_signal)
                deadline = min(deadline, time.monotonic() + HURRY_TIMEOUT_S)
            time.sleep(0.05)
        if process.poll() is None:
            print(f"run: killing the {self.name}", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its own group: it and its helpers
        process.wait()

    def _signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_healthy(url: str, child: Child, timeout_s: float, stopping: Callable[[], bool]) -> bool:
    """True once GET /health answers 200; False if a stop was requested meanwhile."""
    started = time.monotonic()
    deadline = started + timeout_s
    noticed = False
    while time.monotonic() < deadline:
        if stopping():
            return False
        if not noticed and time.monotonic() - started > COMPILING_NOTICE_S:
            noticed = True
            msg = "run: the service is compiling the model (the first start takes about 2 minutes)"
            print(msg, file=sys.stderr, flush=True)
        if child.exit_code is not None:
            raise RunError(f"the twin service exited with code {child.exit_code} during startup")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RunError(f"the twin service did not answer {url}/health within {timeout_s:.0f} s")


def bridge_available() -> str | None:
    """None if `python -m bridge cycle` can run, else why not."""
    try:
        if importlib.util.find_spec("bridge.__main__") is None:
            return "the bridge package has no __main__"
    except ImportError as exc:
        return f"the bridge package cannot be imported ({exc})"
    return None


def service_child(args: argparse.Namespace) -> Child:
    argv = [
        sys.executable,
        "-m",
        "twin_service",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--log-level",
        args.service_log_level,
    ]
    if args.config:
        argv += ["--config", args.config]
    argv += ["--store-url", args.store_url]
    return Child("twin service", argv, signal.SIGTERM, SERVICE_STOP_TIMEOUT_S)


def bridge_child(args: argparse.Namespace, url: str) -> Child:
    argv = [
        sys.executable,
        "-m",
        "bridge",
        "cycle",
        "--cycle",
        args.cycle,
        "--twin-url",
        url,
        "--vehicle-id",
        args.vehicle_id,
        "--repeat",
        "0",
        "--speedup",
        str(args.speedup),
        "--daily-passes",
        str(args.daily_passes),
        "--park-speedup",
        str(args.park_speedup),
        "--initial-soc",
        str(args.initial_soc),
        "--charge-to",
        str(args.charge_to),
        "--charge-below",
        str(args.charge_below),
        "--charge-kw",
        str(args.charge_kw),
        "--resume-from-service",  # the pack the store holds, if any
    ]
    if args.toy_aging:
        argv += ["--demo"]  # seed at its 10,000x
    else:
        argv += ["--time-multiplier", f"{args.time_multiplier:g}"]
    if args.config:
        argv += ["--config", args.config]
    return Child("bridge", argv, signal.SIGINT, BRIDGE_STOP_TIMEOUT_S)


def feed_description(args: argparse.Namespace) -> str:
    if args.toy_aging:
        aging = "seed, the original toy demo model (not physical), at 10000x"
    else:
        aging = f"the preset's physical model at {args.time_multiplier:g}x (aging time only)"
    day = (
        f"{args.daily_passes} passes a day, parked the rest of the day at {args.park_speedup:g}x"
        if args.daily_passes
        else "passes back to back"
    )
    return (
        f"{args.cycle} drive cycle at {args.speedup:g}x, {day}, charging at "
        f"{args.charge_kw:g} kW below {args.charge_below:.0%} to {args.charge_to:.0%}\n"
        f"  aging      {aging}\n"
        f"  vehicle    {args.vehicle_id}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/run_demo.py", description="Run the twin service and a demo bridge."
    )
    parser.add_argument("--host", default="127.0.0.1", help="service address (%(default)s)")
    parser.add_argument("--port", type=int, default=8008, help="service port (%(default)s)")
    parser.add_argument("--config", help="config.yaml for the service and the bridge")
    parser.add_argument(
        "--service-log-level",
        default="warning",
        help="service log level (%(default)s; info shows every request)",
    )
    parser.add_argument(
        "--store-url",
        default=DEFAULT_STORE,
        help="where the service keeps snapshots and history (%(default)s; memory:// keeps "
        "nothing across restarts)",
    )
    parser.add_argument("--no-bridge", action="store_true", help="run the service alone")
    demo = parser.add_argument_group("bridge (python -m bridge cycle)")
    demo.add_argument("--cycle", default="udds", help="drive cycle (%(default)s)")
    demo.add_argument("--vehicle-id", default="ev-1", help="twin name (%(default)s)")
    demo.add_argument(
        "--speedup",
        type=float,
        default=10.0,
        help="real-time factor of the drive cycle (%(default)s)",
    )
    demo.add_argument(
        "--daily-passes",
        type=int,
        default=2,
        help="passes of the cycle per simulated day, then parked (%(default)s; 0: no parking)",
    )
    demo.add_argument(
        "--park-speedup",
        type=float,
        default=3600.0,
        help="real-time factor while parked and charging overnight (%(default)s)",
    )
    demo.add_argument(
        "--time-multiplier",
        type=float,
        default=DEMO_TIME_MULTIPLIER,
        help="aging acceleration of the physical model (%(default)s; aging time only)",
    )
    demo.add_argument(
        "--toy-aging",
        action="store_true",
        help="the original toy demo model (seed at 10000x) instead of a physical one",
    )
    demo.add_argument(
        "--initial-soc", type=float, default=0.4, help="SOC of the new pack (%(default)s)"
    )
    demo.add_argument(
        "--charge-to",
        type=float,
        default=0.9,
        help="charging stops charge up to this SOC (%(default)s)",
    )
    demo.add_argument(
        "--charge-below",
        type=float,
        default=0.3,
        help="plug in between cycles below this SOC (%(default)s)",
    )
    demo.add_argument(
        "--charge-kw", type=float, default=11.0, help="charging power, kW (%(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    host_in_url = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    url = f"http://{host_in_url}:{args.port}"
    if port_in_use(args.host, args.port):
        print(
            f"run: port {args.port} on {args.host} is in use; stop what uses it or choose "
            f"another one: make run PORT=8010",
            file=sys.stderr,
        )
        return 1

    signals_seen: list[int] = []  # the first one stops, a second one hurries the stop
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda received, _frame: signals_seen.append(received))

    def stopping() -> bool:
        return bool(signals_seen)

    def hurry() -> bool:  # a second Ctrl-C, or the bridge has no service left to flush to
        return len(signals_seen) > 1 or (bool(children) and children[0].exit_code is not None)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    children: list[Child] = []
    code = 0
    try:
        service = service_child(args)
        children.append(service)
        service.start(env)
        if not wait_healthy(url, service, STARTUP_TIMEOUT_S, stopping):
            return 0
        why_not = "disabled (--no-bridge)" if args.no_bridge else bridge_available()
        if why_not is None:
            bridge = bridge_child(args, url)
            children.append(bridge)
            bridge.start(env)
            feed = feed_description(args)
        else:
            feed = f"bridge not available: {why_not}; serving without a data feed"
        print(
            f"\nEV battery twin is running\n"
            f"  dashboard  {url}/\n"
            f"  API docs   {url}/docs\n"
            f"  feed       {feed}\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping():
            exited = [(c.name, c.exit_code) for c in children if c.exit_code is not None]
            if exited:
                name, exit_code = exited[0]
                print(f"run: {name} exited with code {exit_code}; stopping", file=sys.stderr)
                code = exit_code if exit_code and exit_code > 0 else 1  # not 0, not -SIGNAL
                break
            time.sleep(POLL_S)
    except RunError as exc:
        print(f"run: {exc}", file=sys.stderr)
        code = 1
    finally:
        for child in reversed(children):  # the bridge first, so it can flush to the service
            child.stop(hurry)
        if children:
            print("run: stopped", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
