"""The ingest job end to end on the real stack: raw_logs → every tier, the logs topic and the DLQ."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from core.records.pipeline import RecordPipeline
from infra.settings import Settings
from schemas.envelope import RawEnvelope
from schemas.record import Record
from tests.integration.ingest_support import Run, isolated_run, produce, topic_values

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def run_names(settings: Settings, require, unique_name, tmp_path: Path) -> Iterator[Run]:
    """Topics, index prefix, table and archive prefix of this test only; removed afterwards."""
    require("kafka", "opensearch", "cassandra", "s3")
    with isolated_run(settings, unique_name("ingest").lower(), tmp_path) as run:
        yield run


def _run_bounded(run: Run) -> None:
    """`strata job run ingest --from earliest --bounded --fresh` on this test's names, to the end."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "job",
            "run",
            "ingest",
            "--from",
            "earliest",
            "--bounded",
            "--fresh",
        ],
        env={**os.environ, **run.env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _messages(now: datetime) -> tuple[list[bytes], int]:
    """A realistic mix: formats, services, PII, duplicates, bad input, old events. Returns the
    messages and how many of them are malformed."""

    def env(line: str | None = None, entry: dict | None = None, **kw: object) -> bytes:
        return RawEnvelope(tenant="acme", received_at=now, line=line, entry=entry, **kw).encode()  # type: ignore[arg-type]

    out: list[bytes] = []
    for i in range(120):
        ts = now - timedelta(seconds=i)
        out.append(
            env(
                f"{ts:%Y-%m-%d %H:%M:%S.%f} ERROR [payment-service] Payment {i} failed "
                f"for bob{i}@example.com req_id=r{i}"
            )
        )
        out.append(
            env(
                entry={
                    "timestamp": ts.isoformat(),
                    "level": "info",
                    "message": f"order {i} shipped",
                    "service": "orders",
                    "traceId": f"{i:032x}",
                }
            )
        )
        out.append(env(f'level=warn ts={ts.isoformat()} msg="slow query {i}" service=db host=db-{i % 3}'))
    out.extend(out[:30])  # the same lines sent again: stored once
    for days in (20, 60):
        for i in range(10):
            ts = now - timedelta(days=days, seconds=i)
            out.append(env(f"{ts:%Y-%m-%d %H:%M:%S} INFO [billing] invoice {i} from {days} days ago"))
    malformed = [b"not an envelope", b'{"tenant": "acme", "line"', b"", env(line="   "), b'{"v": 1}']
    return out + malformed, len(malformed)


def test_ingest_fills_each_tier_once_and_dead_letters_bad_input(run_names: Run) -> None:
    s = run_names.settings
    now = datetime.now(UTC)
    messages, n_malformed = _messages(now)
    produce(s, s.raw_topic, messages)

    # What the job must store: the same pure pipeline, run here, gives every record's identity.
    pipeline = RecordPipeline()
    expected: dict[str, Record] = {}
    for m in messages:
        result = pipeline.process(m)
        if isinstance(result, Record):
            expected[result.log_id] = result
    age = {lid: now - r.timestamp for lid, r in expected.items()}
    hot = {lid for lid, a in age.items() if a < timedelta(days=s.hot_days)}
    warm = {lid for lid, a in age.items() if a < timedelta(days=s.warm_days)}
    assert len(expected) == 120 * 3 + 20 and len(hot) == 360 and len(warm) == 370

    _run_bounded(run_names)

    # Hot: OpenSearch, daily indices by event day, _id = log_id.
    from opensearchpy import OpenSearch

    client = OpenSearch(s.opensearch_endpoint)
    pattern = f"{s.opensearch_index_prefix}-*"
    client.indices.refresh(index=pattern)
    hits = client.search(index=pattern, body={"size": 1000, "query": {"match_all": {}}})["hits"]["hits"]
    assert sorted(h["_id"] for h in hits) == sorted(hot)
    for h in hits:
        assert h["_index"] == f"{s.opensearch_index_prefix}-{expected[h['_id']].timestamp:%Y.%m.%d}"
        assert "@example.com" not in h["_source"]["message"]  # masked before storage

    # Warm: Cassandra, the 20-day-old lines too, never the 60-day-old ones.
    from cassandra.cluster import Cluster

    cluster = Cluster(s.cassandra_contact_points, port=s.cassandra_port)
    session = cluster.connect(s.cassandra_keyspace)
    rows = list(session.execute(f'SELECT log_id, "timestamp" FROM {s.cassandra_table}', timeout=60))
    services = {(r.day, r.service) for r in session.execute(f"SELECT * FROM {s.cassandra_table}_services")}
    cluster.shutdown()
    assert sorted(r.log_id for r in rows) == sorted(warm)
    assert ((now - timedelta(days=20)).strftime("%Y-%m-%d"), "billing") in services

    # Cold: Parquet on S3, everything, in tenant/dt/hour partitions, readable by pyarrow.
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from schemas.projections import from_archive_row

    fs = pafs.S3FileSystem(
        access_key=s.s3_access_key,
        secret_key=s.s3_secret_key,
        endpoint_override=s.s3_endpoint_url,
        region=s.s3_region,
    )
    table = ds.dataset(
        f"{s.s3_bucket}/{s.archive_prefix}", filesystem=fs, format="parquet", partitioning="hive"
    ).to_table()
    archived = [from_archive_row(r) for r in table.to_pylist()]
    assert sorted(r.log_id for r in archived) == sorted(expected)
    for r in archived:
        assert r == expected[r.log_id] or r.to_dict() | {"ingested_at": None} == expected[
            r.log_id
        ].to_dict() | {"ingested_at": None}
    assert {row["dt"] for row in table.select(["dt"]).to_pylist()} >= {
        (now - timedelta(days=60, seconds=9)).strftime("%Y-%m-%d")
    }

    # The search API's cold-tier reader finds exactly what the job archived (its file layout).
    from connectors.s3.archive import ColdArchive, s3_filesystem
    from core.query import TierQuery, parse
    from schemas.record import micros

    archive = ColdArchive(
        s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region),
        s.s3_bucket,
        s.archive_prefix,
    )
    since = micros(now - timedelta(days=90))
    page = archive.search(TierQuery("acme", parse(None), since, micros(now) + 1, limit=1000))
    assert sorted(r.log_id for r in page.records) == sorted(expected)
    assert page.total == len(expected)
    paid = archive.search(TierQuery("acme", parse("payment AND req_id:r7"), since, micros(now) + 1))
    assert [r.attributes.get("req_id") for r in paid.records] == ["r7"]

    # Nothing but Parquet part files named *.parquet under the data prefix (no commit markers),
    # and DuckDB reads them through its own S3 extension as `strata archive sql` does.
    from connectors.s3.ddl import ArchiveLocation
    from connectors.s3.sql import archive_connection
    from infra.stack.services.s3 import S3Proxy

    client = S3Proxy(s).client()
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=s.s3_bucket, Prefix=s.archive_prefix
        )
        for o in page.get("Contents", [])
    ]
    names = [k.rsplit("/", 1)[1] for k in keys]
    assert names and all(n.startswith("part-") and n.endswith(".parquet") for n in names), keys
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(fs.open_input_file(f"{s.s3_bucket}/{keys[0]}")).metadata
    stored = {meta.schema.column(i).name for i in range(meta.num_columns)}
    assert not stored & {"tenant", "dt", "hour"}  # partition values live in the path only
    assert meta.row_group(0).column(0).compression == "ZSTD"
    with archive_connection(ArchiveLocation.from_settings(s), "acme") as con:
        assert con.execute("SELECT count(*), count(DISTINCT log_id) FROM logs").fetchone() == (
            len(expected),
            len(expected),
        )

    # The logs topic carries each processed record once, masked.
    live = [orjson.loads(v) for v in topic_values(s, s.logs_topic)]
    assert sorted(d["log_id"] for d in live) == sorted(expected)

    # Bad input is in the DLQ with a reason and the original bytes, nothing else is.
    dead = [orjson.loads(v) for v in topic_values(s, s.dlq_topic)]
    assert len(dead) == n_malformed
    assert all(d["reason_code"] and d["source"]["topic"] == s.raw_topic for d in dead)
    assert {d["original"] for d in dead} >= {"not an envelope", ""}


