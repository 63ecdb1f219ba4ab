"""Dead letters: readable only masked, the exact bytes sealed and recoverable with the key."""

from __future__ import annotations

import orjson
import pytest

from connectors.kafka.ready import topic_configs
from core.deadletter import LOCAL_DLQ_KEY, DeadLetterCipher, DeadLetterKeyError, dlq_secret
from core.ingest import DeadLetter, ingest_one
from core.records.config import PipelineConfig
from core.records.pipeline import RecordPipeline
from core.tiers import TierPolicy
from infra.settings import Settings

KEY = "an operator's dead-letter key, 32+"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"


def dead_letter(raw: bytes, pipeline: RecordPipeline | None = None) -> tuple[DeadLetter, RecordPipeline]:
    pipeline = pipeline or RecordPipeline()
    out = ingest_one(pipeline, TierPolicy(14, 45), raw, "raw_logs", 3, 42, 0)
    assert isinstance(out, DeadLetter)
    return out, pipeline


def test_the_entry_shows_the_input_masked_and_keeps_its_exact_bytes_sealed() -> None:
    raw = f'{{"v": 1, "tenant": "acme", "entry": "card {CARD} from {EMAIL}"'.encode()  # cut short
    letter, pipeline = dead_letter(raw)
    cipher = DeadLetterCipher(KEY)
    text = letter.to_json(cipher, pipeline.mask_text)
    entry = orjson.loads(text)
    for secret in (CARD, CARD.replace(" ", ""), EMAIL, "jane.doe"):
        assert secret not in text, f"{secret!r} readable in the dead letter"
    assert "[EMAIL]" in entry["original"] and "[CARD]" in entry["original"]
    assert entry["reason_code"] == "MALFORMED_ENVELOPE"
    assert entry["tenant"] == "acme"
    assert entry["original_bytes"] == len(raw)
    assert entry["source"] == {"topic": "raw_logs", "partition": 3, "offset": 42}
    assert cipher.open(entry["original_sealed"]) == raw


def test_the_tenants_own_rules_mask_its_dead_letters() -> None:
    config = PipelineConfig.model_validate(
        {
            "masking": {
                "tenants": {
                    "acme": {"custom": [{"name": "ORDER", "regex": r"ORD-\d{8}", "marker": "[ORDER]"}]}
                }
            }
        }
    )
    pipeline = RecordPipeline(config)
    mine, _ = dead_letter(b'{"tenant": "acme", "entry": "ORD-12345678 failed"', pipeline)
    theirs, _ = dead_letter(b'{"tenant": "globex", "entry": "ORD-12345678 failed"', pipeline)
    cipher = DeadLetterCipher(KEY)
    assert "[ORDER]" in orjson.loads(mine.to_json(cipher, pipeline.mask_text))["original"]
    assert "ORD-12345678" in orjson.loads(theirs.to_json(cipher, pipeline.mask_text))["original"]


def test_a_sealed_value_opens_only_with_its_key_and_unchanged() -> None:
    cipher = DeadLetterCipher(KEY)
    sealed = cipher.seal(b"\xff\xfe not even utf-8")
    assert sealed.startswith(f"v1.{cipher.key_id}.")
    assert cipher.seal(b"same") != cipher.seal(b"same"), "a nonce must never repeat"
    assert cipher.open(sealed) == b"\xff\xfe not even utf-8"
    with pytest.raises(DeadLetterKeyError, match="sealed with key"):
        DeadLetterCipher("another key of sixteen bytes").open(sealed)
    body = sealed.rsplit(".", 1)[1]
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DeadLetterKeyError, match="damaged or was changed"):
        cipher.open(sealed.rsplit(".", 1)[0] + "." + flipped)
    with pytest.raises(DeadLetterKeyError, match="not a sealed"):
        cipher.open("plain text")


def test_a_deployment_must_bring_its_own_key() -> None:
    assert dlq_secret("", local_stack=True) == LOCAL_DLQ_KEY
    assert dlq_secret(KEY, local_stack=False) == KEY
    with pytest.raises(DeadLetterKeyError, match="STRATA_DLQ_KEY is not set"):
        dlq_secret("", local_stack=False)
    with pytest.raises(DeadLetterKeyError, match="at least 16 bytes"):
        dlq_secret("short", local_stack=False)


def test_the_dead_letter_topic_has_a_retention_of_its_own() -> None:
    settings = Settings(dlq_retention_hours=24, topic_retention_hours=168)
    assert topic_configs(settings, settings.dlq_topic) == {"retention.ms": str(24 * 3_600_000)}
    assert topic_configs(settings, settings.raw_topic) == {"retention.ms": str(168 * 3_600_000)}
