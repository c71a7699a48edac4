"""scripts/run_demo.py (what `make run` calls) as a subprocess in a session of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from support.processes import REPO_ROOT

RUNNER = REPO_ROOT / "scripts" / "run_demo.py"


class Runner:
    def __init__(self, port: int, log_path: Path, *extra: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        with open(log_path, "wb") as log:
            # A session of its own, like a terminal's foreground job: Ctrl-C goes to its group.
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(RUNNER),
                    "--port",
                    str(port),
                    "--speedup",
                    "100",
                    "--store-url",
                    f"sqlite:///{log_path.with_suffix('.sqlite3')}",
                    *extra,
                ],  # fmt: skip
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"runner exited ({self.process.returncode}):\n{self.log()}")
            with contextlib.suppress(httpx.TransportError, KeyError, ValueError):
                if check():
                    return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")

    def rev(self) -> int:
        response = httpx.get(f"{self.url}/vehicles/ev-1", timeout=2)
        return response.json()["rev"] if response.status_code == 200 else 0

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
