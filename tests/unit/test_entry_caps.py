"""The per-request entry cap of every collector: an HTTP batch, _bulk or OTLP request over it is
refused whole (413 with the cap), an upload's chunk never holds more, and a syslog connection's
burst is split at it so other senders are served, with nothing dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from api.collector.batch import TooManyEntries, check_json_work, decode_json_batch
from api.collector.bulk import decode_bulk
from api.collector.encoder import EnvelopeEncoder
from api.collector.syslog import Listener, SyslogCollector, _TcpProtocol
from api.collector.upload import LineChunks
from api.routers.otlp import decode_otlp
from infra.settings import Settings
from tests.unit.test_collector_syslog import _Kafka


def encoder() -> EnvelopeEncoder:
    return EnvelopeEncoder("acme", source="http", request_id="r")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            orjson.dumps({"service": "s", "logs": [{"message": f"m{i}"} for i in range(4)]}),
            "application/json",
        ),
        (orjson.dumps([{"message": f"m{i}"} for i in range(4)]), "application/json"),
        (b"\n".join(orjson.dumps({"message": f"m{i}"}) for i in range(4)), "application/x-ndjson"),
        (b"a\nb\nc\nd", "text/plain"),
    ],
)
def test_a_batch_over_the_cap_is_refused_whole_naming_the_cap(body: bytes, content_type: str) -> None:
    with pytest.raises(TooManyEntries, match="at most 3 entries"):
        decode_json_batch(
            body,
            encoder(),
            max_record_bytes=10_000,
            default_service="s",
            content_type=content_type,
            max_entries=3,
        )
    out = decode_json_batch(
        body,
        encoder(),
        max_record_bytes=10_000,
        default_service="s",
        content_type=content_type,
        max_entries=4,
    )
    assert out.accepted == 4


def test_bulk_and_otlp_over_the_cap_are_refused() -> None:
    bulk = b"".join(b'{"index": {}}\n' + orjson.dumps({"message": f"m{i}"}) + b"\n" for i in range(4))
    with pytest.raises(TooManyEntries, match="at most 3 entries"):
        decode_bulk(bulk, encoder(), default_index="app", max_record_bytes=10_000, max_entries=3)
    assert (
        decode_bulk(bulk, encoder(), default_index="app", max_record_bytes=10_000, max_entries=4)[0].accepted
        == 4
    )
    records = [{"body": {"stringValue": f"m{i}"}} for i in range(4)]
    otlp = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    with pytest.raises(TooManyEntries, match="at most 3 entries"):
        decode_otlp(otlp, "acme", 10_000, max_entries=3)
    assert decode_otlp(otlp, "acme", 10_000, max_entries=4).accepted == 4


def test_an_uploads_chunk_holds_at_most_the_cap() -> None:
    import io

    chunks = LineChunks(io.BytesIO(b"".join(b"line %d\n" % i for i in range(25))), 1000, max_lines=10)
    sizes = []
    while lines := chunks.next_chunk():
        sizes.append(len(lines))
    assert sizes == [10, 10, 5]


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.0.0.9", 5140) if name == "peername" else None

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


def test_a_syslog_burst_over_the_cap_is_sent_in_parts_in_order_and_none_is_dropped() -> None:
    kafka = _Kafka(room=10_000)
    collector = SyslogCollector(Settings(ingest_max_entries=10, multiline_flush_s=0), kafka, None)  # type: ignore[arg-type]
    protocol = _TcpProtocol(collector, Listener("tcp", "127.0.0.1", 5140, "acme"))
    transport = _Transport()

    async def scenario() -> list[int]:
        protocol.connection_made(transport)
        burst = b"".join(b"<14>Feb 15 12:00:00 web-1 app: line %d\n" % i for i in range(25))
        seen = []
        protocol.data_received(burst)
        seen.append(collector.stats.received["acme"])
        protocol.data_received(b"<14>Feb 15 12:00:00 web-1 app: line 25\n")  # arrives mid-split
        seen.append(collector.stats.received["acme"])
        for _ in range(5):
            await asyncio.sleep(0)
            seen.append(collector.stats.received["acme"])
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == 10 and seen[1] == 10, "the first part is the cap's worth"
    assert seen[-1] == 26, "every message of the burst is sent"
    assert transport.calls == ["pause", "resume"]
    collector.poll(10**12)
    lines = [e.line or "" for e in kafka.sent]
    assert [int(line.rsplit(" ", 1)[1]) for line in lines] == list(range(26)), "in the order sent"
    assert collector.stats.split_bursts == 1


def _deep(depth: int) -> dict[str, Any]:
    nested: Any = []
    for _ in range(depth - 1):
        nested = [nested]
    return {"message": "deep", "a": nested}


def test_an_entry_nested_too_deep_to_encode_is_refused_alone_not_the_request() -> None:
    """orjson reads 1024 levels but writes 254: such an entry was a 500 for the whole request."""
    body = orjson.dumps({"logs": [{"message": "fine"}]})[:-2] + b"," + _deep_json(1000) + b"]}"
    out = decode_json_batch(body, encoder(), max_record_bytes=10**6, default_service="s")
    assert out.accepted == 1
    assert [(e["index"], e["reason"]) for e in out.errors] == [(1, "TOO_DEEP")]
    assert "nests deeper than 254 levels" in out.errors[0]["detail"]
    bulk_body = b'{"index": {}}\n' + _deep_json(1000) + b'\n{"index": {}}\n{"message": "ok"}\n'
    outcome, items = decode_bulk(bulk_body, encoder(), default_index="app", max_record_bytes=10**6)
    assert outcome.accepted == 1 and items[0]["index"]["error"]["type"] == "TOO_DEEP"
    otlp = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [{"body": _otlp_deep(300)}, {"body": {"stringValue": "ok"}}]}]}
        ]
    }
    assert decode_otlp(otlp, "acme", 10**6).accepted == 1


def _deep_json(depth: int) -> bytes:
    return b'{"message": "deep", "a": ' + b"[" * depth + b"]" * depth + b"}"


def _otlp_deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"arrayValue": {"values": [value]}}
    return value


def test_a_body_of_far_more_objects_than_the_cap_allows_is_refused_before_it_is_parsed() -> None:
    bomb = b"[" + b",".join(b'{"m":1}' for _ in range(13)) + b"]"  # 13 objects > 4 per entry x 3
    with pytest.raises(TooManyEntries, match="this body holds 13 JSON objects"):
        decode_json_batch(bomb, encoder(), max_record_bytes=10_000, default_service="s", max_entries=3)
    actions = b'{"index": {}}\n' * 7  # 14 objects
    with pytest.raises(TooManyEntries, match="14 JSON objects"):
        decode_bulk(actions, encoder(), default_index="app", max_record_bytes=10_000, max_entries=3)
    otlp = b'{"resourceLogs": [' + b",".join(b"{}" for _ in range(12)) + b"]}"  # 13 objects
    with pytest.raises(TooManyEntries, match="13 JSON objects"):
        check_json_work(otlp, 3)
    # Entries with a few objects each are what the cap is for: 3 entries of 4 objects pass.
    rich = orjson.dumps([{"message": "m", "metadata": {"a": {"b": {"c": 1}}}} for _ in range(3)])
    out = decode_json_batch(rich, encoder(), max_record_bytes=10_000, default_service="s", max_entries=3)
    assert out.accepted == 3
