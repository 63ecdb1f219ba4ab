"""The ingest job's entry point under ``flink run`` (what ``strata job submit ingest`` starts)::

    flink run -m flink:8081 -pym jobs.ingest.main -pyfs strata.zip [-D …] --start earliest --bounded

It runs in the driver process ``flink run`` starts on the submitting machine: it reads Strata's
settings from the environment, prepares the index template and tables, builds the same graph as
``strata job run`` and hands it to the cluster. Unlike local mode it neither configures S3 nor
loads filesystem plugins: a cluster's processes load ``plugins/`` and the ``s3.*`` keys from their
own configuration. Checkpointing and restarts come as ``-D`` options (flink-conf.yaml).

Arguments avoid Flink's option names: its parser matches long options by prefix, so ``--from``
would be taken for ``--fromSavepoint``; hence ``--start``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from infra.settings import get_settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs.ingest.main", description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="committed", help="as `strata job run --from`")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets latest at start")
    parser.add_argument("--pipeline-config", help="record pipeline configuration (YAML or JSON)")
    return parser.parse_args(argv)


def job_name(group_id: str) -> str:
    """What the cluster lists: the job and its consumer group (one instance per group)."""
    return f"strata-ingest ({group_id})"


def main(argv: Sequence[str] | None = None) -> None:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    from core.records.config import PipelineConfig
    from jobs.flink import flink_jar_urls
    from jobs.ingest.job import IngestOptions, StartPosition, build, prepare_tiers

    args = parse_args(argv)
    settings = get_settings()
    path = args.pipeline_config or settings.pipeline_config
    config = PipelineConfig.load(path) if path else None
    options = IngestOptions.from_settings(
        settings, start=StartPosition.parse(args.start), bounded=args.bounded, pipeline_config=config
    )
    prepare_tiers(settings, options)
    env = StreamExecutionEnvironment.get_execution_environment()
    # Appended to pipeline.jars (which already holds flink-python) and loaded here, before the
    # table environment exists, so its planner finds the connector factories.
    env.add_jars(*flink_jar_urls(settings))
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    statements = build(env, t_env, settings, options)
    statements.attach_as_datastream()
    env.execute(job_name(options.group_id))


if __name__ == "__main__":
    main()
