"""A smoke job that proves every connector jar loads and writes: Kafka in, OpenSearch, Cassandra
and Parquet on S3 out.

It reads the JSON messages ``{"id": ..., "message": ..., "n": ...}`` already in a topic (bounded at
the latest offsets, so the job ends), and writes each one to the three tiers through the same
connectors the ingest job uses::

    python -m tests.integration.smoke_job --topic t --index i --keyspace ks --table t --s3-path s3a://bucket/prefix/

The target keyspace and table must exist: (id text PRIMARY KEY, message text, n bigint).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyflink.common import Configuration, Row, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.cassandra import CassandraSink
from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig
from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource
from pyflink.datastream.formats.parquet import ParquetBulkWriters
from pyflink.table import DataTypes, StreamTableEnvironment

from infra.settings import Settings, get_settings
from jobs.flink import enable_filesystems, flink_jar_urls, s3_options

FIELDS = ["id", "message", "n"]
ROW_TYPE_INFO = Types.ROW_NAMED(FIELDS, [Types.STRING(), Types.STRING(), Types.LONG()])
PARQUET_ROW_TYPE = DataTypes.ROW(
    [
        DataTypes.FIELD("id", DataTypes.STRING()),
        DataTypes.FIELD("message", DataTypes.STRING()),
        DataTypes.FIELD("n", DataTypes.BIGINT()),
    ]
)


@dataclass(frozen=True)
class SmokeTargets:
    topic: str
    index: str
    keyspace: str
    table: str
    s3_path: str  # s3a://bucket/prefix/ (or file:// for a run without S3)
    group_id: str = "strata-smoke"


def parse_message(value: str) -> Row:
    doc = json.loads(value)
    return Row(str(doc["id"]), str(doc["message"]), int(doc["n"]))


def job_configuration(settings: Settings, *, checkpoint_ms: int = 1000) -> Configuration:
    """The Flink configuration a local run needs: the connector jars, checkpoints, S3 options."""
    config = Configuration()
    config.set_string("pipeline.jars", ";".join(flink_jar_urls(settings)))
    # Bulk formats (Parquet) only commit files on a checkpoint, the final one included.
    config.set_string("execution.checkpointing.interval", f"{checkpoint_ms}ms")
    # Checkpointing turns on endless restarts by default; a smoke run should fail, not loop.
    config.set_string("restart-strategy.type", "none")
    # Python workers must run in this interpreter's environment, not whatever `python` is on PATH.
    config.set_string("python.executable", sys.executable)
    for key, value in s3_options(settings).items():
        config.set_string(key, value)
    return config


def build(env: StreamExecutionEnvironment, settings: Settings, targets: SmokeTargets) -> None:
    """Add the smoke graph to ``env``: one Kafka source, three sinks."""
    source = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_servers)
        .set_topics(targets.topic)
        .set_group_id(targets.group_id)
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .build()
    )
    raw = env.from_source(source, WatermarkStrategy.no_watermarks(), "kafka-source").uid("smoke-kafka-source")
    rows: DataStream = raw.map(parse_message, output_type=ROW_TYPE_INFO).name("parse").uid("smoke-parse")

    # Cassandra: PyFlink's CassandraSink (a SinkFunction); an upsert on the primary key.
    host = settings.cassandra_contact_points[0]
    (
        CassandraSink.add_sink(rows)
        .set_query(f"INSERT INTO {targets.keyspace}.{targets.table} (id, message, n) VALUES (?, ?, ?);")
        .set_host(host, settings.cassandra_port)
        .build()
        .name("cassandra-sink")
        .uid("smoke-cassandra-sink")
    )

    # Parquet: a bulk FileSink; part files become visible when a checkpoint completes.
    parquet_sink = (
        FileSink.for_bulk_format(targets.s3_path, ParquetBulkWriters.for_row_type(PARQUET_ROW_TYPE))
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_output_file_config(OutputFileConfig.builder().with_part_suffix(".parquet").build())
        .build()
    )
    rows.sink_to(parquet_sink).name("parquet-sink").uid("smoke-parquet-sink")

    # OpenSearch: the opensearch-2 connector has no Python wrapper, so the Table API reaches it.
    # The primary key becomes the document _id, so a replay overwrites instead of duplicating.
    t_env = StreamTableEnvironment.create(env)
    t_env.create_temporary_view("smoke_rows", t_env.from_data_stream(rows))
    t_env.execute_sql(
        f"""
        CREATE TEMPORARY TABLE smoke_opensearch (
            id STRING, message STRING, n BIGINT, PRIMARY KEY (id) NOT ENFORCED
        ) WITH (
            'connector' = 'opensearch-2',
            'hosts' = '{settings.opensearch_endpoint}',
            'index' = '{targets.index}',
            'sink.delivery-guarantee' = 'at-least-once',
            'sink.bulk-flush.max-actions' = '1000',
            'sink.bulk-flush.interval' = '1s'
        )
        """
    )
    statements = t_env.create_statement_set()
    statements.add_insert_sql("INSERT INTO smoke_opensearch SELECT id, message, n FROM smoke_rows")
    # Attaching the insert to the DataStream graph makes one job with all three sinks.
    statements.attach_as_datastream()


def run(targets: SmokeTargets, settings: Settings | None = None, *, parallelism: int = 1) -> None:
    """Run the smoke job to completion on a local (embedded) Flink."""
    settings = settings or get_settings()
    config = job_configuration(settings)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    enable_filesystems(settings, config)
    build(env, settings, targets)
    env.execute("strata-smoke")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.integration.smoke_job", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--topic", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--s3-path", required=True)
    parser.add_argument("--group-id", default="strata-smoke")
    args = parser.parse_args(argv)
    run(SmokeTargets(args.topic, args.index, args.keyspace, args.table, args.s3_path, args.group_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
