"""Syslog TCP framing (RFC 6587), listener configuration, and how the receiver joins a stack trace
sent line by line (no services: Kafka is a stand-in here)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.collector.syslog import FrameDecoder, SyslogCollector, parse_listener
from infra.settings import Settings
from schemas.envelope import RawEnvelope

pytestmark = pytest.mark.unit

M5424 = b"<34>1 2025-02-15T12:00:00.003Z web-1 sshd 42 ID47 - Failed password for root"
M3164 = b"<13>Feb 15 12:00:00 web-1 app[7]: hello there"


def octet(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


def test_newline_and_octet_counting_frames_mixed_in_one_stream():
    decoder = FrameDecoder(1024)
    stream = M3164 + b"\n" + octet(M5424) + octet(b"<14>1 - - - - - - with\nnewline") + M3164 + b"\r\n"
    assert decoder.feed(stream) == [M3164, M5424, b"<14>1 - - - - - - with\nnewline", M3164]


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_split_of_the_stream_gives_the_same_messages(cuts):
    messages = [M5424, M3164, b"<15>1 - h a - - - " + b"x" * 100]
    stream = b"".join(octet(m) for m in messages) + b"".join(m + b"\n" for m in messages)
    decoder = FrameDecoder(1024)
    out: list[bytes] = []
    position = 0
    for cut in cuts:
        out += decoder.feed(stream[position : position + cut])
        position += cut
    out += decoder.feed(stream[position:])
    assert out == messages + messages


def test_oversized_frames_and_lines_are_skipped_and_counted():
    decoder = FrameDecoder(50)
    big = b"<14>1 " + b"y" * 100
    out = decoder.feed(octet(big)[:30])
    out += decoder.feed(octet(big)[30:] + octet(M3164[:40]) + b"<1>" + b"z" * 200)
    out += decoder.feed(b"zzz\n<13>ok\n")
    assert out == [M3164[:40], b"<13>ok"]
    assert decoder.oversized == 2


def test_nul_terminated_and_a_last_line_without_newline():
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"<13>a\0<13>b") == [b"<13>a"]
    assert decoder.flush() == [b"<13>b"]


def test_listener_addresses_and_tenants():
    assert parse_listener("127.0.0.1:6514", "tcp", "dflt").tenant == "dflt"
    listener = parse_listener("[::1]:514=acme", "udp", "dflt")
    assert (listener.host, listener.port, listener.tenant, listener.transport) == ("::1", 514, "acme", "udp")
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listener("nohost", "tcp", "x")


class _Kafka:
    """A producer stand-in: takes messages while ``room`` lasts (pure logic, no broker)."""

    def __init__(self, room: int = 1_000) -> None:
        self.room = room
        self.sent: list[RawEnvelope] = []

    def produce(self, topic: str, key: bytes, value: bytes, callback: object) -> bool:
        if self.room <= 0:
            return False
        self.room -= 1
        self.sent.append(RawEnvelope.decode(value))
        return True

    def queued(self) -> int:
        return 0


def _collector(kafka: _Kafka) -> SyslogCollector:
    return SyslogCollector(Settings(), kafka, None)  # type: ignore[arg-type]


def test_a_stack_trace_sent_line_by_line_becomes_one_record():
    kafka = _Kafka()
    collector = _collector(kafka)
    head = "<11>Feb 15 12:00:00 web-1 billing[42]: "
    lines = [
        "request failed: java.lang.IllegalStateException: boom",
        "#011at com.acme.Api.handle(Api.java:42)",  # rsyslog's escape for the tab
        "\tat com.acme.Server.run(Server.java:7)",
        "Caused by: java.io.IOException: closed",
    ]
    for line in lines:
        assert collector.handle((head + line).encode(), "acme", "tcp", "10.0.0.5")
    # another process of the same program does not join, and does not end the event
    assert collector.handle(
        b"<14>Feb 15 12:00:01 web-1 billing[43]:   indented but its own", "acme", "tcp", "p"
    )
    assert kafka.sent == []  # the trace may still continue
    assert collector.handle((head + "next request ok").encode(), "acme", "tcp", "10.0.0.5")
    assert [e.line for e in kafka.sent] == [
        head + lines[0] + "\n\tat com.acme.Api.handle(Api.java:42)\n\tat com.acme.Server.run(Server.java:7)\n"
        "Caused by: java.io.IOException: closed"
    ]
    collector.poll(time.monotonic() + 60)  # the quiet sources' last events go on
    assert sorted(e.line or "" for e in kafka.sent[1:]) == sorted(
        ["<14>Feb 15 12:00:01 web-1 billing[43]:   indented but its own", head + "next request ok"]
    )
    assert collector.stats.received["acme"] == 6 and not collector._joins


def test_a_full_queue_refuses_new_messages_and_loses_none_it_took():
    kafka = _Kafka(room=1)
    collector = _collector(kafka)
    messages = [f"<14>Feb 15 12:00:0{i} web-1 app: line {i}".encode() for i in range(4)]
    assert collector.handle(messages[0], "acme", "udp", "p")  # held: a continuation may follow
    assert collector.handle(messages[1], "acme", "udp", "p")  # line 0 goes to Kafka
    assert collector.handle(messages[2], "acme", "udp", "p")  # line 1 waits: Kafka is full
    assert not collector.handle(messages[3], "acme", "udp", "p")  # refused until there is room
    kafka.room = 10
    collector.flush()
    assert sorted(e.line for e in kafka.sent) == sorted(m.decode() for m in messages[:3])
