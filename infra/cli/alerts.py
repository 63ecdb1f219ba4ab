"""``strata alerts notify``: record alert events in the history and deliver their notifications.

The alerts job itself is a Flink job: ``strata job run alerts``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("notify", help="record alert events in the history and deliver their notifications")


def run_notifier() -> int:
    from core.alerts.notify import Notifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    notifier = Notifier(get_settings()).start()
    stopped.wait()
    notifier.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "notify":
        return run_notifier()
    return 2
