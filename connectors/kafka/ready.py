"""Which Kafka errors mean "not ready yet, ask again" rather than "wrong".

A just-started broker answers group requests with NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS
until it has loaded ``__consumer_offsets``, and a just-created topic has no leader for a moment;
librdkafka's own request timeouts and "all brokers down" are the same story one level lower.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException

from connectors.retry import NotReady, retry_until
from infra.settings import Settings

RETRIABLE_CODES = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_CONTROLLER,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._WAIT_COORD,
    }
)


def kafka_retriable(exc: BaseException) -> bool:
    """True for a :class:`KafkaException` whose error clears by itself on a starting broker."""
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    error = exc.args[0]
    if not isinstance(error, KafkaError):
        return False
    return error.code() in RETRIABLE_CODES or bool(error.retriable())


def ready_topic(metadata: Any, topic: str) -> Any | None:
    """The topic's metadata from a ``list_topics`` answer, ``None`` when the topic does not exist.

    Raises :class:`NotReady` while the topic or one of its partitions reports a retriable error or
    has no leader yet, as a topic does in the moments after it is created.
    """
    meta = metadata.topics.get(topic)
    if meta is None:
        return None
    if meta.error is not None:
        if meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        if meta.error.code() in RETRIABLE_CODES or meta.error.retriable():
            raise NotReady(f"topic {topic}: {meta.error.str()}")
        raise KafkaException(meta.error)
    for partition in meta.partitions.values():
        if partition.error is not None or partition.leader < 0:
            raise NotReady(f"topic {topic} partition {partition.id} has no leader yet")
    return meta


def ensure_alerts_topic(settings: Settings, topic: str) -> None:
    """One partition on purpose: alert events are few, and one partition keeps every group's
    events in the order the job emitted them. Waits for a broker that has just started."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from connectors.kafka.security import librdkafka_security

    admin = AdminClient({"bootstrap.servers": settings.kafka_servers, **librdkafka_security(settings)})

    def ensure() -> None:
        if ready_topic(admin.list_topics(topic, timeout=10), topic) is not None:
            return
        for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            try:
                future.result(timeout=30)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise

    retry_until(
        ensure, what=f"Kafka topic {topic}", retriable=kafka_retriable, wait_s=settings.service_wait_s
    )


def topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """The configuration a pipeline topic is created with. The dead-letter topic keeps its entries
    ``dlq_retention_hours``, apart from the replay window of the others: it holds what could not be
    parsed (sealed and masked, core/deadletter.py), which should not outlive the time an operator
    needs to look at it."""
    hours = settings.dlq_retention_hours if topic == settings.dlq_topic else settings.topic_retention_hours
    return {"retention.ms": str(hours * 3_600_000)}


def ensure_topic(settings: Settings, topic: str, partitions: int | None = None) -> bool:
    """Create ``topic`` with :func:`topic_configs` unless it exists; True when it was created.

    An existing dead-letter topic whose retention differs from the setting is brought to it, so a
    changed ``STRATA_DLQ_RETENTION_HOURS`` applies at the next start, not only on a new cluster.
    """
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

    from connectors.kafka.security import librdkafka_security

    admin = AdminClient({"bootstrap.servers": settings.kafka_servers, **librdkafka_security(settings)})
    wanted = topic_configs(settings, topic)
    created = False

    def ensure() -> None:
        nonlocal created
        if ready_topic(admin.list_topics(topic, timeout=10), topic) is None:
            new = NewTopic(topic, partitions or settings.topic_partitions, 1, config=wanted)
            for future in admin.create_topics([new]).values():
                try:
                    future.result(timeout=30)
                    created = True
                except Exception as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
        if created or topic != settings.dlq_topic:
            return
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        current = admin.describe_configs([resource])[resource].result(timeout=30)
        entry = current.get("retention.ms")
        if entry is None or entry.value != wanted["retention.ms"]:
            change = ConfigEntry(
                "retention.ms", wanted["retention.ms"], incremental_operation=AlterConfigOpType.SET
            )
            resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[change])
            for future in admin.incremental_alter_configs([resource]).values():
                future.result(timeout=30)

    retry_until(
        ensure, what=f"Kafka topic {topic}", retriable=kafka_retriable, wait_s=settings.service_wait_s
    )
    return created
