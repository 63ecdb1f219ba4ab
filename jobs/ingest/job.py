"""The ingest job: Kafka ``raw_logs`` → records → OpenSearch (hot), Cassandra (warm), Parquet on S3
(cold), the ``logs`` topic (live tail) and ``raw_logs_dlq``.

Graph::

    Kafka raw_logs (Table source: value bytes + partition/offset metadata)
      → parse-normalize-mask (Python: core.records) ──side──→ raw_logs_dlq (DataStream KafkaSink)
      │                                            └─side──→ (tenant, day, service) → Cassandra
      ├→ hot projection (SQL) → OpenSearch daily indices (index requests, _id = log_id)
      │                                                            if the event is within hot_days
      → dedupe-by-log-id (SQL ROW_NUMBER, keep first, state TTL; one operator for every branch below)
      → warm projection (SQL) → Cassandra (batched per partition, USING TTL)
      → Parquet on s3a:// (FileSink, tenant/dt/hour, *.parquet)    if past the group's mark
      → Kafka logs (processed, masked JSON)                        if past the group's mark
      → log metrics per minute/hour/day → OpenSearch (jobs.ingest.metrics)   if past the mark

Delivery: every sink flushes (or commits) on checkpoints. OpenSearch and Cassandra are idempotent
on ``log_id``; the append-only outputs (archive, logs, DLQ) take only messages past what the
consumer group had already processed when the job started (:mod:`jobs.ingest.marks`), so a replay
re-fills the first and does not repeat itself in the others. OpenSearch takes rows before the
dedupe step on purpose: ``_id`` already makes a repeat one more version of the same document.
Cassandra takes them after it: its key holds the timestamp, which a retried entry without a time
of its own would change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from connectors.cassandra.flink_sink import Connection as CassandraConnection
from connectors.cassandra.flink_sink import batched_cassandra_sink
from connectors.kafka.security import java_security
from connectors.kafka.security import sql_properties as kafka_sql_properties
from connectors.opensearch.connection import java_sink_options
from connectors.opensearch.flink_sink import Bulk, index_request_sink, index_row_sql
from core.deadletter import DeadLetterCipher, dlq_secret
from core.ingest import DeadLetter, ingest_one
from core.records.config import PipelineConfig
from core.tiers import TierPolicy
from infra.settings import Settings
from jobs.ingest import names
from jobs.ingest.metrics import MetricsOptions, attach_metrics
from schemas.projections import (
    ARCHIVE_PARTITIONS,
    CQL_PARTITION_KEY,
    archive_flink_columns,
    archive_partition,
    cql_columns,
    cql_insert,
    cql_insert_service,
    flink_row_type_info,
    to_flink_row_values,
)
from schemas.record import FIELDS, Kind, micros


@dataclass(frozen=True)
class StartPosition:
    """Where the Kafka source starts: ``committed`` (default), ``earliest``, ``latest``,
    ``timestamp:<ISO 8601>`` or ``offsets:<partition>=<offset>,…``."""

    mode: str = "committed"
    timestamp_ms: int | None = None
    offsets: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, text: str) -> StartPosition:
        text = text.strip()
        if text in ("committed", "earliest", "latest"):
            return cls(text)
        kind, sep, rest = text.partition(":")
        if sep and kind == "timestamp":
            try:
                ts = datetime.fromisoformat(rest.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValueError(f"{rest!r} is not an ISO 8601 time ({exc})") from exc
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            return cls("timestamp", timestamp_ms=int(ts.timestamp() * 1000))
        if sep and kind == "offsets":
            pairs = []
            for item in rest.split(","):
                p, eq, o = item.partition("=")
                if not eq or not p.strip().isdigit() or not o.strip().isdigit():
                    raise ValueError(f"expected partition=offset pairs, got {item!r}")
                pairs.append((int(p), int(o)))
            return cls("offsets", offsets=tuple(pairs))
        raise ValueError("use committed, earliest, latest, timestamp:<ISO 8601> or offsets:<p>=<o>,…")

    def kafka_options(self) -> dict[str, str]:
        if self.mode == "committed":
            # A group with no committed offsets yet starts from the beginning: nothing is skipped.
            return {"scan.startup.mode": "group-offsets", "properties.auto.offset.reset": "earliest"}
        if self.mode == "earliest":
            return {"scan.startup.mode": "earliest-offset"}
        if self.mode == "latest":
            return {"scan.startup.mode": "latest-offset"}
        if self.mode == "timestamp":
            return {"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": str(self.timestamp_ms)}
        spec = ";".join(f"partition:{p},offset:{o}" for p, o in self.offsets)
        return {"scan.startup.mode": "specific-offsets", "scan.startup.specific-offsets": spec}


@dataclass(frozen=True)
class IngestOptions:
    """What one run of the job reads and writes; defaults come from settings."""

    raw_topic: str
    dlq_topic: str
    logs_topic: str
    group_id: str
    index_prefix: str
    keyspace: str
    table: str
    archive_path: str  # s3a://bucket/prefix or file:///… for tests
    start: StartPosition = StartPosition()
    bounded: bool = False  # stop at the offsets that were latest when the job started
    pipeline_config: PipelineConfig | None = None
    # (partition, offset): messages below it were archived by an earlier run of the group; found
    # by build() (jobs.ingest.marks), empty (everything is new) for a graph built without it.
    archived_through: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> IngestOptions:
        values: dict[str, Any] = {
            "raw_topic": settings.raw_topic,
            "dlq_topic": settings.dlq_topic,
            "logs_topic": settings.logs_topic,
            "group_id": settings.ingest_group,
            "index_prefix": settings.opensearch_index_prefix,
            "keyspace": settings.cassandra_keyspace,
            "table": settings.cassandra_table,
            "archive_path": f"s3a://{settings.s3_bucket}/{settings.archive_prefix}",
        }
        values.update(overrides)
        values["pipeline_config"] = (values.get("pipeline_config") or PipelineConfig()).for_deployment(
            settings.identity_key, local_stack=settings.uses_local_stack
        )
        return cls(**values)


# -- row types ------------------------------------------------------------------------------

# The archive keeps map-valued fields as JSON text (see schemas.projections.archive_flink_columns).
JSON_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind in (Kind.STRING_MAP, Kind.COUNT_MAP))

# Timestamps also as epoch microseconds: the warm tier's bigint columns.
MICROS_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind is Kind.TIMESTAMP)

EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    *((f"{name}_json", "STRING") for name in JSON_FIELDS),
    *((f"{name}_us", "BIGINT") for name in MICROS_FIELDS),
    ("warm_ttl", "INT"),  # seconds left in the warm window, 0: not for the warm tier
    ("dt", "STRING"),
    ("hour", "STRING"),
    ("in_hot", "BOOLEAN"),
    ("first_read", "BOOLEAN"),  # past the group's archive mark: the append-only outputs take it
    ("kafka_key", "STRING"),
    ("json", "STRING"),
    ("kafka_partition", "INT"),  # where the record was read: log metrics name contributions by it
    ("kafka_offset", "BIGINT"),
)


# -- the Python operator --------------------------------------------------------------------


def _parse_function(settings: Settings, options: IngestOptions) -> Any:
    from pyflink.common import Row
    from pyflink.datastream import OutputTag, ProcessFunction

    policy = TierPolicy(settings.hot_days, settings.warm_days)
    config = options.pipeline_config
    dlq_tag = OutputTag("dead-letters", _string_type())
    services_tag = OutputTag("warm-services", _services_type())
    marks = dict(options.archived_through)
    dlq_key = dlq_secret(settings.dlq_key, local_stack=settings.uses_local_stack)  # fails before submit

    class ParseFunction(ProcessFunction):
        def open(self, runtime_context: Any) -> None:
            from core.records.pipeline import RecordPipeline

            self.pipeline = RecordPipeline(config)
            self.dlq_cipher = DeadLetterCipher(dlq_key)
            # (tenant, day, service) already sent to the warm fan-out table by this subtask; the
            # upsert is idempotent, so forgetting (a restart, the bound) only costs a write.
            self.services_seen: set[tuple[str, str, str]] = set()

        def process_element(self, value: Any, ctx: Any) -> Any:
            raw, topic, partition, offset = value[0], value[1], value[2], value[3]
            now_us = time.time_ns() // 1000
            out = ingest_one(self.pipeline, policy, bytes(raw), topic, partition, offset, now_us)
            first_read = offset >= marks.get(partition, 0)
            if isinstance(out, DeadLetter):
                if first_read:
                    yield dlq_tag, out.to_json(self.dlq_cipher, self.pipeline.mask_text)
                return
            record, hot, warm, ttl = out
            dt, hour = archive_partition(record)  # dt is also the warm table's day (cql_day)
            if warm:
                key = (record.tenant, dt, record.service)
                if key not in self.services_seen:
                    if len(self.services_seen) > 100_000:
                        self.services_seen.clear()
                    self.services_seen.add(key)
                    yield services_tag, Row(*key, ttl)
            values = to_flink_row_values(record)
            values += [orjson.dumps(getattr(record, name)).decode() for name in JSON_FIELDS]
            values += [micros(getattr(record, name)) for name in MICROS_FIELDS]
            values += [
                ttl if warm else 0,
                dt,
                hour,
                hot,
                first_read,
                f"{record.tenant}/{record.service}",
                orjson.dumps(record.to_dict()).decode(),
                partition,
                offset,
            ]
            yield Row(*values)

    return ParseFunction(), dlq_tag, services_tag


def _services_type() -> Any:
    from pyflink.common import Types

    return Types.ROW([Types.STRING(), Types.STRING(), Types.STRING(), Types.INT()])


def _string_type() -> Any:
    from pyflink.common import Types

    return Types.STRING()


# -- DDL ------------------------------------------------------------------------------------


def _with(options: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("'", "''")

    return ",\n".join(f"  '{esc(k)}' = '{esc(v)}'" for k, v in options.items())


def source_ddl(settings: Settings, options: IngestOptions) -> str:
    opts = {
        "connector": "kafka",
        "topic": options.raw_topic,
        "properties.bootstrap.servers": settings.kafka_servers,
        "properties.group.id": options.group_id,
        "properties.isolation.level": "read_committed",
        "format": "raw",
        "scan.topic-partition-discovery.interval": "60s",
        **kafka_sql_properties(settings),
        **options.start.kafka_options(),
    }
    if options.bounded:
        opts["scan.bounded.mode"] = "latest-offset"
    return (
        "CREATE TEMPORARY TABLE raw_source (\n"
        "  `value` BYTES,\n"
        "  `topic` STRING METADATA VIRTUAL,\n"
        "  `partition` INT METADATA VIRTUAL,\n"
        "  `offset` BIGINT METADATA VIRTUAL\n"
        f") WITH (\n{_with(opts)}\n)"
    )


# The Parquet writer's settings, as Flink's Parquet format takes them: zstd, timestamps as int64
# microseconds (not the legacy int96), converted in UTC.
COLD_PARQUET_CONF = {
    "parquet.compression": "ZSTD",
    "parquet.write.int64.timestamp": "true",
    "parquet.timestamp.time.unit": "micros",
}


def attach_cold_sink(t_env: Any, table: Any, options: IngestOptions) -> None:
    """The archive's sink (``dev.strata.flink.ArchiveParquetSink``): ``table``'s rows as Parquet
    files ``part-<uuid>-<subtask>-<n>.parquet`` under ``tenant=…/dt=…/hour=…/``, each one visible
    once the checkpoint that wrote it completes, and nothing else under the prefix (Flink's
    filesystem SQL connector names its files without a suffix and adds _SUCCESS markers, which are
    not Parquet, to the folders)."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import to_jarray

    gateway = get_gateway()
    jstring = gateway.jvm.String
    gateway.jvm.dev.strata.flink.ArchiveParquetSink.attach(
        t_env._j_tenv,
        table._j_table,
        options.archive_path,
        to_jarray(jstring, list(ARCHIVE_PARTITIONS)),
        to_jarray(jstring, [f"{k}={v}" for k, v in COLD_PARQUET_CONF.items()]),
        True,
        names.COLD_SINK,
    )


