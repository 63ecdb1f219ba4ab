"""Every Flink connector jar loads in PyFlink's local mode and delivers: a bounded Kafka read
written to OpenSearch, Cassandra and Parquet on S3 by one job (``tests.integration.smoke_job``)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.s3.client import s3_client
from infra.settings import Settings
from infra.stack.flink_jars import ensure_flink_jars
from jobs.flink import job_process_env
from tests.support.stack import cassandra_keyspace, kafka_topic, produce

pytestmark = pytest.mark.integration

MESSAGES = [{"id": f"m{i}", "message": f"smoke message {i} from flink", "n": i} for i in range(5)]
JOB_TIMEOUT_S = 300


@pytest.fixture
def topic(settings: Settings, require, unique_name) -> Iterator[str]:
    require("kafka")
    with kafka_topic(settings, unique_name("smoke")) as name:
        produce(settings, name, [json.dumps(doc).encode() for doc in MESSAGES])
        yield name


@pytest.fixture
def index(settings: Settings, require, unique_name) -> Iterator[str]:
    require("opensearch")
    from opensearchpy import OpenSearch

    name = unique_name("strata-smoke").lower()
    client = OpenSearch(settings.opensearch_endpoint)
    try:
        yield name
    finally:
        client.indices.delete(index=name, ignore_unavailable=True)
        client.close()


@pytest.fixture
def cassandra_table(settings: Settings, require, unique_name) -> Iterator[tuple[str, str]]:
    require("cassandra")
    keyspace = unique_name("smoke")
    with cassandra_keyspace(settings, keyspace) as session:
        session.execute(f"CREATE TABLE {keyspace}.records (id text PRIMARY KEY, message text, n bigint)")
        yield keyspace, "records"


@pytest.fixture
def s3_prefix(settings: Settings, require, unique_name) -> Iterator[str]:
    require("s3")
    client = s3_client(settings)
    prefix = f"smoke/{unique_name('run')}/"
    try:
        yield prefix
    finally:
        for obj in _list(client, settings.s3_bucket, prefix):
            client.delete_object(Bucket=settings.s3_bucket, Key=obj)


def _list(client: Any, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _log_tail(log_dir: Path, lines: int = 60) -> str:
    """The Flink log's errors and last lines: where a job's failure is explained."""
    text = "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))
    errors = [line for line in text.splitlines() if "Caused by" in line or " ERROR " in line]
    return "\n".join([*errors[-20:], "...", *text.splitlines()[-lines:]])


def test_kafka_to_opensearch_cassandra_and_parquet_on_s3(
    settings: Settings,
    topic: str,
    index: str,
    cassandra_table: tuple[str, str],
    s3_prefix: str,
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq
    from cassandra.cluster import Cluster
    from opensearchpy import OpenSearch

    ensure_flink_jars(settings)
    keyspace, table = cassandra_table
    cmd = [
        sys.executable, "-m", "tests.integration.smoke_job",
        "--topic", topic,
        "--index", index,
        "--keyspace", keyspace,
        "--table", table,
        "--s3-path", f"s3a://{settings.s3_bucket}/{s3_prefix}",
        "--group-id", f"{topic}-group",
    ]  # fmt: skip
    # The embedded Flink logs to a file, not the console: keep this run's apart to show on failure.
    env = {**job_process_env(settings), "FLINK_LOG_DIR": str(tmp_path)}
    try:
        job = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"smoke job still running after {JOB_TIMEOUT_S}s; Flink log:\n{_log_tail(tmp_path)}")
    assert job.returncode == 0, f"smoke job failed:\n{job.stderr[-6000:]}\nFlink log:\n{_log_tail(tmp_path)}"
    expected = {(m["id"], m["message"], m["n"]) for m in MESSAGES}

    # Hot: OpenSearch, documents keyed by the row's primary key and searchable.
    client = OpenSearch(settings.opensearch_endpoint)
    try:
        client.indices.refresh(index=index)
        hits = client.search(index=index, body={"query": {"match": {"message": "smoke"}}, "size": 100})
        found = {(h["_id"], h["_source"]["message"], h["_source"]["n"]) for h in hits["hits"]["hits"]}
    finally:
        client.close()
    assert found == expected

    # Warm: Cassandra.
    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    try:
        rows = cluster.connect().execute(f"SELECT id, message, n FROM {keyspace}.{table}")
        assert {(r.id, r.message, r.n) for r in rows} == expected
    finally:
        cluster.shutdown()

    # Cold: committed Parquet part files on S3 (in-progress files start with a dot).
    s3 = s3_client(settings)
    keys = [k for k in _list(s3, settings.s3_bucket, s3_prefix) if not k.rsplit("/", 1)[-1].startswith(".")]
    assert keys, f"no committed Parquet file under s3://{settings.s3_bucket}/{s3_prefix}"
    archived = set()
    for key in keys:
        body = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
        for rec in pq.read_table(io.BytesIO(body)).to_pylist():
            archived.add((rec["id"], rec["message"], rec["n"]))
    assert archived == expected
