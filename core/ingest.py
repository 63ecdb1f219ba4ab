"""The ingest job's per-record decisions, in plain Python (no pyflink): what goes to which tier
(by :class:`core.tiers.TierPolicy`), and what a dead letter says. The Flink operators in
:mod:`jobs.ingest.job` only call these."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from core.deadletter import DeadLetterCipher
from core.records.pipeline import RecordPipeline
from core.tiers import TierPolicy
from schemas.record import Record, micros
from schemas.rejection import Rejected


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A ``raw_logs`` message the job could not turn into a record, as written to ``raw_logs_dlq``
    (what it shows and what it seals: :mod:`core.deadletter`)."""

    reason_code: str
    detail: str
    original: bytes
    topic: str
    partition: int
    offset: int

    def to_json(self, cipher: DeadLetterCipher, mask: Callable[[str, str | None], str]) -> str:
        """The entry: the readable part masked with ``mask(text, tenant)``, the exact bytes sealed."""
        tenant = _envelope_tenant(self.original)
        return orjson.dumps(
            {
                "reason_code": self.reason_code,
                "detail": mask(self.detail, tenant),
                "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
                "tenant": tenant,
                # Exact bytes for a replay (with the key), and a masked form for the person looking.
                "original_sealed": cipher.seal(self.original),
                "original": mask(self.original[:4096].decode("utf-8", "replace"), tenant),
                "original_bytes": len(self.original),
                "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        ).decode()


# The collectors write "tenant" first; a malformed envelope (cut short, bad field) usually still
# names it, and its own masking rules should then apply.
_TENANT = re.compile(rb'^\s*\{\s*(?:"v"\s*:\s*\d+\s*,\s*)?"tenant"\s*:\s*"([a-z0-9][a-z0-9_-]{0,62})"')


def _envelope_tenant(raw: bytes) -> str | None:
    """The tenant a message names at its start, or None."""
    match = _TENANT.match(raw[:256])
    return match.group(1).decode("ascii") if match else None


def ingest_one(
    pipeline: RecordPipeline,
    policy: TierPolicy,
    value: bytes,
    topic: str,
    partition: int,
    offset: int,
    now_us: int,
) -> tuple[Record, bool, bool, int] | DeadLetter:
    """One ``raw_logs`` message → (record, hot?, warm?, warm TTL) or a dead letter."""
    result = pipeline.process(value)
    if isinstance(result, Rejected):
        return DeadLetter(str(result.reason_code), result.detail, value, topic, partition, offset)
    hot, warm, ttl = policy.admit(micros(result.timestamp), now_us)
    return result, hot, warm, ttl


def archive_marks(
    committed: Mapping[int, int], bookmark: Mapping[int, int], ends: Mapping[int, int]
) -> dict[int, int]:
    """Per partition of ``raw_logs``, the offset below which the consumer group has already
    archived (and published to ``logs`` and the DLQ) every message: the further of its committed
    offsets and the bookmark an earlier start left, or 0 where that lies past the partition's end
    (the topic was recreated, so its offsets start again).

    >>> archive_marks({0: 500, 1: 10}, {0: 900}, {0: 1000, 1: 20, 2: 5})
    {0: 900, 1: 10, 2: 0}
    """
    out = {}
    for partition, end in ends.items():
        mark = max(committed.get(partition, 0), bookmark.get(partition, 0), 0)
        out[partition] = mark if mark <= end else 0
    return out


__all__ = ["DeadLetter", "TierPolicy", "archive_marks", "ingest_one"]
