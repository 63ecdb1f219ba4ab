"""``strata collect``: run a receiver (syslog over UDP/TCP) writing to Kafka raw_logs.

The receiver itself lives with the other collectors in :mod:`api.collector.syslog`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from infra.settings import Settings, get_settings

log = logging.getLogger("strata.syslog")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="collector", required=True)
    syslog = sub.add_parser("syslog", help="receive syslog over UDP and TCP and write it to raw_logs")
    settings = get_settings()
    syslog.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT[=TENANT]")
    syslog.add_argument("--udp", action="append", default=[], metavar="HOST:PORT[=TENANT]")
    syslog.add_argument(
        "--tls",
        action="append",
        default=[],
        metavar="HOST:PORT[=TENANT]",
        help="syslog over TLS (RFC 5425) with STRATA_SERVER_TLS_* (docs/stack.md)",
    )
    syslog.add_argument(
        "--tenant",
        default=settings.syslog_tenant,
        help="tenant of listeners that name none (STRATA_SYSLOG_TENANT)",
    )
    syslog.add_argument(
        "--service",
        default=settings.syslog_service or None,
        help="service for every line (default: the syslog APP-NAME or tag)",
    )
    syslog.add_argument("--no-tenant-check", action="store_true", help="do not check tenants in PostgreSQL")


def _check_tenants(settings: Settings, names: set[str]) -> str | None:
    import psycopg

    try:
        with psycopg.connect(settings.postgres_dsn, connect_timeout=5) as conn:
            rows = conn.execute("SELECT id FROM tenants WHERE id = ANY(%s)", (sorted(names),)).fetchall()
    except psycopg.Error as exc:
        return f"cannot check the tenants in PostgreSQL ({exc}); use --no-tenant-check to skip"
    missing = names - {row[0] for row in rows}
    if missing:
        return f"unknown tenant(s) {sorted(missing)}: create them with `strata tenant create`"
    return None


def run(args: argparse.Namespace) -> int:
    from api.collector.syslog import Stats, parse_listener, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    try:
        listeners = (
            [parse_listener(t, "tcp", args.tenant) for t in args.tcp]
            + [parse_listener(u, "udp", args.tenant) for u in args.udp]
            + [parse_listener(t, "tls", args.tenant) for t in args.tls]
        )
        if args.tls:
            from api.tls import server_context

            if server_context(settings) is None:
                raise ValueError("--tls needs STRATA_SERVER_TLS_CERT_FILE and STRATA_SERVER_TLS_KEY_FILE")
    except (ValueError, OSError) as exc:  # OSError: a TLS file that cannot be read
        print(f"strata collect syslog: {exc}", file=sys.stderr)
        return 2
    if not listeners:
        print("strata collect syslog: give at least one --tcp, --udp or --tls listener", file=sys.stderr)
        return 2
    if not args.no_tenant_check:
        problem = _check_tenants(settings, {listener.tenant for listener in listeners})
        if problem:
            print(f"strata collect syslog: {problem}", file=sys.stderr)
            return 2

    async def main() -> Stats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await serve(settings, listeners, args.service, stop)

    stats = asyncio.run(main())
    log.info(
        "stopped: received %s, delivered %d, failed %d, dropped (UDP, queue full) %d, oversized %d",
        dict(stats.received),
        stats.delivered,
        stats.failed,
        stats.dropped,
        stats.oversized,
    )
    return 1 if stats.failed else 0
