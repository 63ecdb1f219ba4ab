"""``strata job``: run Strata's Flink jobs locally, or submit and manage them on a cluster.

The jobs: ingest, alerts and fieldmetrics.

``strata job run | submit | list | cancel | savepoint``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from infra.settings import Settings, get_settings

if TYPE_CHECKING:
    from core.records.config import PipelineConfig

JOBS = ("ingest", "alerts", "fieldmetrics")
ALERTS_STARTS = ("committed", "earliest", "latest")  # the alerts job never replays history
SUBMITTABLE = ("ingest",)  # jobs with an entry module for `flink run` (jobs.cluster.ENTRY_MODULES)


def _add_job_arguments(parser: argparse.ArgumentParser, start_help: str) -> None:
    """What running a job locally and submitting it share: where to start, how wide, which config."""
    parser.add_argument("--from", dest="start", default="committed", help=start_help)
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument(
        "--bounded", action="store_true", help="stop once the offsets that were latest at start are read"
    )
    parser.add_argument(
        "--config", help="record pipeline configuration, YAML or JSON (default: STRATA_PIPELINE_CONFIG)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p_run = sub.add_parser("run", help="run a job on a local Flink (MiniCluster) against the stack")
    p_run.add_argument("job", choices=JOBS)
    _add_job_arguments(
        p_run,
        "committed (default), earliest, latest, timestamp:<ISO 8601> or offsets:<p>=<o>,… "
        "(a replay: starts without the last checkpoint's state)",
    )
    p_run.add_argument("--fresh", action="store_true", help="ignore the last checkpoint")

    jm_help = "the JobManager's REST address, host:port (default: STRATA_FLINK_JOBMANAGER or this host:8081)"
    p_submit = sub.add_parser("submit", help="submit a job to a Flink cluster (detached); prints its job ID")
    p_submit.add_argument("job", choices=SUBMITTABLE)
    p_submit.add_argument("--jobmanager", help=jm_help)
    _add_job_arguments(
        p_submit,
        "committed (default: the group's committed offsets), earliest, latest, "
        "timestamp:<ISO 8601> or offsets:<p>=<o>,…",
    )
    p_submit.add_argument(
        "--restore", metavar="SAVEPOINT", help="start from this savepoint (or retained checkpoint)"
    )
    p_submit.add_argument(
        "--checkpoints",
        metavar="URI",
        help="checkpoint root every TaskManager can write, e.g. s3://bucket/checkpoints "
        "(default: <STRATA_HOME>/checkpoints, right for a cluster on this machine)",
    )
    p_submit.add_argument(
        "--python", help="Python the TaskManagers run the job's workers with (default: this one)"
    )
    p_submit.add_argument(
        "--wait", action="store_true", help="wait for the job to end; exit 1 unless FINISHED"
    )
    p_submit.add_argument(
        "-D",
        dest="flink_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Flink option for this job, over flink-conf.yaml (repeatable)",
    )

    p_list = sub.add_parser("list", help="list the jobs of a Flink cluster, newest first")
    p_list.add_argument("--jobmanager", help=jm_help)
    p_list.add_argument("--json", action="store_true", help="one JSON object per job")

    p_cancel = sub.add_parser("cancel", help="cancel a job on a Flink cluster")
    p_cancel.add_argument("job_id")
    p_cancel.add_argument("--jobmanager", help=jm_help)
    p_cancel.add_argument("--savepoint", action="store_true", help="take a savepoint first (to --dir)")
    p_cancel.add_argument("--dir", help="savepoint folder (default: <STRATA_HOME>/savepoints)")

    p_save = sub.add_parser("savepoint", help="take a savepoint of a running job; prints its path")
    p_save.add_argument("job_id")
    p_save.add_argument("--jobmanager", help=jm_help)
    p_save.add_argument("--dir", help="savepoint folder (default: <STRATA_HOME>/savepoints)")
    p_save.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "run":
        from infra.stack.flink_jars import ensure_job_jars

        ensure_job_jars(settings)
        if args.job == "fieldmetrics":
            return _run_fieldmetrics(settings, args)
        return _run_alerts(settings, args) if args.job == "alerts" else _run_ingest(settings, args)
    from jobs.cluster import ClusterError

    try:
        if args.action == "submit":
            return _submit(settings, args)
        return _manage(settings, args)
    except ClusterError as exc:
        print(f"strata job {args.action}: {exc}", file=sys.stderr)
        return 1


def _submit(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.cluster import (
        PACKAGE_ZIP,
        FlinkRest,
        ended,
        flink_run_command,
        package_zip,
        submit,
        submit_environment,
    )
    from jobs.ingest.job import IngestOptions, StartPosition, checkpoint_name
    from jobs.ingest.main import job_name

    try:
        StartPosition.parse(args.start)
    except ValueError as exc:
        print(f"strata job submit: --from {args.start!r}: {exc}", file=sys.stderr)
        return 2
    jobmanager = args.jobmanager or settings.jobmanager_address
    extra: dict[str, str] = {}
    for option in args.flink_options:
        key, eq, value = option.partition("=")
        if not eq or not key.strip():
            print(f"strata job submit: -D {option!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        extra[key.strip()] = value.strip()
    program_args = ["--start", args.start]
    if args.bounded:
        program_args.append("--bounded")
    config_path = args.config or settings.pipeline_config
    if config_path:
        program_args += ["--pipeline-config", str(Path(config_path).resolve())]
    options = IngestOptions.from_settings(settings)
    print(f"submitting {job_name(options.group_id)} to {jobmanager}", file=sys.stderr)
    # `flink run --detached` has uploaded the package by the time it returns.
    with tempfile.TemporaryDirectory(prefix="strata-submit-") as tmp:
        command = flink_run_command(
            settings,
            args.job,
            jobmanager=jobmanager,
            package=package_zip(Path(tmp) / PACKAGE_ZIP),
            program_args=program_args,
            parallelism=args.parallelism,
            checkpoints=args.checkpoints,
            restore=args.restore,
            python=args.python,
            checkpoint_name=checkpoint_name(options),
            flink_options=extra,
        )
        job_id = submit(command, submit_environment(settings), echo=sys.stderr)
    print(job_id)
    if not args.wait:
        return 0
    with FlinkRest(jobmanager) as rest:
        state = rest.wait(job_id, ended, timeout_s=float("inf"), poll_s=2.0)["state"]
    print(f"job {job_id} {state}", file=sys.stderr)
    return 0 if state == "FINISHED" else 1


def _default_savepoints(settings: Settings) -> str:
    return (settings.home / "savepoints").resolve().as_uri()


def _manage(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.cluster import FlinkRest, format_jobs

    with FlinkRest(args.jobmanager or settings.jobmanager_address) as rest:
        if args.action == "list":
            jobs = rest.jobs()
            if args.json:
                for j in jobs:
                    print(json.dumps(asdict(j)))
            elif jobs:
                print(format_jobs(jobs))
            else:
                print(f"no jobs on {rest.base}", file=sys.stderr)
            return 0
        if args.action == "savepoint":
            print(
                rest.savepoint(args.job_id, args.dir or _default_savepoints(settings), timeout_s=args.timeout)
            )
            return 0
        if args.action == "cancel":
            if args.savepoint:
                location = rest.savepoint(args.job_id, args.dir or _default_savepoints(settings), cancel=True)
                print(location)
                print(f"job {args.job_id} cancelled after a savepoint", file=sys.stderr)
            else:
                rest.cancel(args.job_id)
                print(f"job {args.job_id} cancelling", file=sys.stderr)
            return 0
    return 2


def _pipeline_config(args: argparse.Namespace) -> PipelineConfig | None:
    """``--config``, else STRATA_PIPELINE_CONFIG: one configuration for both jobs."""
    from core.records.config import PipelineConfig

    path = args.config or get_settings().pipeline_config
    return PipelineConfig.load(path) if path else None


def _run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.flink import latest_checkpoint
    from jobs.ingest.job import IngestOptions, StartPosition, checkpoint_name
    from jobs.ingest.job import run as run_ingest

    try:
        start = StartPosition.parse(args.start)
    except ValueError as exc:
        print(f"strata job run: --from {args.start!r}: {exc}", file=sys.stderr)
        return 2
    options = IngestOptions.from_settings(
        settings, start=start, bounded=args.bounded, pipeline_config=_pipeline_config(args)
    )
    # Resuming restores offsets, dedupe state and pending files; an explicit --from is a replay.
    resume = not args.fresh and args.start == "committed"
    restore = latest_checkpoint(settings, checkpoint_name(options)) if resume else None
    if restore is not None:
        print(f"resuming from {restore}", file=sys.stderr)
    run_ingest(settings, options, parallelism=args.parallelism, restore=restore)
    return 0


def _run_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.alerts.job import AlertsOptions, latest_checkpoint
    from jobs.alerts.job import run as run_alerts

    if args.start not in ALERTS_STARTS:
        print(f"strata job run alerts: --from is {', '.join(ALERTS_STARTS)}", file=sys.stderr)
        return 2
    if args.bounded:
        print("strata job run alerts: --bounded is for the ingest job", file=sys.stderr)
        return 2
    # Resuming restores each group's windows and alert state, so nothing fires twice.
    restore = None if args.fresh else latest_checkpoint(settings)
    if restore is not None:
        print(f"resuming from {restore}", file=sys.stderr)
    options = AlertsOptions.from_settings(settings, start=args.start, pipeline_config=_pipeline_config(args))
    run_alerts(settings, options, parallelism=args.parallelism, restore=restore)
    return 0


def _run_fieldmetrics(settings: Settings, args: argparse.Namespace) -> int:
    from jobs.fieldmetrics.job import FieldMetricsOptions, checkpoint_name
    from jobs.fieldmetrics.job import run as run_fieldmetrics
    from jobs.flink import latest_checkpoint

    if args.start != "committed" or args.bounded:
        # Another start would count again what the group has counted (docs/metrics.md).
        print("strata job run fieldmetrics: reads from the group's committed offsets only", file=sys.stderr)
        return 2
    options = FieldMetricsOptions.from_settings(settings)
    restore = None if args.fresh else latest_checkpoint(settings, checkpoint_name(options))
    if restore is not None:
        print(f"resuming from {restore}", file=sys.stderr)
    run_fieldmetrics(settings, options, parallelism=args.parallelism, restore=restore)
    return 0
