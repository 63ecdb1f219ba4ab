"""How far a consumer group has already archived ``raw_logs``, so that a replay does not archive a
message twice.

OpenSearch and Cassandra are idempotent on ``log_id``; the Parquet archive, the ``logs`` topic and
the DLQ are append-only. A replay (``--from earliest|timestamp:…|offsets:…``, new state) re-reads
messages the group has already processed: it re-writes the idempotent tiers and leaves the append-only
outputs alone for every message below the group's mark (:func:`core.ingest.archive_marks`).

The mark is the furthest of the group's committed offsets and a bookmark, the committed offsets of
the group ``<group>.archived``, which this module moves forward at each start. The bookmark is
needed because a replay commits its own, lower, offsets to the group as it goes: without it, a replay
stopped halfway and started again would archive the rest a second time.

This runs first when the job starts, often right after the broker did: every request retries the
errors of a broker still electing its group coordinator (:mod:`connectors.kafka.ready`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from connectors.kafka.ready import kafka_retriable, ready_topic
from connectors.retry import retry_until
from core.ingest import archive_marks
from infra.settings import Settings

T = TypeVar("T")


def bookmark_group(group_id: str) -> str:
    return f"{group_id}.archived"


def archived_through(settings: Settings, topic: str, group_id: str) -> dict[int, int]:
    """The group's marks per partition of ``topic`` (see :func:`archive_marks`), also saved as
    the bookmark; ``{}`` when the topic does not exist yet."""
    from confluent_kafka import Consumer, TopicPartition

    from connectors.kafka.security import librdkafka_security

    def consumer(group: str) -> Any:
        return Consumer(
            {
                "bootstrap.servers": settings.kafka_servers,
                "group.id": group,
                "enable.auto.commit": False,
                **librdkafka_security(settings),
            }
        )

    def patiently(what: str, call: Callable[[], T]) -> T:
        return retry_until(call, what=what, retriable=kafka_retriable, wait_s=settings.service_wait_s)

    group = consumer(group_id)
    bookmark = consumer(bookmark_group(group_id))
    try:
        meta = patiently(
            f"Kafka metadata of {topic}", lambda: ready_topic(group.list_topics(topic, timeout=10), topic)
        )
        if meta is None or not meta.partitions:
            return {}
        partitions = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = {
            tp.partition: tp.offset
            for tp in patiently(
                f"committed offsets of group {group_id}", lambda: group.committed(partitions, timeout=10)
            )
        }
        saved = {
            tp.partition: tp.offset
            for tp in patiently(
                f"committed offsets of group {bookmark_group(group_id)}",
                lambda: bookmark.committed(partitions, timeout=10),
            )
        }
        ends: dict[int, int] = {}
        for tp in partitions:
            low_high = patiently(
                f"end offset of {topic}[{tp.partition}]",
                partial(group.get_watermark_offsets, tp, timeout=10),
            )
            ends[tp.partition] = low_high[1]
        marks = archive_marks(committed, saved, ends)
        if marks != {p: max(o, 0) for p, o in saved.items()}:
            patiently(
                f"commit of group {bookmark_group(group_id)}",
                lambda: bookmark.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in marks.items()], asynchronous=False
                ),
            )
        return marks
    finally:
        group.close()
        bookmark.close()
