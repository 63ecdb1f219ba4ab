"""Clients of the local stack's services, built from the settings as a test or a benchmark needs them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.settings import Settings


@contextmanager
def kafka_topic(settings: Settings, name: str, partitions: int = 1) -> Iterator[str]:
    """A new topic ``name``, deleted afterwards."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    admin.create_topics([NewTopic(name, partitions, 1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


def produce(settings: Settings, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    """Send ``values`` to ``topic`` and wait until Kafka has them all (acks from every replica)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    for value in values:
        producer.send(topic, value=value, key=key)
    producer.flush()
    producer.close()


@contextmanager
def cassandra_keyspace(settings: Settings, keyspace: str) -> Iterator[Any]:
    """A session with a new single-replica ``keyspace``; the keyspace is dropped afterwards."""
    from cassandra.cluster import Cluster

    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    session = cluster.connect()
    try:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        yield session
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
