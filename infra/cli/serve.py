"""``strata serve``: run the API (collectors, search, tenants, alerts, health) under uvicorn."""

from __future__ import annotations

import argparse
import logging

from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings = get_settings()
    parser.add_argument("--host", default=settings.bind_host, help="address to listen on (STRATA_BIND_HOST)")
    parser.add_argument("--port", type=int, default=settings.api_port, help="port (STRATA_API_PORT)")
    parser.add_argument(
        "--workers", type=int, default=settings.api_workers, help="worker processes (STRATA_API_WORKERS)"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    import sys

    import uvicorn

    from api.tls import uvicorn_options

    try:
        # HTTPS (and client certificates) when STRATA_SERVER_TLS_* name the files: docs/stack.md.
        tls = uvicorn_options(get_settings())
    except ValueError as exc:
        print(f"strata serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        # Agents send large batches: the default 5 s keep-alive makes them reconnect needlessly.
        timeout_keep_alive=30,
        access_log=args.log_level == "debug",
        **tls,
    )
    return 0