# A record (up to a 1 MiB line's worth of attributes, plus its message) and a dead letter (the
# original bytes, base64 when they are not UTF-8) can pass the producer's 1 MB default; the
# stack's broker takes up to 10 MiB, so the producers may send up to 8.
SINK_MAX_REQUEST_BYTES = 8 * 1024 * 1024


def logs_sink_ddl(settings: Settings, options: IngestOptions) -> str:
    opts = {
        "connector": "kafka",
        "topic": options.logs_topic,
        "properties.bootstrap.servers": settings.kafka_servers,
        "key.format": "raw",
        "key.fields": "kafka_key",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        "sink.delivery-guarantee": "at-least-once",
        "properties.compression.type": "zstd",
        "properties.linger.ms": "20",
        "properties.max.request.size": str(SINK_MAX_REQUEST_BYTES),
        **kafka_sql_properties(settings),
    }
    columns = "  `kafka_key` STRING,\n  `json` STRING"
    return f"CREATE TEMPORARY TABLE logs_sink (\n{columns}\n) WITH (\n{_with(opts)}\n)"


def _record_select(*, json: bool = False) -> str:
    """The record's columns for the sinks, timestamps at the record's microsecond precision;
    with ``json``, map-valued fields as their JSON text (the archive's layout)."""
    out = []
    for f in FIELDS:
        if json and f.name in JSON_FIELDS:
            out.append(f"`{f.name}_json` AS `{f.name}`")
        elif f.kind is Kind.TIMESTAMP:
            out.append(f"CAST(`{f.name}` AS TIMESTAMP(6)) AS `{f.name}`")
        else:
            out.append(f"`{f.name}`")
    return ", ".join(out)


