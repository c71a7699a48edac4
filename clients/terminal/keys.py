"""Keys of the live dashboard: decoding what a terminal sends, cbreak mode, and reading stdin
from the event loop (``add_reader``, no thread)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Literal

Action = Literal["previous", "next", "refresh", "quit"]

ESC = 0x1B
# Longest escape sequence waited for; anything longer is dropped as garbage.
MAX_SEQUENCE = 16
LETTERS: dict[int, Action] = {
    ord("p"): "previous",
    ord("n"): "next",
    ord("r"): "refresh",
    ord("q"): "quit",
    0x03: "quit",  # Ctrl-C when the terminal does not turn it into SIGINT
}
ARROWS: dict[int, Action] = {ord("A"): "previous", ord("B"): "next"}  # up, down
FOOTER = "↑/p previous   ↓/n next   r refresh   q quit"


class KeyDecoder:
    """Bytes typed on a terminal -> actions.

    Arrow keys arrive as CSI (``ESC [ A``), as SS3 in application cursor mode (``ESC O A``)
    or with a modifier (``ESC [ 1 ; 5 A``). A sequence split across reads is completed by the
    next read; a lone ESC is dropped when what follows cannot continue it. Letters are
    case-insensitive; everything else is ignored.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[Action]:
        buf = self._pending + data
        self._pending = b""
        actions: list[Action] = []
        i = 0
        while i < len(buf):
            if buf[i] != ESC:
                letter = LETTERS.get(buf[i : i + 1].lower()[0])
                if letter is not None:
                    actions.append(letter)
                i += 1
                continue
            end = _sequence_end(buf, i)
            if end is None:  # incomplete: wait for the rest
                self._pending = buf[i:]
                break
            if end - i >= 3 and buf[i + 1] in b"[O":
                arrow = ARROWS.get(buf[end - 1])
                if arrow is not None:
                    actions.append(arrow)
            i = end
        return actions


def _sequence_end(buf: bytes, start: int) -> int | None:
    """Index after the escape sequence at ``start`` (None: incomplete; ``start + 1``: a lone
    ESC, dropped, the next byte read on its own)."""
    if start + 1 == len(buf):
        return None
    kind = buf[start + 1]
    if kind == ord("O"):  # SS3: one final byte
        return None if start + 2 == len(buf) else start + 3
    if kind != ord("["):
        return start + 1
    i = start + 2
    while i < len(buf) and 0x20 <= buf[i] <= 0x3F:  # parameters and intermediates
        i += 1
    if i == len(buf):
        return None if i - start < MAX_SEQUENCE else start + 1
    if 0x40 <= buf[i] <= 0x7E:
        return i + 1
    return start + 1


@contextlib.contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys without Enter and without echo while inside, the terminal's mode restored on the
    way out (also on exceptions and KeyboardInterrupt). Ctrl-C still raises SIGINT."""
    import termios  # POSIX only, like reading stdin from the event loop
    import tty

    try:
        saved = termios.tcgetattr(fd)
    except termios.error:  # not a terminal
        yield
        return
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class KeyReader:
    """Reads ``fd`` when it is readable and calls ``on_action`` for each key; stops at EOF."""

    def __init__(self, fd: int, on_action: Callable[[Action], None]) -> None:
        self.fd = fd
        self.on_action = on_action
        self.decoder = KeyDecoder()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """Start reading; False when this event loop cannot watch ``fd`` (keys then do nothing)."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_reader(self.fd, self._readable)
        except PermissionError:  # a regular file (epoll refuses those): it is all there
            loop.call_soon(self._read_all)
        except NotImplementedError:  # an event loop without add_reader
            return False
        else:
            self._loop = loop
        return True

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fd)
            self._loop = None

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 1024)
        except OSError:
            data = b""
        if not data:
            self.stop()
            return
        self._dispatch(data)

    def _read_all(self) -> None:
        while data := os.read(self.fd, 65536):
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        for action in self.decoder.feed(data):
            self.on_action(action)
