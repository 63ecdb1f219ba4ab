"""The alerts job: Kafka ``raw_logs`` → records → rule groups → windows and states → ``alert_events``.

Graph::

    Kafka raw_logs (own consumer group: never waits for the ingest job or any tier)
      → alerts-parse-match    RecordPipeline, as the ingest job runs it (rejected input is the
                              ingest job's to dead-letter; here it is only skipped), then one
                              point per (rule, group) the record counts in; rules re-read from
                              PostgreSQL every alerts_rules_refresh_s
      → alerts-event-time     timestamps = record time, bounded out-of-orderness, idle splits
      → key by (rule, group)
      → alerts-evaluate-windows   GroupEvaluator in keyed state, event-time timers at window ends
      → Kafka alert_events    one JSON event per state change, read by `strata alerts notify`

The keyed state holds each group's buckets and alert status, so a restart from a checkpoint
neither loses a firing in progress nor sends one twice: events replayed after a restore carry the
ids they had (see :func:`core.alerts.evaluate.event_id`) and the notifier records each once.
Notification is another process, so a slow or dead receiver never slows this job.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.kafka.ready import ensure_alerts_topic
from core.records.config import PipelineConfig
from infra.settings import Settings
from jobs.alerts import names
from jobs.alerts.rulesource import PostgresRules, RuleSource

CLOCK_EVERY_MS = 100  # event-time resolution of the watermark when no record matches a rule
STATE_TTL_DAYS = 31  # a group silent this long is forgotten (new_pattern keeps what it has seen)


@dataclass(frozen=True)
class AlertsOptions:
    raw_topic: str
    alerts_topic: str
    group_id: str
    lateness_ms: int
    idle_ms: int
    start: str = "committed"  # committed (else latest), earliest or latest
    # The ingest job's configuration: alerts must see the services, levels and ids that are stored.
    pipeline_config: PipelineConfig | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AlertsOptions:
        values: dict[str, Any] = {
            "raw_topic": settings.raw_topic,
            "alerts_topic": settings.alerts_topic,
            "group_id": settings.alerts_group,
            "lateness_ms": settings.alerts_lateness_s * 1000,
            "idle_ms": settings.alerts_idle_s * 1000,
        }
        values.update(overrides)
        # The ingest job's identity key too: a sample's log_id must name the stored record.
        values["pipeline_config"] = (values.get("pipeline_config") or PipelineConfig()).for_deployment(
            settings.identity_key, local_stack=settings.uses_local_stack
        )
        return cls(**values)


# -- the Python functions (thin: the logic is in core.alerts.evaluate and .matching) -------------


def clock_point(ts_ms: int) -> Any:
    from core.alerts.matching import Point

    return Point("", "", (), ts_ms, False, None, None)


def _functions(
    rules: RuleSource, config: PipelineConfig | None, max_groups: tuple[int, int]
) -> tuple[Any, Any, Any]:
    from pyflink.common import Time, Types
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.datastream import FlatMapFunction, KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import StateTtlConfig, ValueStateDescriptor

    class ParseMatch(FlatMapFunction):
        """Parse and match in one step, so only the small points leave Python, not records.

        Event time must advance with every record, matching or not; a record that yields no
        point sends a bare clock point instead, at most one per CLOCK_EVERY_MS of event time."""

        def __init__(self, source: RuleSource) -> None:
            self.source = source

        def open(self, runtime_context: RuntimeContext) -> None:
            from core.records.pipeline import RecordPipeline

            self.pipeline = RecordPipeline(config)
            self.source.start()
            self.rejected = runtime_context.get_metrics_group().counter("rejected_records")
            self.sent_ts = -(2**62)

        def close(self) -> None:
            self.source.stop()

        def flat_map(self, value: Any) -> Iterator[Any]:
            from schemas.record import Record, micros

            result = self.pipeline.process(value if isinstance(value, bytes | str) else bytes(value))
            if not isinstance(result, Record):
                self.rejected.inc()
                return
            points = self.source.matcher.points(result)
            if points:
                yield from points
                self.sent_ts = max(self.sent_ts, points[0].ts_ms)
                return
            ts = micros(result.timestamp) // 1000
            if ts >= self.sent_ts + CLOCK_EVERY_MS:
                self.sent_ts = ts
                yield clock_point(ts)

    class PointTime(TimestampAssigner):
        def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
            return int(value.ts_ms)

    class Evaluate(KeyedProcessFunction):
        def __init__(self, source: RuleSource) -> None:
            self.source = source

        def open(self, runtime_context: RuntimeContext) -> None:
            self.source.start()
            descriptor = ValueStateDescriptor("group", Types.PICKLED_BYTE_ARRAY())
            descriptor.enable_time_to_live(
                StateTtlConfig.new_builder(Time.days(STATE_TTL_DAYS))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .build()
            )
            self.state = runtime_context.get_state(descriptor)
            metrics = runtime_context.get_metrics_group()
            self.late = metrics.counter("late_points")
            self.emitted = metrics.counter("alert_events")
            self.refused = metrics.counter("group_cap_refused_points")
            from core.alerts.caps import GroupCaps

            per_rule, per_tenant = max_groups
            self.caps = GroupCaps(per_rule, per_tenant, runtime_context.get_number_of_parallel_subtasks())

        def close(self) -> None:
            self.source.stop()

        def _load(self) -> Any:
            from core.alerts.evaluate import GroupEvaluator

            data = self.state.value()
            return None if data is None else GroupEvaluator.from_bytes(data)

        def _save(self, ev: Any, ctx: Any) -> None:
            if ev.empty:
                self.caps.release(ev.key.split("\x1f", 1)[0], ev.tenant, ev.key)
                self.state.clear()
                return
            nxt = ev.next_timer()
            if nxt is not None and nxt != ev.timer_ms:
                ev.timer_ms = nxt
                ctx.timer_service().register_event_time_timer(nxt)
            self.state.update(ev.to_bytes())

        def process_element(self, point: Any, ctx: Any) -> Iterator[str]:
            from core.alerts.evaluate import GroupEvaluator

            if not point.rule_id:
                return  # a clock point: it has moved the watermark on its way here
            rule = self.source.get(point.rule_id)
            if rule is None:  # removed between the two operators' refreshes
                return
            ev = self._load()
            if not self.caps.admit(rule.id, rule.tenant, point.key, existing=ev is not None):
                self.refused.inc()
                overflow = self.caps.overflow_event(rule, point.ts_ms)
                if overflow is not None:
                    self.emitted.inc()
                    yield overflow.to_json().decode()
                return
            if ev is None:
                ev = GroupEvaluator(point.key, rule.tenant, point.group, rule.group_by)
            late = ev.late
            watermark = ctx.timer_service().current_watermark()
            events = ev.add(rule, point, watermark if watermark > -(2**62) else None)
            if ev.late != late:
                self.late.inc()
            self._save(ev, ctx)
            for event in events:
                self.emitted.inc()
                yield event.to_json().decode()

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[str]:
            ev = self._load()
            if ev is None:
                return
            # Any timer of the key evaluates what the watermark has passed and arms the next one,
            # superseded ones included: evaluating is idempotent (a window is decided once), and a
            # restored key whose state names a timer the restored timers lack (seen after a kill
            # right after a firing) would otherwise wait for its next record to evaluate again.
            ev.timer_ms = None
            rule = self.source.get(ev.key.split("\x1f", 1)[0])
            events = ev.advance(rule, timestamp)
            self._save(ev, ctx)
            for event in events:
                self.emitted.inc()
                yield event.to_json().decode()

    return ParseMatch(rules), PointTime(), Evaluate(rules)


def build(
    env: Any,
    source: Any,
    rules: RuleSource,
    *,
    lateness_ms: int,
    idle_ms: int,
    pipeline_config: PipelineConfig | None = None,
    max_groups: tuple[int, int] = (10_000, 100_000),
) -> Any:
    """Add the alerting graph after ``source`` (a stream of ``raw_logs`` message values) and return
    the stream of alert events (JSON strings). ``env`` is unused but kept for the jobs' common shape."""
    from pyflink.common import Duration, Types, WatermarkStrategy

    parse_match, point_time, evaluate = _functions(rules, pipeline_config, max_groups)
    points = source.flat_map(parse_match, output_type=Types.PICKLED_BYTE_ARRAY())
    points = points.name(names.PARSE_MATCH).uid(names.PARSE_MATCH)
    # Idleness first: PyFlink's with_idleness returns a new strategy without the Python
    # timestamp assigner, which would leave Kafka's arrival times as event times.
    strategy = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(lateness_ms))
        .with_idleness(Duration.of_millis(idle_ms))
        .with_timestamp_assigner(point_time)
    )
    timed = points.assign_timestamps_and_watermarks(strategy).name(names.EVENT_TIME).uid(names.EVENT_TIME)
    return (
        timed.key_by(lambda p: p.key, key_type=Types.STRING())
        .process(evaluate, output_type=Types.STRING())
        .name(names.EVALUATE)
        .uid(names.EVALUATE)
    )


