"""The canonical log record: one field list, from which every tier's layout is derived.

``FIELDS`` is the single source of truth. :class:`Record` is checked against it at import time,
and :mod:`schemas.projections` builds the OpenSearch template, the CQL table, the Arrow schema and
the Flink row type from it, so adding a field here is the only edit a new field needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson


class Level(StrEnum):
    """The six severities every input level is normalized to."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


class Kind(StrEnum):
    """What a field holds; each projection maps a kind to its own type."""

    ID = "id"  # a short identifier string (hashes, names): exact match only
    KEYWORD = "keyword"  # a string filtered on, never tokenized
    TEXT = "text"  # full-text searched
    TIMESTAMP = "timestamp"  # UTC, microsecond precision
    STRING_MAP = "string_map"  # str -> str
    STRING_LIST = "string_list"
    COUNT_MAP = "count_map"  # str -> int


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: Kind
    required: bool
    doc: str


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "log_id", Kind.ID, True, "32 hex chars, keyed blake2b of (tenant, service, host, timestamp, message)"
    ),
    FieldSpec("tenant", Kind.KEYWORD, True, "owner of the record, stamped by the collector"),
    FieldSpec("timestamp", Kind.TIMESTAMP, True, "event time, UTC, microseconds"),
    FieldSpec("ingested_at", Kind.TIMESTAMP, True, "arrival time at the collector, UTC, microseconds"),
    FieldSpec("level", Kind.KEYWORD, True, "one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
    FieldSpec("service", Kind.KEYWORD, True, "emitting service, normalized (trimmed, lower-cased)"),
    FieldSpec("host", Kind.KEYWORD, True, "emitting host, normalized"),
    FieldSpec("environment", Kind.KEYWORD, False, "e.g. prod, staging (from the line or enrichment)"),
    FieldSpec("region", Kind.KEYWORD, False, "e.g. eu-west-1 (from the line or enrichment)"),
    FieldSpec("message", Kind.TEXT, True, "the log message, PII masked, at most max_message_bytes"),
    FieldSpec("trace_id", Kind.ID, False, "distributed trace id (W3C or vendor field)"),
    FieldSpec("span_id", Kind.ID, False, "span id within the trace"),
    FieldSpec("attributes", Kind.STRING_MAP, True, "every other field of the line, flattened to strings"),
    FieldSpec("tags", Kind.STRING_LIST, True, "flags set by the pipeline: truncated, invalid_utf8, ..."),
    FieldSpec("source_format", Kind.KEYWORD, True, "json, logfmt, syslog5424, syslog3164, access, ..."),
    FieldSpec("pattern_id", Kind.ID, False, "16 hex chars, hash of the mined template"),
    FieldSpec("pattern", Kind.KEYWORD, False, "the mined template, variables as <*>"),
    FieldSpec("masked", Kind.COUNT_MAP, True, "what masking replaced: marker kind -> count, e.g. {EMAIL: 1}"),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def micros(ts: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - EPOCH) // ONE_US


def from_micros(us: int) -> datetime:
    # Adding a timedelta is exact; datetime.fromtimestamp goes through a float and can be off by 1 µs.
    return EPOCH + timedelta(microseconds=us)


def format_ts(ts: datetime) -> str:
    """RFC 3339 with exactly six fraction digits and a ``Z``, the one text form used everywhere."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    elif ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_ts(value: Any) -> datetime:
    """Inverse of :func:`format_ts`; also accepts datetimes and integer epoch microseconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int):
        return from_micros(value)
    parsed = datetime.fromisoformat(str(value))  # Python 3.11 reads a trailing "Z" itself
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(slots=True)
class Record:
    """One normalized, masked log record. Build it with the pipeline, not by hand, so the id holds."""

    log_id: str
    tenant: str
    timestamp: datetime
    ingested_at: datetime
    level: Level
    service: str
    host: str
    environment: str | None
    region: str | None
    message: str
    trace_id: str | None
    span_id: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    source_format: str = "raw"
    pattern_id: str | None = None
    pattern: str | None = None
    masked: dict[str, int] = field(default_factory=dict)

    # -- plain dict / JSON (Kafka `logs` topic, `strata parse` output) --------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: timestamps as RFC 3339 strings, level as its name."""
        return {
            "log_id": self.log_id,
            "tenant": self.tenant,
            "timestamp": format_ts(self.timestamp),
            "ingested_at": format_ts(self.ingested_at),
            "level": str(self.level),
            "service": self.service,
            "host": self.host,
            "environment": self.environment,
            "region": self.region,
            "message": self.message,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "attributes": self.attributes,
            "tags": self.tags,
            "source_format": self.source_format,
            "pattern_id": self.pattern_id,
            "pattern": self.pattern,
            "masked": self.masked,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so old readers survive new fields."""
        return cls(
            log_id=str(data["log_id"]),
            tenant=str(data["tenant"]),
            timestamp=parse_ts(data["timestamp"]),
            ingested_at=parse_ts(data["ingested_at"]),
            level=Level(data["level"]),
            service=str(data["service"]),
            host=str(data["host"]),
            environment=data.get("environment"),
            region=data.get("region"),
            message=str(data["message"]),
            trace_id=data.get("trace_id"),
            span_id=data.get("span_id"),
            attributes={str(k): str(v) for k, v in (data.get("attributes") or {}).items()},
            tags=[str(t) for t in (data.get("tags") or [])],
            source_format=str(data.get("source_format") or "raw"),
            pattern_id=data.get("pattern_id"),
            pattern=data.get("pattern"),
            masked={str(k): int(v) for k, v in (data.get("masked") or {}).items()},
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Record:
        return cls.from_dict(orjson.loads(data))


def _check_record_matches_fields() -> None:
    # The dataclass is the one place the list is typed a second time (mypy needs it spelled out);
    # this check makes a drift between the two fail at import, not in some tier at runtime.
    names = tuple(f.name for f in fields(Record))
    if names != FIELD_NAMES:
        raise RuntimeError(f"Record fields {names} differ from FIELDS {FIELD_NAMES}")


_check_record_matches_fields()
