"""Writing the warm tier from a Flink job: :class:`dev.strata.flink.BatchedCassandraSink`.

The Java class (``connectors/cassandra/java``, built by the development stack or any Java build)
binds each row to one prepared statement and sends rows that share a partition as one UNLOGGED
batch, flushing everything on each checkpoint. Flink's own Cassandra sink sends a request per row,
which cost Cassandra about twice the CPU per row (docs/benchmarks.md, "Warm tier writes").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.settings import Settings


@dataclass(frozen=True)
class Batching:
    """When buffered rows are sent: a partition's group reaching ``rows`` rows or about ``bytes``
    bytes, ``max_buffered`` rows in all, the oldest waiting ``max_delay_ms`` (checked as rows
    arrive), and on every checkpoint. A batch is one mutation, and Cassandra refuses one larger
    than half a commit-log segment (16 MiB by default): records of up to a MiB each stay far below."""

    rows: int = 64
    bytes: int = 1024 * 1024
    max_buffered: int = 8192
    max_delay_ms: int = 1000
    max_concurrent_requests: int = 16


@dataclass(frozen=True)
class Connection:
    """Credentials and TLS of the sink's sessions; ``ca_pem`` is the CA certificates' PEM text
    (empty: the JVM's trusted CAs), carried inside the sink so task managers need no file."""

    username: str = ""
    password: str = ""
    ssl: bool = False
    ca_pem: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Connection:
        from connectors.cassandra.connection import check

        check(settings)
        ca = settings.ca_file(settings.cassandra_ca_file) if settings.cassandra_ssl else ""
        return cls(
            settings.cassandra_username,
            settings.cassandra_password,
            settings.cassandra_ssl,
            Path(ca).read_text() if ca else "",
        )


def batched_cassandra_sink(
    host: str,
    port: int,
    query: str,
    partition_key: Sequence[int],
    batching: Batching = Batching(),
    connection: Connection = Connection(),
) -> Any:
    """A PyFlink ``SinkFunction`` for a stream of Rows whose fields are ``query``'s bind values in
    order; ``partition_key`` are the positions of the table's partition-key columns in the row."""
    from pyflink.datastream.functions import SinkFunction
    from pyflink.java_gateway import get_gateway

    gateway: Any = get_gateway()
    positions = gateway.new_array(gateway.jvm.int, len(partition_key))
    for i, position in enumerate(partition_key):
        positions[i] = int(position)
    j_sink = gateway.jvm.dev.strata.flink.BatchedCassandraSink(
        host,
        int(port),
        query,
        positions,
        batching.rows,
        batching.bytes,
        batching.max_buffered,
        batching.max_delay_ms,
        batching.max_concurrent_requests,
        connection.username,
        connection.password,
        connection.ssl,
        connection.ca_pem,
    )
    return SinkFunction(j_sink)
