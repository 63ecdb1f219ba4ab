"""The ingest job's log metrics: count and bytes per series and minute/hour/day, from the
deduplicated records first read by the group, written to OpenSearch metric indices.

Graph (added to the ingest job by :func:`attach_metrics`)::

    deduped WHERE first_read (SQL) → key by (tenant, service)
      → count into open contributions (Java, keyed MapState: dev.strata.flink.LogMetricsAggregate,
        a port of core.metrics.ServiceAccumulator; no record crosses into Python for it)
      → every flush_s: changed contributions as (id, index, JSON)
      → OpenSearch index requests (_id = contribution id), sent only at checkpoints

Why contributions and not one document per bucket, and why the sink sends only at checkpoints:
:mod:`core.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.opensearch.connection import java_sink_options
from connectors.opensearch.flink_sink import Bulk, index_request_sink
from infra.settings import Settings

AGGREGATE = "log-metrics-aggregate"
# Not the name: the uid under which the counting was a Python operator holds its state in a form
# the Java function cannot read (a Row key, pickled values), so a checkpoint of that graph must not
# be mapped onto it; Flink then refuses the restore and says so (docs/metrics.md).
AGGREGATE_UID = "log-metrics-count"
SINK = "log-metrics-opensearch-sink"


@dataclass(frozen=True)
class MetricsOptions:
    index_prefix: str
    flush_s: int  # how often changed contributions are emitted to the sink (STRATA_LOG_METRICS_FLUSH_S)
    idle_s: int = 600  # a contribution idle this long is closed (see core.metrics)

    @classmethod
    def from_settings(cls, settings: Settings, index_prefix: str) -> MetricsOptions:
        return cls(index_prefix, flush_s=settings.log_metrics_flush_s)


def rows_sql(view: str) -> str:
    """What the aggregate needs of each counted record."""
    return (
        "SELECT `tenant`, `service`, `level`, `pattern_id`, `host`, `timestamp_us`, `message`, "
        f"`kafka_partition`, `kafka_offset` FROM {view} WHERE first_read"
    )


def aggregate(rows: Any, options: MetricsOptions) -> Any:
    """The stream of (contribution id, index, document JSON) rows counted from ``rows`` (a
    DataStream of Rows with :func:`rows_sql`'s columns): a Java keyed function, wired through
    the gateway, so the records stay in the JVM."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    j_docs = get_gateway().jvm.dev.strata.flink.LogMetricsAggregate.attach(
        rows._j_data_stream, options.index_prefix, options.flush_s, options.idle_s, AGGREGATE, AGGREGATE_UID
    )
    return DataStream(j_docs)


def attach_metrics(t_env: Any, view: str, settings: Settings, options: MetricsOptions) -> None:
    """Count ``view``'s first-read records into the metric indices (see the module docstring)."""
    docs = aggregate(t_env.to_data_stream(t_env.sql_query(rows_sql(view))), options)
    # Sent only when a checkpoint flushes the sink: a bulk never fills up between two checkpoints
    # (flush_s bounds how many changes there are) and the interval is longer than any checkpoint
    # interval. So the store holds what the last completed checkpoint restores (core.metrics).
    bulk = Bulk(actions=1_000_000, size_mb=256, interval_ms=2**31 - 1)
    sink = index_request_sink(settings.opensearch_endpoint.split(","), bulk, java_sink_options(settings))
    docs.sink_to(sink).name(SINK).uid(SINK)
