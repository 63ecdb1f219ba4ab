"""Writing the hot tier from a Flink job: :class:`dev.strata.flink.OpensearchIndexSink`.

The Java class (``connectors/opensearch/java``, built like the Cassandra sink) turns each row
``(log_id, index, source JSON)`` into a plain index request with ``_id = log_id`` and hands it to
the opensearch2 connector's at-least-once writer. The connector's Table sink would send an update
with ``doc_as_upsert`` for every row of a keyed table instead: OpenSearch then reads the stored
document back, merges and re-indexes it (docs/benchmarks.md, "Ingest job").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Bulk:
    """When buffered requests are sent: ``actions`` requests or ``size_mb`` MiB buffered, every
    ``interval_ms``, and on every checkpoint (which waits for them). Items OpenSearch pushes back
    (HTTP 429) are retried ``max_retries`` times, ``backoff`` from ``backoff_delay_ms``."""

    actions: int = 2000
    size_mb: int = 5
    interval_ms: int = 1000
    backoff: str = "EXPONENTIAL"  # or CONSTANT, NONE
    max_retries: int = 8
    backoff_delay_ms: int = 200

    def __post_init__(self) -> None:
        if self.backoff not in ("EXPONENTIAL", "CONSTANT", "NONE"):
            raise ValueError(f"bulk backoff must be EXPONENTIAL, CONSTANT or NONE, not {self.backoff!r}")
        if self.actions < 1 or self.size_mb < 1 or self.interval_ms < 1:
            raise ValueError("bulk actions, size_mb and interval_ms must be at least 1")


def index_request_sink(
    hosts: Sequence[str], bulk: Bulk = Bulk(), connection: Mapping[str, str] | None = None
) -> Any:
    """A PyFlink ``Sink`` for a stream of Rows ``(id, index, source)``, ``source`` the document's
    JSON text (``orjson.dumps(record.to_dict())``, :func:`schemas.projections.to_opensearch_doc`).
    ``connection``: credentials and CA (:func:`connectors.opensearch.connection.java_sink_options`);
    the CA file is read here and its text travels inside the sink."""
    from pyflink.datastream.connectors import Sink
    from pyflink.java_gateway import get_gateway

    conn = connection or {}
    gateway: Any = get_gateway()
    j_hosts = gateway.new_array(gateway.jvm.String, len(hosts))
    for i, host in enumerate(hosts):
        j_hosts[i] = host
    j_sink = gateway.jvm.dev.strata.flink.OpensearchIndexSink.build(
        j_hosts,
        bulk.actions,
        bulk.size_mb,
        bulk.interval_ms,
        bulk.backoff,
        bulk.max_retries,
        bulk.backoff_delay_ms,
        conn.get("username", ""),
        conn.get("password", ""),
        conn.get("token", ""),
        Path(ca).read_text() if (ca := conn.get("ca_file", "")) else "",
    )
    return Sink(j_sink)


def index_row_sql(index_prefix: str, *, log_id: str = "`log_id`", timestamp: str = "`timestamp`") -> str:
    """The SQL expressions of a row for :func:`index_request_sink` but its source: the id and the
    daily index by event day, as :func:`schemas.projections.opensearch_index_name` names it."""
    prefix = index_prefix.replace("'", "''")
    return f"{log_id} AS `id`, CONCAT('{prefix}-', DATE_FORMAT({timestamp}, 'yyyy.MM.dd')) AS `index`"


__all__ = ["Bulk", "index_request_sink", "index_row_sql"]
