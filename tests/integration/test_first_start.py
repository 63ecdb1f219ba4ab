"""A first run: the ingest job's start path against a broker that started a moment ago.

A broker that has just started answers metadata requests but has no group coordinator yet; the
job's first request, the archive marks of its consumer group, used to fail there with
NOT_COORDINATOR. The shared broker has long had its coordinator, so the test starts its own.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from opensearchpy import OpenSearch

from connectors.cassandra.ready import connect_when_ready
from connectors.opensearch.ready import wait_for_cluster
from connectors.postgres.migrate import migrate
from connectors.postgres.pool import postgres_retriable
from connectors.retry import retry_until
from jobs.ingest.marks import archived_through
from tests.integration.collector_support import free_port, require_stack
from tests.integration.kafka_support import throwaway_kafka

pytestmark = pytest.mark.integration


def test_the_archive_marks_of_a_just_started_broker_are_read_at_once(tmp_path):
    broker = throwaway_kafka(tmp_path / "kafka")
    broker.start()  # returns as soon as the broker answers a metadata request
    try:
        settings = require_stack().model_copy(
            update={"kafka_bootstrap": broker.endpoint, "service_wait_s": 90.0}
        )
        topic = f"test-raw-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": broker.endpoint})
        for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
            future.result(timeout=30)
        producer = Producer({"bootstrap.servers": broker.endpoint})
        for i in range(5):
            producer.produce(topic, f"line {i}".encode(), partition=i % 2)
        assert producer.flush(30) == 0

        started = time.monotonic()
        marks = archived_through(settings, topic, "strata-ingest-first-run")
        took = time.monotonic() - started

        assert marks == {0: 0, 1: 0}  # a group that never ran archives everything
        assert archived_through(settings, topic, "strata-ingest-first-run") == marks
        assert took < 90
    finally:
        if broker.process is not None and broker.process.poll() is None:
            broker.kill()


def test_the_opensearch_cassandra_and_postgres_waits_pass_a_ready_stack_and_bound_a_missing_one():
    settings = require_stack()
    wait_for_cluster(OpenSearch(settings.opensearch_endpoint), wait_s=30)
    cluster, session = connect_when_ready(settings.cassandra_contact_points, settings.cassandra_port, 30)
    try:
        assert session.execute("SELECT release_version FROM system.local").one() is not None
    finally:
        cluster.shutdown()

    nowhere = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="OpenSearch cluster: still not ready after 2 s"):
        wait_for_cluster(OpenSearch(nowhere), wait_s=2)
    with pytest.raises(TimeoutError, match="Cassandra: still not ready after 2 s"):
        connect_when_ready(["127.0.0.1"], free_port(), 2)
    with pytest.raises(TimeoutError, match="PostgreSQL: still not ready after 2 s"):
        no_postgres = f"host=127.0.0.1 port={free_port()} user=strata dbname=strata connect_timeout=1"
        retry_until(lambda: migrate(no_postgres), what="PostgreSQL", retriable=postgres_retriable, wait_s=2)
    # A wrong password is not "not ready yet": it fails at once.
    wrong = settings.postgres_dsn.split(" password=")[0] + " password=wrong-password"
    with pytest.raises(psycopg.OperationalError):
        retry_until(lambda: migrate(wrong), what="PostgreSQL", retriable=postgres_retriable, wait_s=60)
    assert time.monotonic() - started < 20
