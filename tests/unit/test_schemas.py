"""Every tier's projection has exactly the record's fields, and every conversion round-trips."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from schemas import FIELD_NAMES, FIELDS, EnvelopeError, Kind, Level, RawEnvelope, Record
from schemas import projections as pj

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def sample() -> Record:
    return Record(
        log_id="0" * 32,
        tenant="acme",
        timestamp=datetime(2025, 2, 15, 12, 0, 0, 123456, tzinfo=UTC),
        ingested_at=datetime(2025, 2, 15, 12, 0, 1, 7, tzinfo=UTC),
        level=Level.ERROR,
        service="checkout",
        host="web-1",
        environment="prod",
        region=None,
        message="Payment failed for [EMAIL]",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id=None,
        attributes={"error.type": "CardError", "error": "declined"},
        tags=["truncated"],
        source_format="json",
        pattern_id="85cf742daaa18a0f",
        pattern="Payment failed for <*>",
        masked={"EMAIL": 1},
    )


def test_record_dataclass_is_the_field_list() -> None:
    assert tuple(f.name for f in fields(Record)) == FIELD_NAMES
    assert len(set(FIELD_NAMES)) == len(FIELD_NAMES)


def test_opensearch_mapping_has_exactly_the_fields() -> None:
    template = pj.opensearch_index_template("strata-logs")
    props = template["template"]["mappings"]["properties"]
    assert list(props) == list(FIELD_NAMES)
    assert props["message"]["type"] == "text"
    assert props["timestamp"]["type"] == "date_nanos"
    assert props["attributes"]["type"] == "flat_object"
    assert all(props[f.name]["type"] == "keyword" for f in FIELDS if f.kind in (Kind.KEYWORD, Kind.ID))
    assert template["index_patterns"] == ["strata-logs-*"]


def test_opensearch_refresh_interval_is_the_template_s_setting() -> None:
    settings = pj.opensearch_index_template("strata-logs", refresh_interval="5s")["template"]["settings"]
    assert settings["refresh_interval"] == "5s"


def test_cql_table_has_the_fields_plus_the_day_bucket() -> None:
    names = [n for n, _ in pj.cql_columns()]
    assert names[: len(FIELD_NAMES)] == list(FIELD_NAMES)
    assert names[len(FIELD_NAMES) :] == list(pj.CQL_DERIVED_COLUMNS)
    ddl = pj.cql_create_table("strata", "logs", default_ttl_seconds=3600)
    assert 'PRIMARY KEY (("tenant", "service", "day"), "timestamp", "log_id")' in ddl
    assert 'CLUSTERING ORDER BY ("timestamp" DESC, "log_id" ASC)' in ddl
    assert "default_time_to_live = 3600" in ddl
    for name in names:
        assert f'"{name}"' in ddl
    assert pj.cql_insert("strata").count("?") == len(names)


def test_arrow_schema_has_exactly_the_fields() -> None:
    schema = pj.arrow_schema()
    assert schema.names == list(FIELD_NAMES)
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"


def test_flink_row_has_exactly_the_fields() -> None:
    assert [n for n, _ in pj.flink_row_fields()] == list(FIELD_NAMES)
    assert dict(pj.flink_row_fields())["timestamp"] == "TIMESTAMP(6) NOT NULL"
    ddl = pj.flink_sql_ddl("logs_sink", {"connector": "print"})
    for name in FIELD_NAMES:
        assert f"`{name}`" in ddl
    assert "PRIMARY KEY (`log_id`) NOT ENFORCED" in ddl


def test_record_logic_imports_without_pyflink() -> None:
    # A fresh interpreter, so modules other tests imported cannot hide a stray import.
    code = (
        "import sys, schemas, schemas.projections, core.records.pipeline, infra.cli.parse; "
        "sys.exit(any(m.split('.')[0] == 'pyflink' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


def test_flink_type_info_builds_when_pyflink_is_installed() -> None:
    pytest.importorskip("pyflink")
    info = pj.flink_row_type_info()
    assert list(info.get_field_names()) == list(FIELD_NAMES)


def test_round_trips() -> None:
    rec = sample()
    assert Record.from_json(rec.to_json()) == rec
    assert pj.from_opensearch_doc(pj.to_opensearch_doc(rec)) == rec
    assert pj.from_cql_row(pj.to_cql_row(rec)) == rec
    assert pj.arrow_to_records(pj.records_to_arrow([rec, rec])) == [rec, rec]
    assert pj.from_flink_row_values(pj.to_flink_row_values(rec)) == rec
    doc = orjson.loads(rec.to_json())
    assert doc["timestamp"] == "2025-02-15T12:00:00.123456Z"
    assert list(doc) == list(FIELD_NAMES)


def test_cql_row_values_match_columns() -> None:
    row = pj.to_cql_row(sample())
    assert len(row) == len(pj.cql_columns())
    assert row[-1] == "2025-02-15"


def test_daily_index_name_uses_event_time() -> None:
    assert pj.opensearch_index_name("strata-logs", sample()) == "strata-logs-2025.02.15"


def test_envelope_round_trip_line_and_entry() -> None:
    at = datetime(2025, 2, 15, 12, 0, tzinfo=UTC)
    line = RawEnvelope(tenant="acme", received_at=at, source="syslog", service="api", line="hello")
    assert RawEnvelope.decode(line.encode()) == line
    entry = RawEnvelope(tenant="acme", received_at=at, entry={"message": "m", "traceId": "t"})
    assert RawEnvelope.decode(entry.encode()) == entry
    binary = RawEnvelope.for_bytes(b"\xff\xfeabc", tenant="acme", received_at=at)
    assert binary.line_encoding == "base64"
    assert RawEnvelope.decode(binary.encode()).line_bytes() == b"\xff\xfeabc"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"received_at": "2025-01-01T00:00:00Z", "line": "x"}',
        b'{"tenant": "a", "line": "x"}',
        b'{"tenant": "a", "received_at": "2025-01-01T00:00:00Z"}',
        b'{"tenant": "a", "received_at": "2025-01-01T00:00:00Z", "line": "x", "entry": {}}',
        b'{"tenant": "a", "received_at": "yesterday", "line": "x"}',
        b'{"tenant": "a", "received_at": "2025-01-01T00:00:00Z", "line": 5}',
        b'{"tenant": "a", "received_at": "2025-01-01T00:00:00Z", "line": "%%", "line_encoding": "base64"}',
    ],
)
def test_invalid_envelopes_raise_envelope_error(payload: bytes) -> None:
    with pytest.raises(EnvelopeError):
        RawEnvelope.decode(payload)
