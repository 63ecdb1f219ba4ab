"""The record pipeline end to end: validation, enrichment, identity, patterns, config, envelopes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.records.config import PipelineConfig
from core.records.mining import Drain
from core.records.pipeline import RecordPipeline
from schemas import Level, RawEnvelope, Record, Rejected, RejectReason

pytestmark = pytest.mark.unit

ARRIVAL = datetime(2025, 2, 15, 12, 0, 30, tzinfo=UTC)


def ok(result: Record | Rejected) -> Record:
    assert isinstance(result, Record), result
    return result


def line(pipeline: RecordPipeline, text: str | bytes, **kw: object) -> Record | Rejected:
    kw.setdefault("tenant", "t")
    kw.setdefault("received_at", ARRIVAL)
    return pipeline.process_line(text, **kw)  # type: ignore[arg-type]


def test_the_issue_example_line() -> None:
    r = ok(
        line(
            RecordPipeline(),
            "2025-02-15 12:00:00.123 ERROR [payment-service] Payment failed "
            "for order 42 req_id=abc123 latency=5000ms",
        )
    )
    assert r.timestamp == datetime(2025, 2, 15, 12, 0, 0, 123000, tzinfo=UTC)
    assert r.level is Level.ERROR and r.service == "payment-service"
    assert r.attributes == {"req_id": "abc123", "latency": "5000ms"}
    assert r.source_format == "plain" and len(r.log_id) == 32 and len(r.pattern_id or "") == 16


def test_long_messages_are_truncated_and_tagged() -> None:
    pipeline = RecordPipeline(PipelineConfig(max_message_bytes=1024))
    r = ok(line(pipeline, "2025-02-15 12:00:00 INFO " + "é" * 2000))
    assert len(r.message.encode()) <= 1024 and "truncated" in r.tags
    assert r.attributes["original_size"] == "4000"


def test_default_size_limit_is_64_kib() -> None:
    r = ok(line(RecordPipeline(), "x" * 70_000))
    assert len(r.message) == 65536 and "truncated" in r.tags


def _envelope(**fields: Any) -> RawEnvelope:
    """An envelope of tenant ``t`` that arrived at ARRIVAL, unless ``fields`` say otherwise."""
    fields.setdefault("tenant", "t")
    fields.setdefault("received_at", ARRIVAL)
    return RawEnvelope(**fields)


def _entry(**entry: object) -> RawEnvelope:
    return _envelope(entry={"message": "m", **entry})


def test_long_attribute_values_and_keys_are_cut_to_what_the_stores_index() -> None:
    # Both stores index each attribute as one term and refuse a write with an oversized one.
    r = ok(RecordPipeline().process(_entry(payload="é" * 5000, small="ok", **{"k" * 300: "v"})))
    assert len(r.attributes["payload"].encode()) <= 4096 and r.attributes["payload"].startswith("éé")
    assert r.attributes["small"] == "ok" and r.attributes["k" * 256] == "v"
    assert max(len(k) for k in r.attributes) == 256 and "attribute_truncated" in r.tags
    short = ok(RecordPipeline(PipelineConfig(max_attribute_bytes=64)).process(_entry(payload="x" * 65)))
    assert short.attributes["payload"] == "x" * 64


def test_records_with_short_attributes_are_not_tagged() -> None:
    r = ok(RecordPipeline().process(_entry(payload="x" * 4096)))
    assert r.attributes["payload"] == "x" * 4096 and "attribute_truncated" not in r.tags


def test_an_id_too_long_to_be_one_stays_an_attribute() -> None:
    r = ok(RecordPipeline().process(_entry(traceId="a" * 300, spanId="b" * 16)))
    assert r.trace_id is None and r.attributes["trace_id_raw"] == "a" * 300
    assert r.span_id == "b" * 16


def test_oversized_input_is_rejected() -> None:
    pipeline = RecordPipeline(PipelineConfig(max_line_bytes=2048))
    r = line(pipeline, b"x" * 4096)
    assert isinstance(r, Rejected) and r.reason_code is RejectReason.TOO_LARGE


def test_invalid_utf8_is_replaced_and_tagged() -> None:
    r = ok(line(RecordPipeline(), b"2025-02-15 12:00:00 WARN bad \xff\xfe bytes"))
    assert "invalid_utf8" in r.tags and "\ufffd" in r.message


def test_invalid_utf8_through_a_base64_envelope() -> None:
    env = RawEnvelope.for_bytes(b"caf\xe9 closed", tenant="t", received_at=ARRIVAL)
    r = ok(RecordPipeline().process(env.encode()))
    assert r.message == "caf\ufffd closed" and "invalid_utf8" in r.tags


def test_future_timestamps_fall_back_to_arrival_and_are_tagged() -> None:
    r = ok(line(RecordPipeline(), "2025-02-16 12:00:00 INFO from the future"))
    assert r.timestamp == ARRIVAL == r.ingested_at
    assert "future_timestamp" in r.tags and r.attributes["original_timestamp"] == "2025-02-16 12:00:00"


def test_small_clock_skew_is_accepted() -> None:
    r = ok(line(RecordPipeline(), "2025-02-15 12:05:00 INFO five minutes ahead"))
    assert r.timestamp == datetime(2025, 2, 15, 12, 5, tzinfo=UTC) and r.tags == []


def test_old_timestamps_are_kept_and_tagged() -> None:
    r = ok(line(RecordPipeline(), "2020-01-01 00:00:00 INFO old news"))
    assert r.timestamp.year == 2020 and "old_timestamp" in r.tags


def test_skew_window_and_policies_are_configurable() -> None:
    config = PipelineConfig(
        max_future_seconds=0, future_policy="keep", max_past_days=1, past_policy="arrival"
    )
    pipeline = RecordPipeline(config)
    future = ok(line(pipeline, "2025-02-15 12:01:00 INFO ahead"))
    assert future.timestamp.minute == 1 and "future_timestamp" in future.tags
    past = ok(line(pipeline, "2025-02-10 12:00:00 INFO behind"))
    assert past.timestamp == ARRIVAL and "old_timestamp" in past.tags


def test_unreadable_timestamp_uses_arrival_or_rejects() -> None:
    text = '{"ts": "not a time", "msg": "hello"}'
    r = ok(line(RecordPipeline(), text))
    assert (
        r.timestamp == ARRIVAL
        and "bad_timestamp" in r.tags
        and r.attributes["original_timestamp"] == "not a time"
    )
    rejected = line(RecordPipeline(PipelineConfig(on_bad_timestamp="reject")), text)
    assert isinstance(rejected, Rejected) and rejected.reason_code is RejectReason.BAD_TIMESTAMP


@pytest.mark.parametrize(
    ("text", "fmt", "reason"),
    [
        ("", None, RejectReason.EMPTY),
        ("   \t ", None, RejectReason.EMPTY),
        ('{"msg": ', "json", RejectReason.MALFORMED_JSON),
        ('{"level": "info"}', None, RejectReason.MISSING_MESSAGE),
        ("plain words", "syslog", RejectReason.NO_MATCH),
        ("plain words", "no-such-format", RejectReason.UNKNOWN_FORMAT),
    ],
)
def test_rejections(text: str, fmt: str | None, reason: RejectReason) -> None:
    r = line(RecordPipeline(), text, fmt=fmt)
    assert isinstance(r, Rejected) and r.reason_code is reason and r.detail


def test_missing_tenant_is_rejected() -> None:
    r = RecordPipeline().process_line("hello")
    assert isinstance(r, Rejected) and r.reason_code is RejectReason.MISSING_TENANT


def test_malformed_envelopes_are_rejected() -> None:
    r = RecordPipeline().process(b'{"tenant": "t"}')
    assert isinstance(r, Rejected) and r.reason_code is RejectReason.MALFORMED_ENVELOPE


def test_structured_entry_envelope() -> None:
    env = _envelope(
        tenant="acme",
        source="http",
        service="Checkout ",
        entry={
            "timestamp": "2025-02-15T12:00:00Z",
            "level": "err",
            "message": "charge failed",
            "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736",
            "metadata": {"orderId": "o-1", "amount": 12.5},
        },
        attributes={"collector": "http-1"},
    )
    r = ok(RecordPipeline().process(env.encode()))
    assert r.tenant == "acme" and r.service == "checkout" and r.level is Level.ERROR
    assert r.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and r.source_format == "structured"
    assert r.attributes == {"orderId": "o-1", "amount": "12.5", "collector": "http-1"}


def test_envelope_service_and_host_win_and_are_normalized() -> None:
    env = _envelope(
        service=" Billing-API ",
        host="WEB-1.Example.com",
        line="Feb 15 12:00:00 otherhost otherapp[1]: hi",
    )
    r = ok(RecordPipeline().process(env))
    assert (r.service, r.host) == ("billing-api", "web-1.example.com")
    keep_case = RecordPipeline(PipelineConfig(lowercase_service=False, lowercase_host=False))
    r2 = ok(keep_case.process(env))
    assert (r2.service, r2.host) == ("Billing-API", "WEB-1.Example.com")


def test_enrichment_from_service_and_host_tables() -> None:
    config = PipelineConfig(
        default_metadata={"cluster": "main"},
        services={"Checkout": {"metadata": {"team": "payments", "environment": "prod"}}},
        hosts={"web-1": {"metadata": {"region": "eu-west-1", "cluster": "blue"}}},
    )
    r = ok(line(RecordPipeline(config), "2025-02-15 12:00:00 INFO hi", service="checkout", host="web-1"))
    assert (r.environment, r.region) == ("prod", "eu-west-1")
    assert r.attributes == {"team": "payments", "cluster": "blue"}
    # A value carried by the line itself wins over the static tables.
    r2 = ok(
        line(RecordPipeline(config), '{"msg": "x", "env": "staging", "team": "core"}', service="checkout")
    )
    assert r2.environment == "staging" and r2.attributes["team"] == "core"


@pytest.mark.parametrize(
    "text",
    [
        '{"msg": "x", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}',
        '{"msg": "x", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}',
        '{"msg": "x", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7"}',
        '{"msg": "x", "trace": {"id": "4bf92f3577b34da6a3ce929d0e0e4736"}, '
        '"span": {"id": "00f067aa0ba902b7"}}',
        '{"msg": "x", "dd": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}}',
        "2025-02-15 12:00:00 INFO x trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
        "2025-02-15 12:00:00 INFO x traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ],
)
def test_trace_ids(text: str) -> None:
    r = ok(line(RecordPipeline(), text))
    assert (r.trace_id, r.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_log_id_is_deterministic_and_keyed() -> None:
    text = "2025-02-15 12:00:00 INFO login from 10.0.0.1"
    a = ok(line(RecordPipeline(), text, service="s", host="h"))
    b = ok(line(RecordPipeline(), text, service="s", host="h", received_at=ARRIVAL + timedelta(hours=1)))
    assert a.log_id == b.log_id  # arrival time is not identity
    other_ip = ok(line(RecordPipeline(), text.replace("10.0.0.1", "10.0.0.2"), service="s", host="h"))
    assert other_ip.message == a.message and other_ip.log_id != a.log_id  # computed before masking
    keyed = ok(line(RecordPipeline(PipelineConfig(identity_key="k")), text, service="s", host="h"))
    assert keyed.log_id != a.log_id
    assert ok(line(RecordPipeline(), text, tenant="u", service="s", host="h")).log_id != a.log_id


def test_patterns_are_shared_and_stable_across_processes() -> None:
    p1, p2 = RecordPipeline(), RecordPipeline()
    a = ok(line(p1, "2025-02-15 12:00:00 INFO User 123 logged in from 10.0.0.1"))
    b = ok(line(p1, "2025-02-15 12:00:01 INFO User 456 logged in from 10.0.0.2"))
    c = ok(line(p2, "2025-02-15 12:00:02 INFO User 789 logged in from 10.9.9.9"))
    assert a.pattern_id == b.pattern_id == c.pattern_id
    assert a.pattern == "User <*> logged in from <*>"


def test_patterns_are_per_tenant() -> None:
    pipeline = RecordPipeline()
    line(pipeline, "2025-02-15 12:00:00 INFO cache warmed", tenant="a")
    assert pipeline.miner("b").clusters == []


def test_mining_state_round_trip() -> None:
    pipeline = RecordPipeline()
    for i in range(20):
        line(pipeline, f"2025-02-15 12:00:00 INFO job {i} done in {i * 3}ms")
        line(pipeline, f"2025-02-15 12:00:00 WARN disk {i} almost full on node-{i}")
    state = pipeline.mining_state()
    restored = RecordPipeline()
    restored.restore_mining_state(state)
    assert restored.mining_state() == state
    r1 = ok(line(pipeline, "2025-02-15 12:00:00 INFO job 99 done in 5ms"))
    r2 = ok(line(restored, "2025-02-15 12:00:00 INFO job 99 done in 5ms"))
    assert r1.pattern_id == r2.pattern_id
    assert Drain.from_bytes(Drain().to_bytes()).clusters == []


def test_per_service_patterns_teach_a_format_without_code(tmp_path: Path) -> None:
    config_file = tmp_path / "records.yaml"
    config_file.write_text(
        "patterns:\n"
        "  legacy:\n"
        "    regex: '(?P<timestamp>\\d{8}-\\d{6}) \\| (?P<level>\\w+) \\| "
        "(?P<user>\\w+) \\| (?P<message>.*)'\n"
        "    time_format: '%Y%m%d-%H%M%S'\n"
        "    level_map: {OOPS: ERROR}\n"
        "services:\n"
        "  Legacy-App: {patterns: [legacy], metadata: {team: core}}\n",
        encoding="utf-8",
    )
    pipeline = RecordPipeline(PipelineConfig.load(config_file))
    r = ok(line(pipeline, "20250215-115900 | OOPS | alice | something broke", service="legacy-app"))
    assert r.timestamp == datetime(2025, 2, 15, 11, 59, tzinfo=UTC)
    assert r.level is Level.ERROR and r.message == "something broke" and r.source_format == "legacy"
    assert r.attributes == {"user": "alice", "team": "core"}
    # Other services still get auto-detection; a line the pattern does not match falls through too.
    assert ok(line(pipeline, '{"msg": "json"}', service="legacy-app")).source_format == "json"


def test_json_config_and_unknown_references(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(orjson.dumps({"services": {"a": {"patterns": ["missing"]}}}).decode(), encoding="utf-8")
    with pytest.raises(ValueError, match="missing"):
        RecordPipeline(PipelineConfig.load(path))


def test_builtin_patterns_are_selectable_by_name() -> None:
    r = ok(
        line(
            RecordPipeline(),
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 "
            "for block blk_38865049064139660 terminating",
            fmt="hdfs",
            service="hdfs",
        )
    )
    assert r.attributes["component"] == "dfs.DataNode$PacketResponder" and r.timestamp.year == 2008


def test_process_entry_helper() -> None:
    r = ok(
        RecordPipeline().process_entry({"message": "hi", "level": "warning"}, tenant="t", received_at=ARRIVAL)
    )
    assert r.level is Level.WARN and "no_timestamp" in r.tags


def test_internal_errors_become_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = RecordPipeline()

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "_build", boom)
    r = line(pipeline, "hello")
    assert isinstance(r, Rejected) and r.reason_code is RejectReason.INTERNAL and "bug" in r.detail


def test_base64_line_envelope_round_trip() -> None:
    env = {
        "v": 1,
        "tenant": "t",
        "received_at": "2025-02-15T12:00:00Z",
        "line_encoding": "base64",
        "line": base64.b64encode(b"plain ascii").decode(),
    }
    r = ok(RecordPipeline().process(orjson.dumps(env)))
    assert r.message == "plain ascii" and r.tags == ["no_timestamp"]


@pytest.mark.parametrize(
    "bad",
    [
        {"patterns": {"x": {"regex": "(?P<message>"}}},
        {"patterns": {"x": {"regex": "(?P<ts>.*)"}}},
        {"masking": {"default": {"custom": [{"name": "A", "regex": "[", "marker": "[A]"}]}}},
        {"max_message_bytes": 10},
        {"no_such_knob": 1},
    ],
)
def test_invalid_configs_fail_at_load(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PipelineConfig.model_validate(bad)


def test_naive_arrival_time_is_utc() -> None:
    r = ok(RecordPipeline().process_line("hi", tenant="t", received_at=datetime(2025, 2, 15, 12)))
    assert r.ingested_at == datetime(2025, 2, 15, 12, tzinfo=UTC)


# -- poison shapes: what flattening makes of nested JSON --------------------------------------


def _wide_under_a_long_key(children: int) -> dict[str, object]:
    """Every child's attribute name repeats the 250-character parent key: 484 KB of JSON for
    45,000 children, 11 MB of attributes once flattened."""
    return {"message": "m", "k" * 250: {f"c{i}": 1 for i in range(children)}}


def _deep_with_long_keys() -> dict[str, object]:
    inner: dict[str, object] = {f"leaf{i}": "v" for i in range(50)}
    for depth in range(7):
        inner = {f"{depth}" + "p" * 120: inner, f"{depth}" + "q" * 120: dict(inner)}
    return {"message": "m", **inner}


def test_attribute_count_is_capped_and_the_record_says_how_many_were_dropped() -> None:
    pipeline = RecordPipeline(PipelineConfig(max_attributes=100))
    r = ok(pipeline.process(_entry(**{f"a{i}": "v" for i in range(5000)})))
    assert len(r.attributes) == 100 and "attributes_dropped" in r.tags
    assert r.attributes["attributes_dropped"] == "4901" and r.attributes["a0"] == "v"
    few = ok(pipeline.process(_entry(**{f"a{i}": "v" for i in range(99)})))
    assert len(few.attributes) == 99 and "attributes_dropped" not in few.tags


def test_a_record_too_large_once_flattened_is_rejected_with_a_reason() -> None:
    entry = _wide_under_a_long_key(45_000)
    assert len(orjson.dumps(entry)) < 512 * 1024  # what the API accepts as one entry
    # Even with every attribute kept, the record is refused rather than written too large.
    pipeline = RecordPipeline(PipelineConfig(max_attributes=100_000))
    r = pipeline.process(RawEnvelope(tenant="t", received_at=ARRIVAL, entry=entry))
    assert isinstance(r, Rejected) and r.reason_code is RejectReason.TOO_LARGE
    assert "max_record_bytes=1000000" in r.detail and "attributes" in r.detail


@pytest.mark.parametrize(
    "entry",
    [_wide_under_a_long_key(45_000), _wide_under_a_long_key(2000), _deep_with_long_keys()],
    ids=["wide-45k", "wide-2k", "deep"],
)
def test_every_record_built_from_nested_json_fits_the_record_limit(entry: dict[str, object]) -> None:
    r = RecordPipeline().process(RawEnvelope(tenant="t", received_at=ARRIVAL, entry=entry))
    if isinstance(r, Rejected):
        assert r.reason_code is RejectReason.TOO_LARGE
    else:
        assert len(orjson.dumps(r.to_dict())) <= 1_000_000


def test_long_keys_sharing_their_first_256_characters_stay_apart() -> None:
    r = ok(RecordPipeline().process(_entry(**{"k" * 300 + "1": "a", "k" * 300 + "2": "b"})))
    assert sorted(r.attributes.values()) == ["a", "b"]
    assert all(len(k) <= 256 for k in r.attributes)


def test_record_limit_must_hold_a_message() -> None:
    with pytest.raises(ValueError, match="max_record_bytes"):
        PipelineConfig(max_message_bytes=1024 * 1024)
