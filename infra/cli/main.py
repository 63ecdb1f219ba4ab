"""The ``strata`` command: one module per subcommand, each with ``add_arguments`` and ``run``.

Every command module is imported here by name, so the import graph shows the whole CLI. A
module keeps its heavy imports (pyflink, the Cassandra driver, FastAPI) inside its functions,
so ``strata --help`` and the light commands start at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from infra.cli import (
    alerts,
    archive,
    collect,
    demo,
    dlq,
    job,
    metrics,
    parse,
    retention,
    search,
    send,
    serve,
    stack,
    tenant,
)

# The order of `strata --help`; each module's docstring's first line is its help.
COMMANDS: dict[str, ModuleType] = {
    "stack": stack,
    "parse": parse,
    "job": job,
    "serve": serve,
    "tenant": tenant,
    "collect": collect,
    "send": send,
    "search": search,
    "archive": archive,
    "alerts": alerts,
    "metrics": metrics,
    "retention": retention,
    "dlq": dlq,
    "demo": demo,
}


def help_line(module: ModuleType) -> str:
    """The summary after the command's name in the module docstring's first line."""
    first = (module.__doc__ or "").strip().splitlines()[0]
    return (first.split(":", 1)[1] if ":" in first else first).strip().rstrip(".")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description="Strata log pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        text = help_line(module)
        sub_parser = sub.add_parser(name, help=text, description=text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
