"""``strata job run | submit | list | cancel | savepoint``: run Strata's jobs locally or on a cluster."""

from __future__ import annotations

import argparse
import sys

from infra.settings import get_settings

JOBS = ("ingest", "alerts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p_run = sub.add_parser("run", help="run a job on a local Flink (MiniCluster) against the stack")
    p_run.add_argument("job", choices=JOBS)
    p_run.add_argument(
        "--from",
        dest="start",
        default="committed",
        help="committed (default), earliest, latest, timestamp:<ISO 8601> or offsets:<p>=<o>,… "
        "(a replay: starts without the last checkpoint's state)",
    )
    p_run.add_argument("--parallelism", type=int, default=None)
    p_run.add_argument(
        "--bounded", action="store_true", help="stop once the offsets that were latest at start are read"
    )
    p_run.add_argument("--fresh", action="store_true", help="ignore the last checkpoint")
    p_run.add_argument("--config", help="record pipeline configuration (YAML or JSON)")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "run" and args.job == "alerts":
        from jobs.alerts.cli import run_job

        return run_job(args)
    if args.action == "run":
        from jobs.flink import latest_checkpoint
        from jobs.ingest.job import IngestOptions, StartPosition, checkpoint_name
        from jobs.ingest.job import run as run_ingest
        from jobs.records.config import PipelineConfig

        try:
            start = StartPosition.parse(args.start)
        except ValueError as exc:
            print(f"strata job run: {exc}", file=sys.stderr)
            return 2
        config = PipelineConfig.load(args.config) if args.config else None
        options = IngestOptions.from_settings(
            settings, start=start, bounded=args.bounded, pipeline_config=config
        )
        # Resuming restores offsets, dedupe state and pending files; an explicit --from is a replay.
        resume = not args.fresh and args.start == "committed"
        restore = latest_checkpoint(settings, checkpoint_name(options)) if resume else None
        if restore is not None:
            print(f"resuming from {restore}", file=sys.stderr)
        run_ingest(settings, options, parallelism=args.parallelism, restore=restore)
        return 0
    return 2