# -- running it ---------------------------------------------------------------------------------


def checkpoint_dir(settings: Settings) -> Path:
    """Keyed by the consumer group, as the ingest job's, so two instances never share state."""
    from jobs.flink import checkpoint_root

    return settings.alerts_checkpoint_dir or checkpoint_root(settings, f"alerts-{settings.alerts_group}")


def latest_checkpoint(settings: Settings) -> Path | None:
    """The newest completed checkpoint (``<job id>/chk-N`` with ``_metadata``), if any."""
    done = [m.parent for m in checkpoint_dir(settings).glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])), default=None)


def environment(settings: Settings, *, parallelism: int | None = None, restore: Path | None = None) -> Any:
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    from jobs.flink import flink_jar_urls, job_configuration

    conf = job_configuration(settings, "alerts", parallelism=parallelism, restore=restore)
    conf["state.checkpoints.dir"] = checkpoint_dir(settings).resolve().as_uri()
    conf["execution.checkpointing.interval"] = f"{int(settings.alerts_checkpoint_s * 1000)} ms"
    conf["execution.checkpointing.min-pause"] = "1 s"
    # Small bundles: an alert waits for the bundle it is in, twice (before and after the key_by).
    conf["python.fn-execution.bundle.time"] = "100"
    conf["python.fn-execution.bundle.size"] = "1000"
    conf["pipeline.jars"] = ";".join(flink_jar_urls(settings))
    conf.setdefault("python.executable", sys.executable)  # the interpreter that has Strata and pyflink
    config = Configuration()
    for key, value in conf.items():
        config.set_string(key, value)
    return StreamExecutionEnvironment.get_execution_environment(config)


