"""The ``strata`` command: one entry point, one module per area.

Each command lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together, so importing the CLI stays cheap and
a command's heavy imports (pyflink, the Cassandra driver) load only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("infra.stack.cli", "start, stop and inspect the local stack"),
    "parse": ("jobs.records.cli", "parse log lines into normalized records (JSON per line)"),
    "job": ("jobs.cli", "run Strata's Flink jobs locally, or submit and manage them on a cluster"),
    "serve": ("api.serve", "run the API (collectors, tenants, health) under uvicorn"),
    "tenant": ("api.tenant_cli", "create tenants and manage their API keys"),
    "collect": ("api.collect_syslog", "run a receiver (syslog over UDP/TCP) writing to raw_logs"),
    "send": ("api.send", "ship log files to the API in batches, resuming where it stopped"),
    "search": ("api.search_cli", "search logs across the tiers, or follow them live"),
    "demo": (
        "jobs.demo",
        "send a realistic mix of logs through the API and the ingest job, then count each tier",
    ),
    "alerts": ("jobs.alerts.cli", "run the alerts job (`alerts run`) and its notifier (`alerts notify`)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, the others are listed by name."""
    parser = argparse.ArgumentParser(prog="strata", description="Strata log pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
