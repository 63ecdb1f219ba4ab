"""The field metrics job: Kafka ``logs`` → the metric rules' measurements → sketch contributions →
OpenSearch rule metric indices.

Graph::

    Kafka logs (Table source: the processed records' JSON + partition/offset metadata; own group)
      → fieldmetrics-measure     records no rule's tenant and service could match are dropped
                                 after reading those two keys; the rest are matched and their
                                 field read (core.fieldmetrics.FieldRules); rules re-read from
                                 PostgreSQL every fieldmetrics_rules_refresh_s
      → key by (tenant, rule)
      → fieldmetrics-aggregate   a record seen again (the ingest job writes ``logs`` at least once)
                                 is dropped by log_id; the rest add to open sketch contributions
                                 (keyed MapState: core.fieldmetrics.RuleAccumulator); every
                                 flush_s the changed ones go out as (id, index, document)
      → OpenSearch index requests (_id = contribution id), sent only at checkpoints

Why this is its own job and reads ``logs``: the ingest job then pays nothing at all for the rules
(its Python operators are already its bottleneck, docs/benchmarks.md), and ``logs`` holds each
stored record once, parsed and masked, past the ingest job's deduplication and replay marks; only
its at-least-once writes can repeat a record, which the log_id check removes.

Exactness follows core.metrics: a contribution is keyed by the ``logs`` position (partition,
offset) that opened it, so a restart from a checkpoint rewrites the same documents, and a run with
new state starts at the group's committed offsets, which a checkpoint commits together with the
flush of what it counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.kafka.security import sql_properties as kafka_sql_properties
from connectors.opensearch.connection import java_sink_options
from connectors.opensearch.flink_sink import Bulk, index_request_sink
from infra.settings import Settings
from jobs.fieldmetrics import names
from jobs.fieldmetrics.rulesource import FieldRuleSource, PostgresFieldRules


@dataclass(frozen=True)
class FieldMetricsOptions:
    logs_topic: str
    group_id: str
    index_prefix: str
    flush_s: int = 5  # how often changed contributions are emitted to the sink
    idle_s: int = 600  # a contribution idle this long is closed (core.metrics)
    seen_ttl_s: int = 3600  # how long a log_id is remembered to drop a repeat of its record

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FieldMetricsOptions:
        values: dict[str, Any] = {
            "logs_topic": settings.logs_topic,
            "group_id": settings.fieldmetrics_group,
            "index_prefix": settings.opensearch_index_prefix,
            "seen_ttl_s": settings.dedupe_ttl_s,
        }
        values.update(overrides)
        return cls(**values)


def checkpoint_name(options: FieldMetricsOptions) -> str:
    """The checkpoint folder of this instance, keyed by its consumer group."""
    return f"fieldmetrics-{options.group_id}"


def source_ddl(settings: Settings, options: FieldMetricsOptions) -> str:
    opts = {
        "connector": "kafka",
        "topic": options.logs_topic,
        "properties.bootstrap.servers": settings.kafka_servers,
        "properties.group.id": options.group_id,
        # A new group reads the topic from its start: the records it keeps were all stored.
        "scan.startup.mode": "group-offsets",
        "properties.auto.offset.reset": "earliest",
        "format": "raw",
        "scan.topic-partition-discovery.interval": "60s",
        **kafka_sql_properties(settings),
    }
    body = ",\n".join(f"  '{k}' = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in opts.items())
    return (
        "CREATE TEMPORARY TABLE fieldmetrics_logs (\n"
        "  `value` BYTES,\n"
        "  `partition` INT METADATA VIRTUAL,\n"
        "  `offset` BIGINT METADATA VIRTUAL\n"
        f") WITH (\n{body}\n)"
    )


def _functions(rules: FieldRuleSource, options: FieldMetricsOptions) -> tuple[Any, Any]:
    from pyflink.common import Row, Time, Types
    from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor

    from connectors.opensearch.field_metrics import field_metrics_index

    prefix = options.index_prefix
    flush_ms = options.flush_s * 1000

    class Measure(FlatMapFunction):
        def __init__(self, source: FieldRuleSource) -> None:
            self.source = source

        def open(self, runtime_context: RuntimeContext) -> None:
            self.source.start()
            self.unreadable = runtime_context.get_metrics_group().counter("unreadable_records")

        def close(self) -> None:
            self.source.stop()

        def flat_map(self, value: Any) -> Any:
            from core.fieldmetrics import measure_json

            try:
                found = measure_json(self.source.rules, bytes(value[0]))
            except ValueError:
                # not a record the ingest job wrote: counted, never fatal (it is stored elsewhere)
                self.unreadable.inc()
                return
            for tenant, log_id, m in found:
                yield (f"{tenant}\x1f{m.rule_id}", log_id, m, value[1], value[2])

    class Aggregate(KeyedProcessFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            from core.fieldmetrics import RuleAccumulator

            ctx = runtime_context
            pickled = Types.PICKLED_BYTE_ARRAY()
            self.contributions = ctx.get_map_state(MapStateDescriptor("open", Types.STRING(), pickled))
            self.dirty = ctx.get_map_state(MapStateDescriptor("dirty", Types.STRING(), Types.BOOLEAN()))
            seen = MapStateDescriptor("seen", Types.STRING(), Types.BOOLEAN())
            seen.enable_time_to_live(
                StateTtlConfig.new_builder(Time.seconds(options.seen_ttl_s))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .build()
            )
            self.seen = ctx.get_map_state(seen)
            self.timer = ctx.get_state(ValueStateDescriptor("timer", Types.LONG()))
            self.acc = RuleAccumulator(self.contributions, self.dirty)
            self.repeats = ctx.get_metrics_group().counter("repeated_records")

        def process_element(self, value: Any, ctx: Any) -> Any:
            _, log_id, measurement, partition, offset = value
            if self.seen.contains(log_id):
                self.repeats.inc()
                return
            self.seen.put(log_id, True)
            now_ms = ctx.timer_service().current_processing_time()
            self.acc.add(measurement, partition, offset, now_ms)
            due = self.timer.value()
            # None: no flush pending. Overdue: the pending timer did not fire (a timer lost across
            # a restore would leave this key's values unwritten for good).
            if due is None or due < now_ms - 2 * flush_ms:
                ctx.timer_service().register_processing_time_timer(now_ms + flush_ms)
                self.timer.update(now_ms + flush_ms)

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            import orjson

            tenant, rule_id = ctx.get_current_key().split("\x1f", 1)
            for doc_id, suffix, doc in self.acc.flush(tenant, rule_id):
                yield Row(doc_id, field_metrics_index(prefix, suffix), orjson.dumps(doc).decode())
            if timestamp != self.timer.value():
                return  # a timer another one has taken over from
            now_ms = ctx.timer_service().current_processing_time()
            if self.acc.close_idle(now_ms, options.idle_s):
                ctx.timer_service().register_processing_time_timer(now_ms + flush_ms)
                self.timer.update(now_ms + flush_ms)
            else:
                self.timer.clear()

    return Measure(rules), Aggregate()


def build(t_env: Any, settings: Settings, options: FieldMetricsOptions, rules: FieldRuleSource) -> Any:
    """Add the graph (see the module docstring) to ``t_env``'s environment."""
    from pyflink.common import Types

    t_env.execute_sql(source_ddl(settings, options))
    logs = t_env.to_data_stream(t_env.from_path("fieldmetrics_logs"))
    measure, aggregate = _functions(rules, options)
    measured = (
        logs.flat_map(measure, output_type=Types.PICKLED_BYTE_ARRAY()).name(names.MEASURE).uid(names.MEASURE)
    )
    docs = (
        measured.key_by(lambda v: v[0], key_type=Types.STRING())
        .process(aggregate, output_type=Types.ROW([Types.STRING(), Types.STRING(), Types.STRING()]))
        .name(names.AGGREGATE)
        .uid(names.AGGREGATE)
    )
    # Sent only when a checkpoint flushes the sink (as the log metrics' sink, jobs/ingest/metrics.py):
    # the store then holds what the last completed checkpoint restores.
    bulk = Bulk(actions=1_000_000, size_mb=256, interval_ms=2**31 - 1)
    sink = index_request_sink(settings.opensearch_endpoint.split(","), bulk, java_sink_options(settings))
    docs.sink_to(sink).name(names.SINK).uid(names.SINK)
    return docs