def _warm_select() -> str:
    """The Cassandra insert's values in :func:`cql_columns` order, then the TTL."""
    derived = {"day": "`dt`"}
    out = []
    for name, _ in cql_columns():
        if name in derived:
            out.append(f"{derived[name]} AS `{name}`")
        elif name in MICROS_FIELDS:
            out.append(f"`{name}_us` AS `{name}`")
        else:
            out.append(f"`{name}`")
    return ", ".join([*out, "`warm_ttl`"])


# -- the graph ------------------------------------------------------------------------------


@dataclass
class Processed:
    """The processing part of the graph, before any sink: what a job test collects."""

    dedupe_view: str  # a temporary view: the deduplicated records with EXTRA_COLUMNS
    dead_letters: Any  # DataStream[str]: DeadLetter JSON
    warm_rows: Any  # DataStream[Row]: Cassandra values + TTL, deduplicated
    warm_services: Any  # DataStream[Row]: (tenant, day, service, TTL)
    hot_rows: Any  # DataStream[Row]: (log_id, daily index, JSON) of the hot records, before deduplication


def raw_source(t_env: Any, settings: Settings, options: IngestOptions) -> Any:
    """``raw_logs`` as a DataStream of Row(value, topic, partition, offset)."""
    t_env.execute_sql(source_ddl(settings, options))
    return t_env.to_data_stream(t_env.from_path("raw_source"))


