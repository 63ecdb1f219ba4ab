"""Stores over TLS, each a server of the test's own started as `strata stack up --tls` starts the
stack's: PostgreSQL reached with ``sslmode=verify-full`` against the local CA (migrations, tenants,
keys); the S3 server over HTTPS for boto3, the archive reader's filesystem and DuckDB; OpenSearch
with its security plugin (HTTPS, a user) for the search reader and the ingest job's Java sink;
Cassandra with password authentication and client encryption for the reader's session and the
job's Java sink."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.postgres import tenants
from connectors.postgres.migrate import migrate
from infra.settings import Settings
from infra.stack import process
from infra.stack.services.cassandra import Cassandra, stack_cassandra_user
from infra.stack.services.opensearch import OpenSearch, stack_opensearch_user
from infra.stack.services.postgres import Postgres
from infra.stack.services.s3 import S3Proxy
from tests.integration.collector_support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_postgres() -> Iterator[Settings]:
    # Not under pytest's temporary folder: PostgreSQL runs as an unprivileged user when we are
    # root, and that user must reach its data folder.
    home = Path(tempfile.mkdtemp(prefix="strata-pg-tls-"))
    home.chmod(0o755)
    settings = Settings(home=home, postgres_port=free_port(), stack_tls=True)
    service = Postgres(settings)
    started = time.monotonic()
    launch = service.prepare()
    pid_file = home / "run" / "postgres.pid"
    process.start(
        launch.cmd,
        log_file=service.log_file,
        pid_file=pid_file,
        cwd=launch.cwd,
        user=launch.user,
        env=launch.env,
    )
    try:
        deadline = time.monotonic() + 60
        while (problem := service.check()) is not None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the TLS PostgreSQL did not start: {problem}\n{process.tail(service.log_file, 30)}"
                )
            time.sleep(0.3)
        service.provision()  # the database, as `strata stack up` makes it
        print(f"\nPostgreSQL with ssl=on answered {time.monotonic() - started:.1f}s after initdb began")
        yield settings.model_copy(
            update={
                "postgres_host": "localhost",  # the name the server certificate carries
                "postgres_sslmode": "verify-full",
                "tls_ca_file": str(home / "tls" / "ca.crt"),
            }
        )
    finally:
        process.stop(pid_file, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def test_strata_reaches_postgres_over_verified_tls(secure_postgres: Settings) -> None:
    s = secure_postgres
    assert migrate(s.postgres_dsn)  # every migration applied over TLS

    async def tenant_and_key() -> tenants.KeyInfo | None:
        async with await psycopg.AsyncConnection.connect(s.postgres_dsn, autocommit=True) as conn:
            await tenants.create_tenant(conn, "tls-tenant")
            _, key = await tenants.create_key(conn, "tls-tenant")
            return await tenants.verify_key(conn, key)

    info = asyncio.run(tenant_and_key())
    assert info is not None and info.tenant_id == "tls-tenant"
    with psycopg.connect(s.postgres_dsn) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None and row[0] is True, "the connection is not encrypted"
    assert row[1].startswith("TLSv1.")


def test_a_server_the_ca_did_not_sign_is_refused(secure_postgres: Settings, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    from infra.stack.tls import local_certs

    other_ca.write_bytes(local_certs(tmp_path / "other").ca.read_bytes())
    s = secure_postgres.model_copy(update={"tls_ca_file": str(other_ca)})
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(s.postgres_dsn, connect_timeout=5).close()
    # Without verification the same server is still reached, encrypted: what sslmode=require means.
    plain = secure_postgres.model_copy(update={"postgres_sslmode": "require", "tls_ca_file": ""})
    with psycopg.connect(plain.postgres_dsn) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def test_postgres_sslmode_disable_is_still_plain(secure_postgres: Settings) -> None:
    plain = secure_postgres.model_copy(update={"postgres_sslmode": "disable", "tls_ca_file": ""})
    with psycopg.connect(plain.postgres_dsn) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (False,)


@pytest.fixture(scope="module")
def secure_s3() -> Iterator[Settings]:
    home = Path(tempfile.mkdtemp(prefix="strata-s3-tls-"))
    (home / "cache").symlink_to(Settings().cache_dir)  # the stack's downloaded s3proxy jars
    settings = Settings(home=home, s3_port=free_port(), s3_tls_port=free_port(), stack_tls=True)
    service = S3Proxy(settings)
    if not service.lib_dir.exists():
        pytest.fail(f"the stack's s3proxy jars are missing in {service.lib_dir}; run `strata stack up`")
    started = time.monotonic()
    launch = service.prepare()
    pid_file = home / "run" / "s3.pid"
    process.start(launch.cmd, log_file=service.log_file, pid_file=pid_file, cwd=launch.cwd, env=launch.env)
    secure = settings.model_copy(
        update={
            "s3_endpoint": f"https://localhost:{settings.s3_tls_port}",
            "s3_ca_file": str(home / "tls" / "ca.crt"),
        }
    )
    try:
        deadline = time.monotonic() + 60
        while (problem := S3Proxy(secure).check()) is not None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the HTTPS S3 server did not start: {problem}\n{process.tail(service.log_file, 30)}"
                )
            time.sleep(0.3)
        print(f"\ns3proxy with HTTPS answered {time.monotonic() - started:.1f}s after its start")
        yield secure
    finally:
        process.stop(pid_file, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def test_the_archive_over_https_for_boto3_pyarrow_and_duckdb(secure_s3: Settings) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from connectors.s3.archive import s3_filesystem
    from connectors.s3.client import s3_client
    from connectors.s3.ddl import ArchiveLocation
    from connectors.s3.sql import archive_connection

    s = secure_s3
    client = s3_client(s)
    client.create_bucket(Bucket=s.s3_bucket)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"message": ["one", "two", "three"]}), sink)
    key = f"{s.archive_prefix}/tenant=acme/dt=2025-02-15/hour=12/part-0.parquet"
    client.put_object(Bucket=s.s3_bucket, Key=key, Body=sink.getvalue().to_pybytes())

    fs = s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region, s.s3_ca_file)
    with fs.open_input_file(f"{s.s3_bucket}/{key}") as f:
        assert pq.read_table(f).column("message").to_pylist() == ["one", "two", "three"]

    with archive_connection(ArchiveLocation.from_settings(s), "acme") as con:
        assert con.execute("SELECT count(*) FROM logs").fetchone() == (3,)


def test_an_s3_server_the_ca_did_not_sign_is_refused(secure_s3: Settings, tmp_path: Path) -> None:
    from botocore.exceptions import SSLError

    from connectors.s3.client import s3_client
    from infra.stack.tls import local_certs

    other = secure_s3.model_copy(update={"s3_ca_file": str(local_certs(tmp_path / "other").ca)})
    with pytest.raises(SSLError, match="certificate verify failed"):
        s3_client(other).list_buckets()


@pytest.fixture(scope="module")
def secure_opensearch() -> Iterator[Settings]:
    # A folder every user can traverse: OpenSearch runs as an unprivileged user when we are root.
    home = Path(tempfile.mkdtemp(prefix="strata-os-tls-"))
    home.chmod(0o755)
    (home / "cache").symlink_to(Settings().cache_dir)  # the stack's distribution, fetched once
    settings = Settings(
        home=home,
        opensearch_port=free_port(),
        opensearch_transport_port=free_port(),
        opensearch_heap="512m",
        stack_tls=True,
    )
    service = OpenSearch(settings)
    started = time.monotonic()
    service.fetch()  # the first time: the distribution copied with the security plugin
    fetched = time.monotonic()
    launch = service.prepare()
    pid_file = home / "run" / "opensearch.pid"
    process.start(
        launch.cmd,
        log_file=service.log_file,
        pid_file=pid_file,
        cwd=launch.cwd,
        env=launch.env,
        user=launch.user,
    )
    try:
        deadline = time.monotonic() + 300
        while (problem := service.check()) is not None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the HTTPS OpenSearch did not start: {problem}\n{process.tail(service.log_file, 30)}"
                )
            time.sleep(1)
        print(
            f"\nOpenSearch with the security plugin: fetched in {fetched - started:.1f}s, "
            f"answering over HTTPS {time.monotonic() - fetched:.1f}s after its start"
        )
        name, password = stack_opensearch_user(settings)
        yield settings.model_copy(
            update={
                "opensearch_url": f"https://localhost:{settings.opensearch_port}",
                "opensearch_username": name,
                "opensearch_password": password,
                "opensearch_ca_file": str(home / "tls" / "ca.crt"),
            }
        )
    finally:
        process.stop(pid_file, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_the_jobs_index_sink_and_the_search_reader_over_https(
    secure_opensearch: Settings, settings: Settings
) -> None:
    from opensearchpy import AuthenticationException
    from pyflink.common import Configuration, Row, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from connectors.opensearch.connection import connection_options, java_sink_options, open_client
    from connectors.opensearch.flink_sink import index_request_sink
    from connectors.opensearch.search import client
    from jobs.flink import flink_jar_urls

    s = secure_opensearch
    config = Configuration()
    config.set_string("pipeline.jars", ";".join(flink_jar_urls(settings)))  # the stack's jars (conftest)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    rows = [Row(f"id-{i}", "tls-sink", f'{{"message": "over https {i}"}}') for i in range(5)]
    stream = env.from_collection(rows, type_info=Types.ROW([Types.STRING(), Types.STRING(), Types.STRING()]))
    stream.sink_to(index_request_sink([s.opensearch_endpoint], connection=java_sink_options(s)))
    env.execute("opensearch-tls-sink-test")

    reader = client(s.opensearch_endpoint, timeout_s=30, **connection_options(s))
    reader.indices.refresh(index="tls-sink")
    hits = reader.search(index="tls-sink", body={"query": {"match": {"message": "https"}}, "size": 10})
    assert sorted(h["_id"] for h in hits["hits"]["hits"]) == [f"id-{i}" for i in range(5)]

    wrong = s.model_copy(update={"opensearch_password": "not-the-password"})
    with pytest.raises(AuthenticationException):
        open_client(wrong, timeout=10).cluster.health()


@pytest.fixture(scope="module")
def secure_cassandra() -> Iterator[Settings]:
    home = Path(tempfile.mkdtemp(prefix="strata-cass-tls-"))
    (home / "cache").symlink_to(Settings().cache_dir)  # the stack's Cassandra jars
    settings = Settings(
        home=home,
        cassandra_port=free_port(),
        cassandra_storage_port=free_port(),
        cassandra_heap="768m",
        stack_tls=True,
    )
    service = Cassandra(settings)
    if not service.lib_dir.exists():
        pytest.fail(f"the stack's Cassandra jars are missing in {service.lib_dir}; run `strata stack up`")
    started = time.monotonic()
    launch = service.prepare()
    pid_file = home / "run" / "cassandra.pid"
    process.start(launch.cmd, log_file=service.log_file, pid_file=pid_file, cwd=launch.cwd, env=launch.env)
    try:
        deadline = time.monotonic() + 300
        while (problem := service.check()) is not None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the TLS Cassandra did not start: {problem}\n{process.tail(service.log_file, 30)}"
                )
            time.sleep(1)
        print(
            f"\nCassandra with client encryption answered {time.monotonic() - started:.1f}s after its start"
        )
        name, password = stack_cassandra_user(settings)
        yield settings.model_copy(
            update={
                "cassandra_username": name,
                "cassandra_password": password,
                "cassandra_ssl": True,
                "cassandra_ca_file": str(home / "tls" / "ca.crt"),
            }
        )
    finally:
        process.stop(pid_file, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_the_jobs_warm_sink_and_the_reader_over_tls_with_a_password(
    secure_cassandra: Settings, settings: Settings
) -> None:
    from cassandra.cluster import NoHostAvailable
    from pyflink.common import Configuration, Row, Types
    from pyflink.datastream import StreamExecutionEnvironment

    from connectors.cassandra.connection import cluster_options
    from connectors.cassandra.flink_sink import Connection, batched_cassandra_sink
    from connectors.cassandra.search import connect
    from jobs.flink import flink_jar_urls

    s = secure_cassandra
    session = connect(s.cassandra_contact_points, s.cassandra_port, timeout_s=10, **cluster_options(s))
    session.execute(
        "CREATE KEYSPACE IF NOT EXISTS tls WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=60,
    )
    session.execute(
        "CREATE TABLE IF NOT EXISTS tls.rows (k text, c int, v text, PRIMARY KEY (k, c))", timeout=60
    )

    config = Configuration()
    config.set_string("pipeline.jars", ";".join(flink_jar_urls(settings)))  # the stack's jars (conftest)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    rows = [Row("tenant", i, f"over tls {i}") for i in range(5)]
    stream = env.from_collection(rows, type_info=Types.ROW([Types.STRING(), Types.INT(), Types.STRING()]))
    query = "INSERT INTO tls.rows (k, c, v) VALUES (?, ?, ?)"
    stream.add_sink(
        batched_cassandra_sink(
            s.cassandra_contact_points[0],
            s.cassandra_port,
            query,
            [0],
            connection=Connection.from_settings(s),
        )
    )
    env.execute("cassandra-tls-sink-test")

    found = session.execute("SELECT c, v FROM tls.rows WHERE k = 'tenant'", timeout=30)
    assert sorted((r["c"], r["v"]) for r in found) == [(i, f"over tls {i}") for i in range(5)]
    session.cluster.shutdown()

    for wrong in (
        s.model_copy(update={"cassandra_password": "not-the-password"}),
        s.model_copy(update={"cassandra_ssl": False}),  # plain connections are refused
    ):
        with pytest.raises(NoHostAvailable):
            connect(
                wrong.cassandra_contact_points, wrong.cassandra_port, timeout_s=5, **cluster_options(wrong)
            )
