"""Keys of the terminal dashboard: decoding, the order the vehicles are stepped through, the
stdin reader; then `python -m clients.terminal` on a real pseudo-terminal against a real
service: it starts on the most recently updated vehicle, switches on p and the arrows, quits on
q and Ctrl-C with the terminal's mode restored."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import free_port, start_service

from clients.terminal.keys import KeyDecoder, KeyReader
from clients.terminal.state import DashboardState

REPO_ROOT = Path(__file__).resolve().parents[1]
UP, DOWN = b"\x1b[A", b"\x1b[B"
TIMEOUT_S = 30.0
TITLE = re.compile(r"EV battery twin · ([a-z-]+) \(")
# Control sequences (colours, cursor moves, screen switches), removed before text is matched.
CONTROL = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78])")

# ---------------------------------------------------------------------------- key decoding


@pytest.mark.parametrize(
    ("data", "actions"),
    [
        (b"p", ["previous"]),
        (b"n", ["next"]),
        (b"r", ["refresh"]),
        (b"q", ["quit"]),
        (b"NPQR", ["next", "previous", "quit", "refresh"]),
        (b"\x03", ["quit"]),
        (UP, ["previous"]),
        (DOWN, ["next"]),
        (b"\x1bOA\x1bOB", ["previous", "next"]),  # application cursor mode
        (b"\x1b[1;5A", ["previous"]),  # with a modifier
        (b"\x1b[C\x1b[D\x1b[5~", []),  # right, left, page up: not bound
        (b"x \n\r\x1b[Ap", ["previous", "previous"]),
        (b"\x1bq", ["quit"]),  # a lone ESC, then q
        (b"\x1b\x1b[B", ["next"]),
        ("é↑".encode(), []),
    ],
)
def test_key_decoding(data: bytes, actions: list[str]) -> None:
    assert KeyDecoder().feed(data) == actions


def test_an_escape_sequence_split_across_reads_is_completed() -> None:
    decoder = KeyDecoder()
    assert decoder.feed(b"n\x1b") == ["next"]
    assert decoder.feed(b"[") == []
    assert decoder.feed(b"1;2") == []
    assert decoder.feed(b"Bq") == ["next", "quit"]
    assert decoder.feed(b"\x1bO") == []
    assert decoder.feed(b"A") == ["previous"]


def test_an_unfinished_sequence_does_not_grow_without_bound() -> None:
    decoder = KeyDecoder()
    assert decoder.feed(b"\x1b[" + b"1;" * 20) == []
    assert decoder.feed(b"q") == ["quit"]


async def test_key_reader_reads_a_pipe_until_eof() -> None:
    read_fd, write_fd = os.pipe()
    seen: list[str] = []
    reader = KeyReader(read_fd, seen.append)
    try:
        assert reader.start()
        os.write(write_fd, b"n\n\x1b[")
        await wait_for(lambda: seen == ["next"])
        os.write(write_fd, b"Aq\n")
        await wait_for(lambda: seen == ["next", "previous", "quit"])
        os.close(write_fd)
        write_fd = -1
        await wait_for(lambda: reader._loop is None)  # EOF: it stopped watching
    finally:
        reader.stop()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


async def test_key_reader_takes_a_regular_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_bytes(b"p\nn\n")
    seen: list[str] = []
    with path.open("rb") as file:
        reader = KeyReader(file.fileno(), seen.append)
        assert reader.start()
        await wait_for(lambda: seen == ["previous", "next"])
        reader.stop()


async def wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------- vehicle order


def fleet_state(*vehicle_ids: str, selected: str | None = None) -> DashboardState:
    state = DashboardState(twin_url="http://x")
    for rev, vehicle_id in enumerate(vehicle_ids, 1):
        state.apply({"type": "state", "rev": rev, "telemetry": {"vehicle_id": vehicle_id}}, 0.0)
    if selected is not None:
        state.select(selected)
    return state


def test_vehicles_are_stepped_through_by_id_wrapping_around() -> None:
    state = fleet_state("ev-b", "ev-c", "ev-a", selected="ev-b")
    assert state.vehicle_order() == ["ev-a", "ev-b", "ev-c"]
    assert state.position() == (2, 3)
    assert state.neighbour(1) == "ev-c"
    assert state.neighbour(-1) == "ev-a"
    state.select("ev-c")
    assert state.neighbour(1) == "ev-a"
    state.select("ev-a")
    assert state.neighbour(-1) == "ev-c"
    assert state.neighbour(0) is None


def test_a_selected_vehicle_that_has_not_reported_is_in_the_order() -> None:
    state = fleet_state("b", "d", selected="c")
    assert state.vehicle_order() == ["b", "c", "d"]
    assert state.neighbour(1) == "d" and state.neighbour(-1) == "b"
    assert state.position() == (2, 3)


def test_no_other_vehicle_means_no_switch() -> None:
    assert fleet_state().neighbour(1) is None
    assert fleet_state().position() is None
    assert fleet_state("a", selected="a").neighbour(1) is None
    unselected = fleet_state("b", "a")
    assert unselected.neighbour(1) == "a" and unselected.neighbour(-1) == "b"


def test_switching_starts_the_new_vehicle_afresh() -> None:
    state = fleet_state("a", "b", selected="a")
    state.load_history([{"rev": 1, "soc": 50.0, "power_kw": 1.0}])
    state.set_forecast({"fade_pct_per_year": 1.0}, "ok")
    assert state.select("a") is False and state.forecast is not None
    assert state.select("b") is True
    assert state.selected == "b" and state.forecast is None and not state.soc_points
    assert state.forecast_note == "loading"


# ---------------------------------------------------------------------------- on a terminal


class Terminal:
    """A pseudo-terminal of 100 x 40 whose output is collected by a thread."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        self.initial_mode = termios.tcgetattr(self.slave)
        self._output = bytearray()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                with self._lock:
                    self._output += data

    def output(self, since: int = 0) -> str:
        """What was written since the byte offset ``since``, control sequences removed."""
        with self._lock:
            return CONTROL.sub("", self._output[since:].decode(errors="replace"))

    def mark(self) -> int:
        with self._lock:
            return len(self._output)

    def wait_for(self, text: str, since: int = 0, timeout_s: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output(since):
            if time.monotonic() > deadline:
                tail = self.output(since)[-3000:]
                raise AssertionError(f"{text!r} not shown; the terminal shows:\n{tail}")
            time.sleep(0.02)

    def wait_for_match(
        self, pattern: re.Pattern[str], timeout_s: float = TIMEOUT_S
    ) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (found := pattern.search(self.output())) is None:
            if time.monotonic() > deadline:
                tail = self.output()[-3000:]
                raise AssertionError(f"{pattern.pattern!r} not shown; the terminal shows:\n{tail}")
            time.sleep(0.02)
        return found

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def lflag(self) -> int:
        return termios.tcgetattr(self.slave)[3]

    def close(self) -> None:
        self._closed.set()
        self._reader.join(5)
        os.close(self.master)
        os.close(self.slave)


def _controlling_terminal() -> None:
    # In the child, after setsid: the pty on stdin becomes its controlling terminal, so Ctrl-C
    # typed on it is SIGINT to the dashboard, as in a shell. SIGINT is reset to its default
    # because a shell starting the tests in the background ignores it, and children inherit that.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def dashboard(
    *args: str, stdin: int | None = None
) -> Iterator[tuple[Terminal, subprocess.Popen[bytes]]]:
    """`python -m clients.terminal ARGS` with its output on a pseudo-terminal, and its input
    too unless ``stdin`` is given (subprocess.PIPE)."""
    terminal = Terminal()
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env = {
        **base,
        "TERM": "xterm-256color",
        "PYTHONIOENCODING": "utf-8",
        "COLUMNS": "100",
        "LINES": "40",
    }
    on_pty = stdin is None
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.terminal", "--refresh", "0.5", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=terminal.slave if on_pty else stdin,
        stdout=terminal.slave,
        stderr=terminal.slave,
        start_new_session=True,
        preexec_fn=_controlling_terminal if on_pty else None,
    )
    try:
        yield terminal, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdin is not None:
            process.stdin.close()
        terminal.close()