def build_processing(t_env: Any, raw: Any, settings: Settings, options: IngestOptions) -> Processed:
    """Parse, route and deduplicate ``raw`` (Row(value, topic, partition, offset) elements)."""
    from pyflink.table import Schema

    t_env.get_config().set("table.exec.state.ttl", f"{settings.dedupe_ttl_s} s")
    parse, dlq_tag, services_tag = _parse_function(settings, options)
    parsed = (
        raw.process(parse, output_type=flink_row_type_info(EXTRA_COLUMNS)).name(names.PARSE).uid(names.PARSE)
    )
    t_env.create_temporary_view(
        "parsed",
        t_env.from_data_stream(
            parsed, Schema.new_builder().column_by_expression("proc_time", "PROCTIME()").build()
        ),
    )
    # Keep-first deduplication on processing time: append-only, state kept dedupe_ttl_s per log_id.
    # Every consumer reads it through one DataStream: the planner optimises each Table-to-DataStream
    # conversion and the statement set apart, so a view over the SQL itself would be deduplicated
    # once per consumer (three shuffles and three copies of the keyed state).
    columns = ", ".join(f"`{name}`" for name in (*(f.name for f in FIELDS), *(n for n, _ in EXTRA_COLUMNS)))
    deduped = t_env.sql_query(
        f"SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER "
        "(PARTITION BY `log_id` ORDER BY `proc_time` ASC) AS rn FROM parsed) WHERE rn = 1"
    )
    t_env.create_temporary_view("deduped", t_env.from_data_stream(t_env.to_data_stream(deduped)))
    # Warm rows are projected on the Java side from the deduplicated records: one row type crosses
    # from Python, not two. After the dedupe, not before: the table's primary key holds the
    # timestamp, and a retried entry without a time of its own has the same log_id but the retry's
    # arrival time, which would be a second row.
    warm = t_env.sql_query(f"SELECT {_warm_select()} FROM deduped WHERE `warm_ttl` > 0")
    # Hot rows likewise: an index request with _id = log_id makes a repeat one more version of the
    # same document, and a second dedupe (the planner does not share one between a DataStream and
    # the statement set) would cost every record a shuffle and an hour of keyed state.
    hot = t_env.sql_query(f"SELECT {index_row_sql(options.index_prefix)}, `json` FROM parsed WHERE in_hot")
    return Processed(
        "deduped",
        parsed.get_side_output(dlq_tag),
        t_env.to_data_stream(warm),
        parsed.get_side_output(services_tag),
        t_env.to_data_stream(hot),
    )


