"""``strata parse``: parse log lines into normalized records (JSON per line).

    strata parse --service checkout --tenant acme app.log > records.jsonl
    kubectl logs deploy/api | strata parse --format json -

Rejected lines go to stderr with their reason; a summary count ends the run (on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime

from core.records.config import PipelineConfig
from core.records.pipeline import RecordPipeline
from infra.settings import get_settings
from schemas.rejection import Rejected

FORMAT_HELP = "auto|json|logfmt|syslog|apache|nginx|plain|raw or a pattern name (built-in or from --config)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a log file, or - for stdin")
    parser.add_argument("--format", default=None, help=FORMAT_HELP)
    parser.add_argument("--service", default=None, help="service name for every line")
    parser.add_argument("--host", default=None, help="host name for every line")
    parser.add_argument("--tenant", default="default", help="tenant for every line (default: default)")
    parser.add_argument("--config", default=None, help="pipeline config, YAML or JSON")
    parser.add_argument(
        "--envelopes", action="store_true", help="input lines are raw_logs envelopes, not log lines"
    )
    parser.add_argument("--no-mining", action="store_true", help="skip pattern mining (pattern_id empty)")


def run(args: argparse.Namespace) -> int:
    path = args.config or get_settings().pipeline_config
    try:
        config = PipelineConfig.load(path) if path else PipelineConfig()
    except (OSError, ValueError) as exc:
        print(f"strata parse: cannot load config {path}: {exc}", file=sys.stderr)
        return 2
    if args.no_mining:
        config.mining.enabled = False
    try:
        pipeline = RecordPipeline(config)
    except ValueError as exc:
        print(f"strata parse: invalid config: {exc}", file=sys.stderr)
        return 2
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"strata parse: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    err = sys.stderr
    ok = 0
    rejected: Counter[str] = Counter()
    received_at = datetime.now(UTC)
    with stream:
        for number, raw in enumerate(stream, start=1):
            line = raw.rstrip(b"\r\n")
            if args.envelopes:
                result = pipeline.process(line)
            else:
                result = pipeline.process_line(
                    line,
                    tenant=args.tenant,
                    service=args.service,
                    host=args.host,
                    received_at=received_at,
                    fmt=args.format,
                )
            if isinstance(result, Rejected):
                rejected[result.reason_code.value] += 1
                print(f"line {number}: rejected {result.reason_code.value}: {result.detail}", file=err)
            else:
                ok += 1
                out.write(result.to_json())
                out.write(b"\n")
    out.flush()
    total_rejected = sum(rejected.values())
    summary = f"strata parse: {ok} records, {total_rejected} rejected"
    if rejected:
        summary += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) + ")"
    print(summary, file=err)
    return 0