def kafka_source(settings: Settings, options: AlertsOptions) -> Any:
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource
    from pyflink.java_gateway import get_gateway

    from connectors.kafka.security import java_security

    # PyFlink's KafkaOffsetResetStrategy names the class as the uber jar shades it; the thin
    # connector jar Strata loads has it unshaded, so the Java initializer is built directly.
    jvm: Any = get_gateway().jvm
    latest = jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.LATEST
    initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer
    starts = {
        # A new consumer group starts at the end: alerting on a week of history would page
        # people for problems long over. A restore uses the checkpoint's offsets instead.
        "committed": KafkaOffsetsInitializer(initializer.committedOffsets(latest)),
        "earliest": KafkaOffsetsInitializer.earliest(),
        "latest": KafkaOffsetsInitializer.latest(),
    }
    if options.start not in starts:
        raise ValueError(f"start {options.start!r}: use committed, earliest or latest")
    return (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_servers)
        .set_topics(options.raw_topic)
        .set_group_id(options.group_id)
        .set_starting_offsets(starts[options.start])
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("commit.offsets.on.checkpoint", "true")
        .set_property("partition.discovery.interval.ms", "60000")
        .set_properties(java_security(settings))
        .build()
    )


def kafka_sink(settings: Settings, topic: str) -> Any:
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink

    from connectors.kafka.producer import java_producer_properties

    props = java_producer_properties(settings)
    props["linger.ms"] = "0"  # an alert is one small message: send it now
    builder = KafkaSink.builder().set_bootstrap_servers(settings.kafka_servers)
    for key, value in props.items():
        if key != "bootstrap.servers":
            builder = builder.set_property(key, value)
    return (
        builder.set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        # At least once: the notifier drops repeats by event id, and exactly-once would hold every
        # alert back until the next checkpoint commits its transaction.
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build()
    )


def run(
    settings: Settings,
    options: AlertsOptions,
    *,
    rules: RuleSource | None = None,
    parallelism: int | None = None,
    restore: Path | None = None,
    wait: bool = True,
) -> Any:
    """Build and execute the job on a local MiniCluster; returns the job client when not waiting."""
    from pyflink.common import WatermarkStrategy

    ensure_alerts_topic(settings, options.alerts_topic)
    env = environment(settings, parallelism=parallelism, restore=restore)
    source = env.from_source(kafka_source(settings, options), WatermarkStrategy.no_watermarks(), names.SOURCE)
    source = source.uid(names.SOURCE)
    rules = rules or PostgresRules(settings.postgres_dsn, settings.alerts_rules_refresh_s)
    events = build(
        env,
        source,
        rules,
        lateness_ms=options.lateness_ms,
        idle_ms=options.idle_ms,
        pipeline_config=options.pipeline_config,
        max_groups=(settings.alerts_max_groups_per_rule, settings.alerts_max_groups_per_tenant),
    )
    events.sink_to(kafka_sink(settings, options.alerts_topic)).name(names.SINK).uid(names.SINK)
    started = time.monotonic()
    if wait:
        env.execute("strata-alerts")
        return time.monotonic() - started
    return env.execute_async("strata-alerts")