def attach_sinks(t_env: Any, processed: Processed, settings: Settings, options: IngestOptions) -> Any:
    """The DLQ, OpenSearch and Cassandra sinks on the streams, and the statement set of the Table sinks."""
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

    dlq_builder = KafkaSink.builder().set_bootstrap_servers(settings.kafka_servers)
    for key, value in java_security(settings).items():
        dlq_builder = dlq_builder.set_property(key, value)
    dlq_sink = (
        dlq_builder.set_property("max.request.size", str(SINK_MAX_REQUEST_BYTES))
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(options.dlq_topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )
    processed.dead_letters.sink_to(dlq_sink).name(names.DLQ_SINK).uid(names.DLQ_SINK)

    hot_sink = index_request_sink(
        settings.opensearch_endpoint.split(","),
        Bulk(
            actions=settings.opensearch_bulk_actions,
            size_mb=settings.opensearch_bulk_size_mb,
            interval_ms=settings.opensearch_bulk_interval_ms,
        ),
        java_sink_options(settings),
    )
    processed.hot_rows.sink_to(hot_sink).name(names.HOT_SINK).uid(names.HOT_SINK)

    host = settings.cassandra_contact_points[0]
    warm_connection = CassandraConnection.from_settings(settings)
    columns = [name for name, _ in cql_columns()]
    warm_sink = batched_cassandra_sink(
        host,
        settings.cassandra_port,
        cql_insert(options.keyspace, options.table) + " USING TTL ?",
        [columns.index(name) for name in CQL_PARTITION_KEY],
        connection=warm_connection,
    )
    processed.warm_rows.add_sink(warm_sink).name(names.WARM_SINK).uid(names.WARM_SINK)
    services_sink = batched_cassandra_sink(
        host,
        settings.cassandra_port,
        cql_insert_service(options.keyspace, options.table) + " USING TTL ?",
        [0, 1],  # (tenant, day)
        connection=warm_connection,
    )
    processed.warm_services.add_sink(services_sink).name(names.WARM_SERVICES_SINK).uid(
        names.WARM_SERVICES_SINK
    )

    view = processed.dedupe_view
    t_env.execute_sql(logs_sink_ddl(settings, options))
    statements = t_env.create_statement_set()
    # The archive's own column types (schemas.projections), so its files keep one schema.
    cold_columns = ", ".join(f"CAST(`{n}` AS {t}) AS `{n}`" for n, t in archive_flink_columns())
    cold_rows = f"SELECT {_record_select(json=True)}, `dt`, `hour` FROM {view} WHERE first_read"
    attach_cold_sink(t_env, t_env.sql_query(f"SELECT {cold_columns} FROM ({cold_rows})"), options)
    statements.add_insert_sql(
        f"INSERT INTO logs_sink SELECT `kafka_key`, `json` FROM {view} WHERE first_read"
    )
    if settings.log_metrics:
        attach_metrics(t_env, view, settings, MetricsOptions.from_settings(settings, options.index_prefix))
    return statements


def build(env: Any, t_env: Any, settings: Settings, options: IngestOptions) -> Any:
    """Add the whole ingest graph to ``env``/``t_env``; returns the statement set to attach.

    Reads (and moves forward) the consumer group's archive marks in Kafka first.
    """
    from jobs.ingest.marks import archived_through

    marks = archived_through(settings, options.raw_topic, options.group_id)
    options = replace(options, archived_through=tuple(sorted(marks.items())))
    processed = build_processing(t_env, raw_source(t_env, settings, options), settings, options)
    return attach_sinks(t_env, processed, settings, options)


def prepare_tiers(settings: Settings, options: IngestOptions) -> None:
    """Create what the sinks expect before the job starts: the index template, the tables, and
    the warm table's indexes as STRATA_WARM_INDEXES lists them (none by default; the other
    Strata-made ones are dropped, so a deployment stops paying for them).

    OpenSearch and Cassandra may have started moments ago: each step waits, up to
    ``service_wait_s``, for a service that is not ready yet.
    """
    from connectors.cassandra.connection import cluster_options
    from connectors.cassandra.indexes import apply_warm_indexes
    from connectors.cassandra.ready import connect_when_ready, execute_schema
    from connectors.kafka.ready import ensure_topic
    from connectors.opensearch.connection import open_client
    from connectors.opensearch.metrics import ensure_template
    from connectors.opensearch.ready import opensearch_retriable, wait_for_cluster
    from connectors.retry import retry_until
    from schemas.projections import (
        cql_create_services_table,
        cql_create_table,
        opensearch_index_template,
    )

    wait_s = settings.service_wait_s
    ensure_topic(settings, options.dlq_topic)  # with its own retention (STRATA_DLQ_RETENTION_HOURS)
    client = open_client(settings, timeout=30)
    wait_for_cluster(client, wait_s)
    retry_until(
        lambda: client.indices.put_index_template(
            name=options.index_prefix,
            body=opensearch_index_template(
                options.index_prefix, refresh_interval=settings.opensearch_refresh_interval
            ),
        ),
        what="OpenSearch index template",
        retriable=opensearch_retriable,
        wait_s=wait_s,
    )
    retry_until(
        lambda: ensure_template(client, options.index_prefix),
        what="OpenSearch metrics index template",
        retriable=opensearch_retriable,
        wait_s=wait_s,
    )
    cluster, session = connect_when_ready(
        settings.cassandra_contact_points, settings.cassandra_port, wait_s, **cluster_options(settings)
    )
    try:
        ttl = settings.warm_days * 86400
        statements = [
            f"CREATE KEYSPACE IF NOT EXISTS {options.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.cassandra_replication_factor}}}",
            cql_create_table(options.keyspace, options.table, default_ttl_seconds=ttl),
            cql_create_services_table(options.keyspace, options.table, default_ttl_seconds=ttl),
        ]
        for statement in statements:
            execute_schema(session, statement, wait_s)
        apply_warm_indexes(
            session, options.keyspace, options.table, settings.warm_index_targets, wait_s=wait_s
        )
    finally:
        cluster.shutdown()


def checkpoint_name(options: IngestOptions) -> str:
    """The checkpoint folder of this ingest instance, keyed by its consumer group."""
    return f"ingest-{options.group_id}"


def run(
    settings: Settings,
    options: IngestOptions,
    *,
    parallelism: int | None = None,
    restore: Path | None = None,
    wait: bool = True,
) -> Any:
    """Build and execute the job on a local MiniCluster; returns the job client when not waiting."""
    from jobs.flink import stream_environment

    prepare_tiers(settings, options)
    env, t_env = stream_environment(
        settings, checkpoint_name(options), parallelism=parallelism, restore=restore
    )
    statements = build(env, t_env, settings, options)
    statements.attach_as_datastream()
    if wait:
        env.execute("strata-ingest")
        return None
    return env.execute_async("strata-ingest")
