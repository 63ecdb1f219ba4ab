"""``strata parse``: parse log lines into normalized records (JSON per line).

    strata parse --service checkout --tenant acme app.log > records.jsonl
    kubectl logs deploy/api | strata parse --format json -

Rejected lines go to stderr with their reason; a summary count ends the run (on stderr).

Continuation lines (stack traces, tracebacks, panic dumps) are joined to the event they belong to,
as storage holds them (``--no-multiline`` keeps one record per line). Reading stdin, an event
is emitted once no line has come for ``--multiline-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from core.records.config import PipelineConfig
from core.records.multiline import MultilineJoiner
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
    parser.add_argument(
        "--no-multiline", action="store_true", help="one record per line, continuation lines included"
    )
    parser.add_argument("--multiline-max-lines", type=int, default=500, help="lines per event at most")
    parser.add_argument(
        "--multiline-timeout",
        type=float,
        default=2.0,
        help="seconds of quiet before stdin's last event is emitted",
    )


def _lines(stream: BinaryIO, live: bool, tick: float) -> Iterator[bytes | None]:
    """The stream's lines; for a live stream also ``None`` whenever ``tick`` seconds pass quietly,
    so a pending multi-line event can be emitted while the producer is idle."""
    if not live:
        yield from stream
        return
    lines: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)

    def read() -> None:
        for raw in stream:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, name="strata-parse-stdin", daemon=True).start()
    while True:
        try:
            item = lines.get(timeout=tick)
        except queue.Empty:
            yield None
            continue
        if item is None:
            return
        yield item


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
    joiner = (
        None
        if args.no_multiline or args.envelopes
        else MultilineJoiner(max_lines=max(args.multiline_max_lines, 1), flush_after=args.multiline_timeout)
    )

    def emit(number: int, line: bytes, tags: list[str]) -> None:
        nonlocal ok
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
            result.tags.extend(t for t in tags if t not in result.tags)
            ok += 1
            out.write(result.to_json())
            out.write(b"\n")

    first = 1  # number of the first line of the pending event
    number = 0
    with stream:
        for raw in _lines(stream, args.file == "-", max(args.multiline_timeout, 0.05)):
            if raw is None:
                if joiner is not None:
                    for event in joiner.poll(time.monotonic()):
                        emit(first, event.text.encode("utf-8", "surrogateescape"), event.tags)
                        first += event.lines
                    out.flush()
                continue
            number += 1
            line = raw.rstrip(b"\r\n")
            if joiner is None:
                emit(number, line, [])
                continue
            for event in joiner.push(line.decode("utf-8", "surrogateescape"), time.monotonic()):
                emit(first, event.text.encode("utf-8", "surrogateescape"), event.tags)
                first += event.lines
        if joiner is not None:
            for event in joiner.flush():
                emit(first, event.text.encode("utf-8", "surrogateescape"), event.tags)
                first += event.lines
    out.flush()
    total_rejected = sum(rejected.values())
    summary = f"strata parse: {ok} records, {total_rejected} rejected"
    if rejected:
        summary += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) + ")"
    print(summary, file=err)
    return 0
