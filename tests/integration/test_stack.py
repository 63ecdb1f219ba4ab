"""The local stack: a real round-trip through every service, and the stack command's promises."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.s3.client import s3_client
from infra.settings import Settings
from tests.support.stack import cassandra_keyspace, kafka_topic, produce

pytestmark = pytest.mark.integration


def strata(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def test_kafka_produce_and_consume(settings: Settings, require, unique_name) -> None:
    require("kafka")
    from kafka import KafkaConsumer

    with kafka_topic(settings, unique_name("stack_roundtrip"), partitions=2) as topic:
        sent = [f"message {i}".encode() for i in range(20)]
        produce(settings, topic, sent, key=b"k")
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_servers,
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
            group_id=None,
        )
        received = [m.value for m in consumer]
        consumer.close()
        assert received == sent  # one key: one partition, in order


def test_pipeline_topics_exist_with_partitions(settings: Settings, require) -> None:
    require("kafka")
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers)
    try:
        for topic in (settings.raw_topic, settings.dlq_topic, settings.logs_topic):
            partitions = consumer.partitions_for_topic(topic)
            assert partitions is not None, f"topic {topic} is missing"
            assert len(partitions) == settings.topic_partitions
    finally:
        consumer.close()


def test_opensearch_index_refresh_search(settings: Settings, require, unique_name) -> None:
    require("opensearch")
    from opensearchpy import OpenSearch

    client = OpenSearch(settings.opensearch_endpoint)
    index = unique_name("stack-roundtrip").lower()
    try:
        client.index(index=index, id="a", body={"message": "payment failed for order 42", "level": "ERROR"})
        client.index(index=index, id="b", body={"message": "user logged in", "level": "INFO"})
        client.indices.refresh(index=index)
        hits = client.search(index=index, body={"query": {"match": {"message": "payment"}}})["hits"]
        assert [h["_id"] for h in hits["hits"]] == ["a"]
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)


def test_cassandra_insert_and_select(settings: Settings, require, unique_name) -> None:
    require("cassandra")
    keyspace = unique_name("stack_rt")
    with cassandra_keyspace(settings, keyspace) as session:
        session.execute(f"CREATE TABLE {keyspace}.t (k text, c int, v text, PRIMARY KEY (k, c))")
        insert = session.prepare(f"INSERT INTO {keyspace}.t (k, c, v) VALUES (?, ?, ?)")
        for i in range(5):
            session.execute(insert, ("svc", i, f"value {i}"))
        rows = session.execute(f"SELECT c, v FROM {keyspace}.t WHERE k = %s", ("svc",))
        assert [(r.c, r.v) for r in rows] == [(i, f"value {i}") for i in range(5)]


def test_cassandra_keyspace_provisioned(settings: Settings, require) -> None:
    require("cassandra")
    from cassandra.cluster import Cluster

    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    try:
        assert settings.cassandra_keyspace in cluster.connect().cluster.metadata.keyspaces
    finally:
        cluster.shutdown()


def test_s3_put_list_get_with_boto3_and_pyarrow(settings: Settings, require, unique_name) -> None:
    require("s3")
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    client = s3_client(settings)
    prefix = unique_name("stack-roundtrip")
    bucket = settings.s3_bucket
    try:
        client.put_object(Bucket=bucket, Key=f"{prefix}/hello.txt", Body=b"hello strata")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
        assert keys == [f"{prefix}/hello.txt"]
        assert client.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b"hello strata"

        fs = pafs.S3FileSystem(
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            endpoint_override=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
        table = pa.table({"message": ["a", "b", "c"], "n": [1, 2, 3]})
        pq.write_table(table, f"{bucket}/{prefix}/part-0.parquet", filesystem=fs, compression="zstd")
        listed = fs.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}"))
        assert sorted(i.base_name for i in listed) == ["hello.txt", "part-0.parquet"]
        assert pq.read_table(f"{bucket}/{prefix}/part-0.parquet", filesystem=fs).equals(table)
        # boto3 sees what pyarrow wrote: both clients talk to the same store.
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/part-0.parquet")["Body"].read()
        assert body[:4] == b"PAR1"
    finally:
        for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=o["Key"])


def test_s3_lists_past_1000_partition_keys_with_boto3_and_pyarrow(
    settings: Settings, require, unique_name
) -> None:
    """A listing longer than one page, of keys with '=' in them, returns each key exactly once."""
    require("s3")
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.fs as pafs

    client = s3_client(settings)
    bucket = settings.s3_bucket
    prefix = unique_name("stack-listing")
    keys = {
        f"{prefix}/logs/tenant=x/dt=2026-01-{1 + i // 500:02d}/hour={i // 25 % 20:02d}/part-{i:04d}.parquet"
        for i in range(1500)
    }
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:  # within boto3's 10 pooled connections
            list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))

        listed = [
            o["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
            for o in page.get("Contents", [])
        ]
        assert len(listed) == 1500
        assert set(listed) == keys

        fs = pafs.S3FileSystem(
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            endpoint_override=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
        infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}/logs", recursive=True))
        files = [i.path for i in infos if i.type == pafs.FileType.File]
        assert len(files) == 1500
        assert {f.split("/", 1)[1] for f in files} == keys
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
            batch = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if batch:
                client.delete_objects(Bucket=bucket, Delete={"Objects": batch})


def test_postgres_query(settings: Settings, require) -> None:
    require("postgres")
    import psycopg

    with psycopg.connect(settings.postgres_dsn) as conn:
        row = conn.execute("SELECT current_database(), 6 * 7").fetchone()
    assert row == (settings.postgres_db, 42)


def test_status_reports_every_service_up() -> None:
    result = strata("stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("postgres", "kafka", "s3", "opensearch", "cassandra"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert " up " in line, line


def test_up_again_is_idempotent(settings: Settings) -> None:
    before = strata("stack", "status").stdout
    result = strata("stack", "up")
    assert result.returncode == 0, result.stderr
    assert "starting" not in result.stdout  # nothing was started twice
    pids = lambda text: [line.split()[4] for line in text.splitlines()[1:-1]]  # noqa: E731
    assert pids(result.stdout.split("stack up in")[1].split("\n", 1)[1]) == pids(before)


def test_taken_port_is_named_with_its_setting(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = strata("stack", "up", "s3", env={"STRATA_HOME": str(tmp_path), "STRATA_S3_PORT": str(port)})
    assert result.returncode == 1
    assert f"port {port} is already taken" in result.stderr
    assert "STRATA_S3_PORT" in result.stderr


def test_service_dying_on_start_shows_its_log(tmp_path: Path) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    env = {"STRATA_HOME": str(tmp_path), "STRATA_S3_PORT": str(port), "STRATA_S3_HEAP": "not-a-size"}
    result = strata("stack", "up", "s3", env=env)
    assert result.returncode == 1
    assert "s3 exited during start" in result.stderr
    assert "Invalid maximum heap size" in result.stderr  # the tail of the JVM's own output
    strata("stack", "down", "s3", "--purge", env=env)