def step(
    url: str, vehicle_id: str, power_kw: float = 20.0, after: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST /step; ``after`` is the vehicle's previous reply (the service continues from it)."""
    body = {
        "vehicle_id": vehicle_id,
        "state": after["state"] if after else None,
        "samples": [{"dt_s": 5.0, "power_kw": power_kw}],
    }
    response = httpx.post(f"{url}/step", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def title(vehicle_id: str) -> str:
    return f"EV battery twin · {vehicle_id} ("


def assert_clean_exit(terminal: Terminal, process: subprocess.Popen[bytes]) -> None:
    assert process.wait(TIMEOUT_S) == 0
    output = terminal.output()
    assert "Traceback" not in output and "Error" not in output, output[-2000:]
    mode = terminal.lflag()
    assert mode & termios.ICANON and mode & termios.ECHO  # line mode and echo are back
    assert mode == terminal.initial_mode[3]


REPLIES: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def two_vehicles() -> Iterator[str]:
    """A service where a-old stepped before b-new (b-new is the most recently updated)."""
    with start_service() as url:
        REPLIES["a-old"] = step(url, "a-old")
        REPLIES["b-new"] = step(url, "b-new")
        yield url


def test_once_shows_the_newest_vehicle(two_vehicles: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clients.terminal", "--twin-url", two_vehicles, "--once"],
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    assert title("b-new") in result.stdout and title("a-old") not in result.stdout
    assert "q quit" not in result.stdout  # no keys when printing once


def test_starts_on_the_newest_vehicle_and_switches_with_keys(two_vehicles: str) -> None:
    with dashboard("--twin-url", two_vehicles) as (terminal, process):
        terminal.wait_for(title("b-new"))
        terminal.wait_for("q quit   vehicle 2 of 2")
        deadline = time.monotonic() + TIMEOUT_S
        while terminal.lflag() & termios.ICANON:  # cbreak: keys without Enter
            assert time.monotonic() < deadline, "the terminal was left in line mode"
            time.sleep(0.02)
        assert not terminal.lflag() & termios.ECHO

        mark = terminal.mark()
        terminal.type(b"p")
        terminal.wait_for(title("a-old"), mark)
        terminal.wait_for("vehicle 1 of 2", mark)
        # Its own feed is followed now: a new step shows up with its rev.
        reply = step(two_vehicles, "a-old", power_kw=-15.0, after=REPLIES["a-old"])
        terminal.wait_for(f"rev {reply['rev']}", mark)
        terminal.wait_for("◀ REGEN", mark)

        mark = terminal.mark()
        terminal.type(DOWN)
        terminal.wait_for(title("b-new"), mark)
        mark = terminal.mark()
        terminal.type(UP)
        terminal.wait_for(title("a-old"), mark)

        terminal.type(b"q")
        assert_clean_exit(terminal, process)


def test_keys_from_a_pipe_when_asked(two_vehicles: str) -> None:
    with dashboard("--twin-url", two_vehicles, "--keys-from-stdin", stdin=subprocess.PIPE) as (
        terminal,
        process,
    ):
        assert process.stdin is not None
        shown = terminal.wait_for_match(TITLE).group(1)
        terminal.wait_for("q quit")
        other = {"a-old": "b-new", "b-new": "a-old"}[shown]
        mark = terminal.mark()
        process.stdin.write(b"n\n")
        process.stdin.flush()
        terminal.wait_for(title(other), mark)
        process.stdin.write(b"q\n")
        process.stdin.flush()
        assert process.wait(TIMEOUT_S) == 0


def test_a_pipe_is_not_read_without_the_flag(two_vehicles: str) -> None:
    with dashboard("--twin-url", two_vehicles, stdin=subprocess.PIPE) as (terminal, process):
        terminal.wait_for_match(TITLE)
        terminal.wait_for("● live")
        assert "q quit" not in terminal.output()  # no keys, so no footer naming them
        process.send_signal(signal.SIGTERM)  # quits like q
        assert process.wait(TIMEOUT_S) == 0
        assert "Traceback" not in terminal.output()


def test_waits_for_a_vehicle_and_quits_on_ctrl_c() -> None:
    with start_service() as url, dashboard("--twin-url", url) as (terminal, process):
        terminal.wait_for("Waiting for a vehicle…")
        terminal.wait_for("● live")
        mark = terminal.mark()
        step(url, "c-first")
        terminal.wait_for(title("c-first"), mark)
        terminal.type(b"\x03")
        assert_clean_exit(terminal, process)


def test_an_unreachable_service_is_named_and_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with dashboard("--twin-url", url) as (terminal, process):
        terminal.wait_for(f"cannot reach the service at {url}")
        terminal.wait_for("connection refused")
        terminal.wait_for("retrying")
        terminal.type(b"q")
        assert_clean_exit(terminal, process)