def test_large_records_reach_every_tier(run_names: Run) -> None:
    """Large records, all of one Cassandra partition: the warm tier writes a partition's rows in
    batches, and a batch is one mutation, which Cassandra refuses above half a commit-log segment
    (16 MiB); 60 records of ~800 KB must all land, and the job must finish, not loop. An attribute
    too long for either store's index and a 40 KB "trace id" are cut or kept aside, not fatal."""
    s = run_names.settings
    now = datetime.now(UTC)

    def envelope(i: int, **attributes: str) -> bytes:
        entry = {"timestamp": (now - timedelta(seconds=i)).isoformat(), "level": "info"}
        entry |= {"message": f"upload {i} stored", "service": "uploads", **attributes}
        return RawEnvelope(tenant="acme", received_at=now, entry=entry).encode()

    big = {f"part{k:03d}": "x" * 4000 for k in range(200)}
    messages = [envelope(i, **big) for i in range(60)]
    messages.append(envelope(60, payload="y" * 400_000, traceId="f" * 40_000))
    produce(s, s.raw_topic, messages)
    pipeline = RecordPipeline()
    expected = {r.log_id: r for m in messages if isinstance(r := pipeline.process(m), Record)}
    assert len(expected) == 61

    _run_bounded(run_names)

    from cassandra.cluster import Cluster
    from opensearchpy import OpenSearch

    cluster = Cluster(s.cassandra_contact_points, port=s.cassandra_port)
    session = cluster.connect(s.cassandra_keyspace)
    rows = list(session.execute(f"SELECT log_id, attributes, tags FROM {s.cassandra_table}", timeout=60))
    cluster.shutdown()
    assert sorted(r.log_id for r in rows) == sorted(expected)
    for r in rows:
        assert r.attributes == expected[r.log_id].attributes
    cut = next(r for r in rows if "payload" in r.attributes)
    assert len(cut.attributes["payload"]) == 4096 and "attribute_truncated" in cut.tags

    client = OpenSearch(s.opensearch_endpoint)
    client.indices.refresh(index=f"{s.opensearch_index_prefix}-*")
    hits = client.search(index=f"{s.opensearch_index_prefix}-*", body={"size": 100, "_source": ["tags"]})
    assert sorted(h["_id"] for h in hits["hits"]["hits"]) == sorted(expected)
    assert sorted(v["log_id"] for v in map(orjson.loads, topic_values(s, s.logs_topic))) == sorted(expected)


