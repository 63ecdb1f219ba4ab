"""``strata stack``: start, stop and inspect the local stack (``up | down | status | logs SERVICE``)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from infra.settings import get_settings
from infra.stack import process, stack
from infra.stack.flink_jars import FlinkJarsError
from infra.stack.maven import FetchError
from infra.stack.process import StackError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p_up = sub.add_parser("up", help="fetch (first time), start and provision the local stack")
    p_up.add_argument("services", nargs="*", help="only these services (default: all)")
    p_up.add_argument(
        "--tls",
        action="store_true",
        help=(
            "TLS with a local CA: Kafka SASL_SSL, HTTPS OpenSearch and S3, Cassandra and "
            "PostgreSQL SSL (STRATA_STACK_TLS, docs/stack.md)"
        ),
    )
    p_down = sub.add_parser("down", help="stop the processes `up` started; data stays on disk")
    p_down.add_argument("services", nargs="*")
    p_down.add_argument("--purge", action="store_true", help="also delete their data")
    p_status = sub.add_parser("status", help="up or down, and why, per service")
    p_status.add_argument("services", nargs="*")
    p_logs = sub.add_parser("logs", help="show a service's log")
    p_logs.add_argument("service")
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("-f", "--follow", action="store_true")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if getattr(args, "tls", False):
        settings = settings.model_copy(update={"stack_tls": True})
    try:
        if args.action == "up":
            rows = stack.up(settings, args.services)
            print(stack.format_table(rows))
            return 0
        if args.action == "status":
            rows = stack.status(settings, args.services)
            print(stack.format_table(rows))
            return 0 if all(r.state == "up" for r in rows) else 1
        if args.action == "down":
            stack.down(settings, args.services, purge=args.purge)
            return 0
        if args.action == "logs":
            (service,) = stack.select(settings, [args.service])
            if args.follow:
                return subprocess.call(["tail", "-n", str(args.lines), "-F", str(service.log_file)])
            print(process.tail(service.log_file, args.lines))
            return 0
    except (StackError, FetchError, FlinkJarsError) as exc:
        print(f"strata stack {args.action}: {exc}", file=sys.stderr)
        return 1
    return 2
