"""``strata alerts run | notify``: the alerts job on a local Flink, and the notifier process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p_run = sub.add_parser("run", help="run the alerts job on a local Flink (MiniCluster) against the stack")
    add_run_arguments(p_run)
    sub.add_parser("notify", help="record alert events in the history and deliver their notifications")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        default="committed",
        choices=("committed", "earliest", "latest"),
        help="where a new consumer group starts in raw_logs (default: committed offsets, else the end)",
    )
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="ignore the last checkpoint")


def run_job(args: argparse.Namespace) -> int:
    from jobs.alerts.job import AlertsOptions, latest_checkpoint
    from jobs.alerts.job import run as run_alerts

    settings = get_settings()
    if args.start not in ("committed", "earliest", "latest"):
        print("strata job run alerts: --from is committed, earliest or latest", file=sys.stderr)
        return 2
    # Resuming restores each group's windows and alert state, so nothing fires twice.
    restore = None if args.fresh else latest_checkpoint(settings)
    if restore is not None:
        print(f"resuming from {restore}", file=sys.stderr)
    options = AlertsOptions.from_settings(settings, start=args.start)
    run_alerts(settings, options, parallelism=args.parallelism, restore=restore)
    return 0


def run_notifier() -> int:
    from jobs.alerts.notify import Notifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    notifier = Notifier(get_settings()).start()
    stopped.wait()
    notifier.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "run":
        return run_job(args)
    if args.action == "notify":
        return run_notifier()
    return 2