def _hot_documents(s: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """Every hot document's ``_version`` by ``_id``, and the indices' primary indexing stats."""
    from opensearchpy import OpenSearch

    client = OpenSearch(s.opensearch_endpoint)
    pattern = f"{s.opensearch_index_prefix}-*"
    client.indices.refresh(index=pattern)
    hits = client.search(index=pattern, body={"size": 1000, "version": True})["hits"]["hits"]
    versions: dict[str, int] = {}
    for h in hits:
        assert h["_id"] not in versions, f"{h['_id']} is stored twice"
        versions[h["_id"]] = h["_version"]
    stats = client.indices.stats(index=pattern, metric="indexing")["_all"]["primaries"]["indexing"]
    return versions, stats


def test_a_replay_rewrites_each_hot_document_with_one_index_request(run_names: Run) -> None:
    """The hot tier is written with plain index requests, ``_id = log_id``: a replay leaves one
    document per record, and each is written once per run. (An update with ``doc_as_upsert``, which
    a keyed Table sink sends, would find the replayed document unchanged and skip it as a no-op,
    leaving ``_version`` at 1 and counting ``noop_update_total``.)"""
    s = run_names.settings
    now = datetime.now(UTC)

    def envelope(i: int) -> bytes:
        ts = now - timedelta(seconds=i, days=2 if i % 4 == 0 else 0)  # two daily indices
        return RawEnvelope(
            tenant="acme", received_at=now, line=f"{ts:%Y-%m-%d %H:%M:%S.%f} INFO [jobs] job {i} done"
        ).encode()

    messages = [envelope(i) for i in range(80)]
    produce(s, s.raw_topic, messages)
    pipeline = RecordPipeline()
    expected = {r.log_id for m in messages if isinstance(r := pipeline.process(m), Record)}
    assert len(expected) == 80

    _run_bounded(run_names)
    versions, stats = _hot_documents(s)
    assert sorted(versions) == sorted(expected)
    assert set(versions.values()) == {1}
    assert stats["index_total"] == 80 and stats["noop_update_total"] == 0

    _run_bounded(run_names)  # a replay: --from earliest, fresh state
    versions, stats = _hot_documents(s)
    assert sorted(versions) == sorted(expected)
    assert set(versions.values()) == {2}  # each record indexed once more, not skipped
    assert stats["index_total"] == 160 and stats["noop_update_total"] == 0


def test_a_document_the_mapping_refuses_does_not_stop_the_job(run_names: Run) -> None:
    """A document its index's mapping refuses would be refused again on every retry: the hot sink
    logs and skips it (the warm tier still holds it), while every other document is indexed. Here
    today's index exists beforehand with a strict mapping that knows only ``log_id``."""
    from opensearchpy import OpenSearch

    s = run_names.settings
    now = datetime.now(UTC)
    today = f"{s.opensearch_index_prefix}-{now:%Y.%m.%d}"
    client = OpenSearch(s.opensearch_endpoint)
    client.indices.create(
        index=today,
        body={"mappings": {"dynamic": "strict", "properties": {"log_id": {"type": "keyword"}}}},
    )

    def envelope(i: int, days: int) -> bytes:
        ts = now - timedelta(days=days, seconds=i % 60)
        return RawEnvelope(
            tenant="acme", received_at=now, line=f"{ts:%Y-%m-%d %H:%M:%S.%f} WARN [disks] disk {i} slow"
        ).encode()

    # Event times of a minute ago at most: of today (UTC) unless the test runs at midnight.
    messages = [envelope(i, 0) for i in range(20)] + [envelope(i, 3) for i in range(20, 40)]
    produce(s, s.raw_topic, messages)
    pipeline = RecordPipeline()
    records = [r for m in messages if isinstance(r := pipeline.process(m), Record)]
    refused = {r.log_id for r in records if f"{r.timestamp:%Y.%m.%d}" == f"{now:%Y.%m.%d}"}
    indexed = {r.log_id for r in records} - refused

    _run_bounded(run_names)  # finishes: the refused documents do not fail the job

    versions, _ = _hot_documents(s)
    assert sorted(versions) == sorted(indexed)
    assert client.count(index=today)["count"] == 0
    from cassandra.cluster import Cluster

    cluster = Cluster(s.cassandra_contact_points, port=s.cassandra_port)
    session = cluster.connect(s.cassandra_keyspace)
    warm = {r.log_id for r in session.execute(f"SELECT log_id FROM {s.cassandra_table}", timeout=60)}
    cluster.shutdown()
    assert warm == refused | indexed
