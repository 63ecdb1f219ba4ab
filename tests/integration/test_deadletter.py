"""The dead-letter topic on real Kafka: created with a retention of its own, and read back with
`strata dlq show` — masked without the key, byte for byte with it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid

import orjson
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from connectors.kafka.ready import ensure_topic
from core.deadletter import DeadLetterCipher
from core.ingest import DeadLetter, ingest_one
from core.records.pipeline import RecordPipeline
from core.tiers import TierPolicy
from tests.integration.collector_support import REPO, require_stack

pytestmark = pytest.mark.integration

KEY = "the operators' dead-letter key for this test"


@pytest.fixture()
def dlq_settings():
    settings = require_stack()
    name = f"test-dlq-{uuid.uuid4().hex[:10]}"
    settings = settings.model_copy(update={"dlq_topic": name, "dlq_retention_hours": 5, "dlq_key": KEY})
    yield settings
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    for future in admin.delete_topics([name]).values():
        with contextlib.suppress(KafkaException):
            future.result(timeout=30)


def retention_ms(settings, topic: str) -> str:  # type: ignore[no-untyped-def]
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return str(admin.describe_configs([resource])[resource].result(timeout=30)["retention.ms"].value)


def test_the_dead_letter_topic_is_created_with_its_own_retention_and_kept_at_it(dlq_settings) -> None:  # type: ignore[no-untyped-def]
    assert ensure_topic(dlq_settings, dlq_settings.dlq_topic, partitions=1) is True
    assert retention_ms(dlq_settings, dlq_settings.dlq_topic) == str(5 * 3_600_000)
    changed = dlq_settings.model_copy(update={"dlq_retention_hours": 7})
    assert ensure_topic(changed, changed.dlq_topic) is False
    assert retention_ms(changed, changed.dlq_topic) == str(7 * 3_600_000)


def strata_dlq(settings, *args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "STRATA_DLQ_KEY": key, "STRATA_DLQ_TOPIC": settings.dlq_topic}
    return subprocess.run(
        [sys.executable, "-m", "infra.cli.main", "dlq", "show", "--timeout", "3", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_strata_dlq_show_masks_and_decrypt_gives_back_the_exact_bytes(dlq_settings) -> None:  # type: ignore[no-untyped-def]
    ensure_topic(dlq_settings, dlq_settings.dlq_topic, partitions=1)
    raw = b'{"v": 1, "tenant": "acme", "entry": {"message": "card 4111 1111 1111 1111 for jane@example.com"'
    pipeline = RecordPipeline()
    letter = ingest_one(pipeline, TierPolicy(14, 45), raw, "raw_logs", 0, 7, 0)
    assert isinstance(letter, DeadLetter)
    producer = Producer({"bootstrap.servers": dlq_settings.kafka_servers})
    producer.produce(dlq_settings.dlq_topic, letter.to_json(DeadLetterCipher(KEY), pipeline.mask_text))
    assert producer.flush(10) == 0

    shown = strata_dlq(dlq_settings)
    assert shown.returncode == 0, shown.stderr
    entry = orjson.loads(shown.stdout.splitlines()[0])
    assert entry["reason_code"] == "MALFORMED_ENVELOPE" and entry["tenant"] == "acme"
    assert "jane@example.com" not in shown.stdout and "4111" not in shown.stdout
    assert "original_exact" not in entry

    opened = strata_dlq(dlq_settings, "--decrypt", "--raw")
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == raw.decode() + "\n"

    wrong = strata_dlq(dlq_settings, "--decrypt", key="somebody else's key, long enough")
    assert wrong.returncode == 1
    assert "sealed with key" in wrong.stderr
