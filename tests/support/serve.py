"""`python -m support.serve --port P --hub-url URL --send-buffer-bytes N` (cwd: tests/):
the twin service exactly as `python -m twin_service` runs it, but listening on a socket with a
small SO_SNDBUF, which accepted connections inherit.

Loopback TCP grows a send buffer to megabytes, so a client that never reads would only back the
service up after thousands of messages; with a small buffer the slow-client tests reach real
backpressure after a few dozen.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket

import uvicorn

from twin_service.app import create_app
from twin_service.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hub-url", default="memory://")
    parser.add_argument("--send-buffer-bytes", type=int, required=True)
    args = parser.parse_args()
    settings = load_settings(host=args.host, port=args.port, hub_url=args.hub_url)
    logging.basicConfig(level=settings.log_level.upper())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.send_buffer_bytes)
    # Without this, small buffers meet Nagle and delayed ACKs: 40 ms per HTTP response.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    config = uvicorn.Config(
        create_app(settings), log_level=settings.log_level.lower(), ws_ping_interval=20
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
