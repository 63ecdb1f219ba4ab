"""The warm tier's Flink sink (``dev.strata.flink.BatchedCassandraSink``) against the real Cassandra:
rows a Flink job emits all land, in batches per partition that Cassandra accepts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def table(
    settings: Settings, require: Callable[..., None], unique_name: Callable[[str], str]
) -> Iterator[str]:
    from cassandra.cluster import Cluster

    require("cassandra")
    name = f"{settings.cassandra_keyspace}.{unique_name('sink')}"
    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    session = cluster.connect()
    session.execute(f"CREATE TABLE {name} (k text, c int, v text, tags list<text>, PRIMARY KEY (k, c))")
    try:
        yield name
    finally:
        session.execute(f"DROP TABLE IF EXISTS {name}")
        cluster.shutdown()


def _write(settings: Settings, table: str, rows: list[tuple[str, int, str, list[str]]]) -> None:
    """A bounded Flink job: ``rows`` from a collection into ``table`` through the sink."""
    from pyflink.common import Configuration, Row, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from connectors.cassandra.flink_sink import batched_cassandra_sink
    from jobs.flink import flink_jar_urls

    config = Configuration()
    config.set_string("pipeline.jars", ";".join(flink_jar_urls(settings)))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    row_type = Types.ROW([Types.STRING(), Types.INT(), Types.STRING(), Types.BASIC_ARRAY(Types.STRING())])
    stream = env.from_collection([Row(*r) for r in rows], type_info=row_type)
    query = f"INSERT INTO {table} (k, c, v, tags) VALUES (?, ?, ?, ?)"
    stream.add_sink(
        batched_cassandra_sink(settings.cassandra_contact_points[0], settings.cassandra_port, query, [0])
    )
    env.execute("cassandra-sink-test")


def _read(settings: Settings, table: str) -> dict[tuple[str, int], Any]:
    from cassandra.cluster import Cluster

    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    try:
        rows = cluster.connect().execute(f"SELECT k, c, v, tags FROM {table}", timeout=60)
        return {(r.k, r.c): r for r in rows}
    finally:
        cluster.shutdown()


def test_rows_of_many_partitions_all_land_with_their_lists(settings: Settings, table: str) -> None:
    rows = [(f"p{i % 7}", i, f"value {i}", [f"t{i}", "x"]) for i in range(1000)]
    _write(settings, table, rows)
    stored = _read(settings, table)
    assert sorted(stored) == sorted((k, c) for k, c, _, _ in rows)
    assert all(stored[(k, c)].v == v and stored[(k, c)].tags == t for k, c, v, t in rows)


def test_large_rows_of_one_partition_are_not_sent_as_one_oversized_batch(
    settings: Settings, table: str
) -> None:
    # 64 rows (a full batch by count) of 400 KB: 25 MB, over the 16 MiB Cassandra takes in one
    # mutation. Batches are also bounded by size, so every row lands and the job finishes.
    rows: list[tuple[str, int, str, list[str]]] = [
        ("one", i, f"{i:06d}" + "x" * 400_000, []) for i in range(64)
    ]
    _write(settings, table, rows)
    stored = _read(settings, table)
    assert sorted(stored) == [("one", i) for i in range(64)]
    assert {len(r.v) for r in stored.values()} == {400_006}
