"""The ingest job's log metrics: count and bytes per series and minute/hour/day, from the
deduplicated records first read by the group, written to OpenSearch metric indices.

Graph (added to the ingest job by :func:`attach_metrics`)::

    deduped WHERE first_read (SQL) → key by (tenant, service)
      → count into open contributions (Python, keyed MapState: core.metrics.ServiceAccumulator)
      → every flush_s: changed contributions as (id, index, JSON)
      → OpenSearch index requests (_id = contribution id), sent only at checkpoints

Why contributions and not one document per bucket, and why the sink sends only at checkpoints:
:mod:`core.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from connectors.opensearch.connection import java_sink_options
from connectors.opensearch.flink_sink import Bulk, index_request_sink
from connectors.opensearch.metrics import metrics_index
from core.metrics import ServiceAccumulator
from infra.settings import Settings

AGGREGATE = "log-metrics-aggregate"
KEY = "log-metrics-key"
SINK = "log-metrics-opensearch-sink"

# Far in the future: an event-time timer there fires only when a bounded input ends (the source
# then sends the final watermark), so a bounded run flushes what it counted before it finishes.
_END_OF_INPUT_MS = 2**62


@dataclass(frozen=True)
class MetricsOptions:
    index_prefix: str
    flush_s: int = 5  # how often changed contributions are emitted to the sink
    idle_s: int = 600  # a contribution idle this long is closed (see core.metrics)


def rows_sql(view: str) -> str:
    """What the aggregate needs of each counted record."""
    return (
        "SELECT `tenant`, `service`, `level`, `pattern_id`, `host`, `timestamp_us`, `message`, "
        f"`kafka_partition`, `kafka_offset` FROM {view} WHERE first_read"
    )


def _aggregate_function(options: MetricsOptions) -> Any:
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    prefix = options.index_prefix
    flush_ms = options.flush_s * 1000

    class Aggregate(KeyedProcessFunction):
        def open(self, runtime_context: Any) -> None:
            ctx = runtime_context
            pickled = Types.PICKLED_BYTE_ARRAY()
            self.contributions = ctx.get_map_state(MapStateDescriptor("open", Types.STRING(), pickled))
            self.dirty = ctx.get_map_state(MapStateDescriptor("dirty", Types.STRING(), Types.BOOLEAN()))
            self.hosts = ctx.get_map_state(MapStateDescriptor("hosts", Types.STRING(), Types.BOOLEAN()))
            self.timer = ctx.get_state(ValueStateDescriptor("timer", Types.LONG()))
            self.acc = ServiceAccumulator(self.contributions, self.dirty, self.hosts)

        def process_element(self, value: Any, ctx: Any) -> Any:
            now_ms = ctx.timer_service().current_processing_time()
            size = len(value[6].encode("utf-8", "surrogatepass"))
            self.acc.add(
                value[2], value[3], value[4], value[5] // 1_000_000, size, value[7], value[8], now_ms
            )
            due = self.timer.value()
            # None: no flush pending. Overdue: the pending timer did not fire (guards a timer lost
            # across a restore, which would leave this key's counts unwritten for good).
            if due is None or due < now_ms - 2 * flush_ms:
                ctx.timer_service().register_processing_time_timer(now_ms + flush_ms)
                ctx.timer_service().register_event_time_timer(_END_OF_INPUT_MS)
                self.timer.update(now_ms + flush_ms)

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            tenant, service = ctx.get_current_key().split("\x1f", 1)
            for doc_id, suffix, doc in self.acc.flush(tenant, service):
                yield Row(doc_id, metrics_index(prefix, suffix), orjson.dumps(doc).decode())
            if timestamp >= _END_OF_INPUT_MS or timestamp != self.timer.value():
                return  # the end of the input, or a timer another one has taken over from
            now_ms = ctx.timer_service().current_processing_time()
            if self.acc.close_idle(now_ms, options.idle_s):
                ctx.timer_service().register_processing_time_timer(now_ms + flush_ms)
                self.timer.update(now_ms + flush_ms)
            else:
                ctx.timer_service().delete_event_time_timer(_END_OF_INPUT_MS)
                self.timer.clear()

    return Aggregate()


def attach_metrics(t_env: Any, view: str, settings: Settings, options: MetricsOptions) -> None:
    """Count ``view``'s first-read records into the metric indices (see the module docstring)."""
    from pyflink.common import Types

    rows = t_env.to_data_stream(t_env.sql_query(rows_sql(view)))
    out_type = Types.ROW([Types.STRING(), Types.STRING(), Types.STRING()])
    docs = (
        rows.key_by(lambda r: f"{r[0]}\x1f{r[1]}", key_type=Types.STRING())
        .process(_aggregate_function(options), output_type=out_type)
        .name(AGGREGATE)
        .uid(AGGREGATE)
    )
    # Sent only when a checkpoint flushes the sink: a bulk never fills up between two checkpoints
    # (flush_s bounds how many changes there are) and the interval is longer than any checkpoint
    # interval. So the store holds what the last completed checkpoint restores (core.metrics).
    bulk = Bulk(actions=1_000_000, size_mb=256, interval_ms=2**31 - 1)
    sink = index_request_sink(settings.opensearch_endpoint.split(","), bulk, java_sink_options(settings))
    docs.sink_to(sink).name(SINK).uid(SINK)
