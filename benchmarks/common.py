"""Shared helpers: timing, tables, a service process, the drive profile."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best wall time of `repeat` runs (s): the least disturbed by other load."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    sys.stdout.flush()


GOAL_PREFIX = "[goal]\t"


def goal(
    name: str, figure: float, target: float | None, unit: str = "x", at_most: bool = False
) -> None:
    """Report a figure against its goal (at least `target`, or at most; None: a figure to
    state) in a line that benchmarks.run_all gathers into docs/performance.md's goals table."""

    def shown(v: float) -> str:
        return f"{v:.3g}{unit}" if unit == "x" else f"{v:g} {unit}"

    if target is None:
        wanted, met = "stated", "-"
    else:
        wanted = ("<= " if at_most else ">= ") + shown(target)
        met = "met" if (figure <= target if at_most else figure >= target) else "not met"
    print(f"{GOAL_PREFIX}{name}\t{shown(figure)}\t{wanted}\t{met}", flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def drive_power_w(t_s: np.ndarray) -> np.ndarray:
    """A drive with acceleration, cruising and regeneration (W at the terminals)."""
    return (25.0 + 45.0 * np.sin(t_s / 37.0) + 15.0 * np.sin(t_s / 5.3)) * 1000.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def service(
    extra_env: dict[str, str] | None = None, args: list[str] | None = None
) -> Iterator[str]:
    """A real `python -m twin_service` process on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "TWIN_LOG_LEVEL": "warning", **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin_service", "--port", str(port), *(args or [])],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a cold numba cache on a loaded machine
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()  # so that reading its stderr to the end cannot hang
                _, err = proc.communicate()
                raise RuntimeError("service did not start: " + err.decode()[-2000:])
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
