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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description="Strata log pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
