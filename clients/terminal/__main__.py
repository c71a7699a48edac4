"""python -m clients.terminal [--twin-url URL] [--vehicle-id NAME] [--refresh S] [--no-color]
[--once] [--keys-from-stdin]

Keys (on a terminal): up/p previous vehicle, down/n next, r re-fetch, q quit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from rich.console import Console

from clients.python import DEFAULT_TWIN_URL
from clients.terminal.app import make_client, run_live, run_once
from clients.terminal.keys import cbreak
from clients.terminal.state import DashboardState

REFRESH_RANGE_S = (0.5, 5.0)


def refresh_seconds(text: str) -> float:
    value = float(text)
    low, high = REFRESH_RANGE_S
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high} seconds")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m clients.terminal",
        description="Live terminal dashboard of the EV battery twin: SOC, SOH, power and "
        "temperature of one vehicle, the lifetime forecast and the fleet.",
        epilog="Keys: up or p previous vehicle, down or n next (by id), r re-fetch, q quit.",
    )
    parser.add_argument(
        "--twin-url",
        default=os.environ.get("TWIN_URL", DEFAULT_TWIN_URL),
        help="service URL (default: $TWIN_URL or %(default)s)",
    )
    parser.add_argument(
        "--vehicle-id",
        help="vehicle to show first (default: the most recently updated one, or the first "
        "that reports)",
    )
    parser.add_argument(
        "--read-key",
        default=os.environ.get("TWIN_READ_KEY"),
        help="the service's read_key when it sets one (default: $TWIN_READ_KEY)",
    )
    parser.add_argument(
        "--refresh",
        type=refresh_seconds,
        default=1.0,
        metavar="S",
        help="repaint interval, 0.5 to 5 seconds (default: 1)",
    )
    parser.add_argument(
        "--no-color",
        action="store_true",
        help="no colours (also when the NO_COLOR environment variable is set)",
    )
    parser.add_argument("--once", action="store_true", help="print the dashboard once and exit")
    parser.add_argument(
        "--keys-from-stdin",
        action="store_true",
        help="read the keys from stdin when it is not a terminal (a pipe), as typed",
    )
    return parser.parse_args(argv)


def standard_input() -> int | None:
    """The file descriptor of stdin, None when there is none (closed, or replaced in-process)."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Rich honours NO_COLOR by itself; --no-color forces it.
    console = Console(no_color=True if args.no_color else None)
    state = DashboardState(twin_url=args.twin_url, wanted_vehicle=args.vehicle_id)
    stdin_fd = standard_input()
    on_terminal = stdin_fd is not None and os.isatty(stdin_fd)
    key_fd = stdin_fd if on_terminal or args.keys_from_stdin else None

    async def run() -> int:
        client = make_client(args.twin_url, args.read_key)
        async with client:
            if args.once:
                return await run_once(client, state, console)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError):  # SIGTERM quits like q does
                loop.add_signal_handler(signal.SIGTERM, stop.set)
            await run_live(client, state, console, args.refresh, key_fd=key_fd, stop=stop)
            return 0

    keyboard: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if stdin_fd is not None and on_terminal and not args.once:
        keyboard = cbreak(stdin_fd)
    with keyboard, contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
