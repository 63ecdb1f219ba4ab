"""Syslog TCP framing (RFC 6587) and listener configuration (no services)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.collector.syslog import FrameDecoder, parse_listener

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
