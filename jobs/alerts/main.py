"""The alerts job's entry point under ``flink run``, in the shape of ``jobs.ingest.main``::

    flink run -m flink:8081 -pym jobs.alerts.main -pyfs strata.zip [-D …] --start committed

It runs in the driver process ``flink run`` starts: it reads Strata's settings from the
environment, makes sure the alert topic exists, builds the same graph as ``strata job run alerts``
and hands it to the cluster. Rules come from PostgreSQL (``STRATA_POSTGRES_*``), which the
cluster's Python workers must reach. Checkpointing and restarts come as ``-D`` options.
``--start`` rather than ``--from``: Flink's parser would take ``--from`` for ``--fromSavepoint``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from infra.settings import get_settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs.alerts.main", description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="committed", choices=("committed", "earliest", "latest"))
    parser.add_argument("--pipeline-config", help="the ingest job's record pipeline configuration")
    return parser.parse_args(argv)


def job_name(group_id: str) -> str:
    """What the cluster lists: the job and its consumer group (one instance per group)."""
    return f"strata-alerts ({group_id})"


def main(argv: Sequence[str] | None = None) -> None:
    from pyflink.common import WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment

    from connectors.kafka.ready import ensure_alerts_topic
    from core.records.config import PipelineConfig
    from jobs.alerts import names
    from jobs.alerts.job import AlertsOptions, build, kafka_sink, kafka_source
    from jobs.alerts.rulesource import PostgresRules
    from jobs.flink import flink_jar_urls

    args = parse_args(argv)
    settings = get_settings()
    path = args.pipeline_config or settings.pipeline_config
    config = PipelineConfig.load(path) if path else None
    options = AlertsOptions.from_settings(settings, start=args.start, pipeline_config=config)
    ensure_alerts_topic(settings, options.alerts_topic)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.add_jars(*flink_jar_urls(settings))
    source = env.from_source(kafka_source(settings, options), WatermarkStrategy.no_watermarks(), names.SOURCE)
    rules = PostgresRules(settings.postgres_dsn, settings.alerts_rules_refresh_s)
    events = build(
        env,
        source.uid(names.SOURCE),
        rules,
        lateness_ms=options.lateness_ms,
        idle_ms=options.idle_ms,
        pipeline_config=options.pipeline_config,
        max_groups=(settings.alerts_max_groups_per_rule, settings.alerts_max_groups_per_tenant),
    )
    events.sink_to(kafka_sink(settings, options.alerts_topic)).name(names.SINK).uid(names.SINK)
    env.execute(job_name(options.group_id))


if __name__ == "__main__":
    main()