def prepare(settings: Settings, options: FieldMetricsOptions) -> None:
    """The rule metric indices' template, once OpenSearch answers."""
    from connectors.opensearch.connection import open_client
    from connectors.opensearch.field_metrics import ensure_field_template
    from connectors.opensearch.ready import opensearch_retriable, wait_for_cluster
    from connectors.retry import retry_until

    client = open_client(settings, timeout=30)
    wait_for_cluster(client, settings.service_wait_s)
    retry_until(
        lambda: ensure_field_template(client, options.index_prefix),
        what="OpenSearch rule metrics index template",
        retriable=opensearch_retriable,
        wait_s=settings.service_wait_s,
    )


def run(
    settings: Settings,
    options: FieldMetricsOptions,
    *,
    rules: FieldRuleSource | None = None,
    parallelism: int | None = None,
    restore: Path | None = None,
) -> float:
    """Build and execute the job on a local MiniCluster; returns how long it ran."""
    from jobs.flink import stream_environment

    prepare(settings, options)
    env, t_env = stream_environment(
        settings, checkpoint_name(options), parallelism=parallelism, restore=restore
    )
    rules = rules or PostgresFieldRules(settings.postgres_dsn, settings.fieldmetrics_rules_refresh_s)
    build(t_env, settings, options, rules)
    started = time.monotonic()
    env.execute("strata-fieldmetrics")
    return time.monotonic() - started
