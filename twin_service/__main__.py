"""python -m twin_service [--host H] [--port P] [--config FILE] [--hub-url URL]"""

from __future__ import annotations

import argparse
import gc
import logging.config

import uvicorn

from twin_service.app import create_app
from twin_service.logging_setup import log_config
from twin_service.server import guarded_protocol
from twin_service.settings import load_settings

# Collect the youngest generation every 10,000 allocations instead of 700. With a thousand
# WebSocket clients (~300 tracked objects each) the default thresholds trigger full collections
# that stall the event loop for ~200 ms; this makes them rare (p99 fan-out 238 ms -> ~50 ms in
# benchmarks/bench_fanout.py).
GC_THRESHOLDS = (10_000, 10, 10)
# An idle keep-alive connection is closed after this long (uvicorn's default, made explicit): a
# proxy in front must drop its idle connections to the service sooner (deploy/nginx.conf: 4 s),
# or it may send a request down one the service is closing, and answer a POST with 502.
KEEP_ALIVE_S = 5


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m twin_service", description=__doc__)
    parser.add_argument("--host", help="bind address (config: host)")
    parser.add_argument("--port", type=int, help="port (config: port, default 8008)")
    parser.add_argument("--config", help="YAML config file (default: config.yaml)")
    parser.add_argument("--hub-url", help="memory:// or redis://host:port/db")
    parser.add_argument(
        "--store-url",
        help="memory://, redis://..., postgresql://... or sqlite:///path (config: store_url)",
    )
    parser.add_argument("--log-level", help="debug, info, warning, error")
    args = parser.parse_args(argv)
    settings = load_settings(
        args.config,
        host=args.host,
        port=args.port,
        hub_url=args.hub_url,
        store_url=args.store_url,
        log_level=args.log_level,
    )
    tune_gc()
    # Every handler redacts keys (?token=, Bearer) before a line is written; uvicorn's access
    # log would otherwise print the full query string.
    logging.config.dictConfig(log_config(settings.log_level))
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        # Time limits for headers and bodies, and the connection cap (503 beyond it).
        http=guarded_protocol(settings, app.state.metrics),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
        ws_ping_interval=20,
    )


if __name__ == "__main__":
    main()
