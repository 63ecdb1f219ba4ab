"""Property tests: no input makes the pipeline raise; every input yields a record or a rejection."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.records.multiline import MultilineJoiner
from core.records.pipeline import RecordPipeline
from schemas import Record, Rejected
from schemas.rejection import RejectReason

pytestmark = pytest.mark.unit

PIPELINE = RecordPipeline()
ARRIVAL = datetime(2025, 2, 15, 12, tzinfo=UTC)
FORMATS = [None, "json", "logfmt", "syslog", "apache", "nginx", "plain", "raw", "hdfs", "linux"]

# Fragments of real formats, so the fuzzer reaches deep into each parser, not just the fallback.
FRAGMENTS = st.sampled_from(
    [
        "{",
        "}",
        '"msg":',
        '"ts":',
        "<34>1 ",
        "<13>",
        "Feb 15 12:00:00 ",
        "2025-02-15 12:00:00.123 ",
        " ERROR ",
        "[payment]",
        "level=info ",
        'msg="',
        "=",
        "\\",
        '"',
        "[",
        "]",
        " - - [15/Feb/2025:12:00:00 +0000] ",
        '"GET / HTTP/1.1" 200 12',
        "2025/02/15 12:00:00 [error] 1#1: ",
        "bob@example.com",
        "4111 1111 1111 1111",
        "10.0.0.1",
        "::1",
        "password=x",
        "Bearer abc",
        "\x00",
        "\ufffd",
        "\u202e",
        "1739620800123",
        "\n",
        "\r",
        "20250215-12:00:00:123|",
        "[02.15 12:00:00] ",
        "25/02/15 12:00:00 ",
        "02/15/2025 01:00:00 PM ",
        "- 1117838570 2005.06.03 ",
        "2005-06-03-15.42.50.675872 ",
        "I0215 12:00:00.123456 ",
        " | ",
        "proc[12]: ",
        "a.b.Component: ",
        "Main.java:42] ",
        " RAS KERNEL INFO ",
        "\tat a.B(C.java:1)",
        "Caused by: ",
        "Traceback (most recent call last):",
        "goroutine 1 [running]:",
    ]
)


def check(result: object) -> None:
    assert isinstance(result, Record | Rejected)
    if isinstance(result, Rejected):
        assert result.reason_code is not RejectReason.INTERNAL, result.detail
    if isinstance(result, Record):
        result.to_json()  # serializable: no lone surrogates, no odd types
        assert result.message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=2048), fmt=st.sampled_from(FORMATS))
def test_arbitrary_bytes(raw: bytes, fmt: str | None) -> None:
    check(PIPELINE.process_line(raw, tenant="t", received_at=ARRIVAL, fmt=fmt))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.one_of(FRAGMENTS, st.text(max_size=20)), max_size=12), fmt=st.sampled_from(FORMATS))
def test_format_shaped_text(parts: list[str], fmt: str | None) -> None:
    check(PIPELINE.process_line("".join(parts), tenant="t", received_at=ARRIVAL, fmt=fmt))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=1024))
def test_arbitrary_envelope_bytes(raw: bytes) -> None:
    check(PIPELINE.process(raw))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entry=st.dictionaries(
        st.sampled_from(
            [
                "msg",
                "message",
                "ts",
                "time",
                "level",
                "severity",
                "traceparent",
                "trace_id",
                "error",
                "context",
                "service",
                "host",
                "x",
            ]
        )
        | st.text(max_size=8),
        JSON_VALUES,
        max_size=8,
    )
)
def test_arbitrary_structured_entries(entry: dict[str, object]) -> None:
    envelope = {"v": 1, "tenant": "t", "received_at": "2025-02-15T12:00:00Z", "entry": entry}
    check(PIPELINE.process(orjson.dumps(envelope)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.one_of(FRAGMENTS, st.text(max_size=30)), max_size=40),
    max_lines=st.integers(1, 8),
    max_bytes=st.integers(1, 200),
)
def test_multiline_joining_keeps_every_line_once(lines: list[str], max_lines: int, max_bytes: int) -> None:
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    joiner = MultilineJoiner(max_lines=max_lines, max_bytes=max_bytes)
    events = [e for line in lines for e in joiner.push(line)] + joiner.flush()
    assert [part for e in events for part in e.text.split("\n")] == lines
    assert all(e.lines <= max_lines for e in events)
