"""The collector's decoding of request bodies into raw_logs envelopes (no services)."""

from __future__ import annotations

import gzip

import orjson
import pytest
import zstandard

from api.collector.batch import PayloadError, decode_json_batch
from api.collector.body import BadBody, BodyTooLarge, UnsupportedEncoding, decompress
from api.collector.encoder import EnvelopeEncoder
from schemas.envelope import RawEnvelope

pytestmark = pytest.mark.unit

LIMIT = 1024


def decode(body: bytes, content_type: str = "application/json", service: str | None = None):
    encoder = EnvelopeEncoder("acme", source="http")
    return decode_json_batch(
        body, encoder, max_record_bytes=LIMIT, default_service=service, content_type=content_type
    )


def envelopes(outcome):
    return [RawEnvelope.decode(value) for _, value in outcome.messages]


def test_seed_batch_shape_becomes_entries_keyed_by_tenant_and_service():
    body = orjson.dumps(
        {
            "service": "payment-service",
            "logs": [
                {
                    "timestamp": "2025-02-15T12:00:00Z",
                    "level": "ERROR",
                    "message": "Payment failed",
                    "traceId": "abc",
                    "metadata": {"orderId": "A-1"},
                },
                {"message": "ok", "service": "other"},
            ],
        }
    )
    out = decode(body)
    assert (out.received, out.accepted, out.rejected) == (2, 2, 0)
    keys = [key for key, _ in out.messages]
    assert keys == [b"acme/payment-service", b"acme/other"]
    first, second = envelopes(out)
    assert first.tenant == "acme" and first.source == "http" and first.service == "payment-service"
    assert first.entry == {
        "timestamp": "2025-02-15T12:00:00Z",
        "level": "ERROR",
        "message": "Payment failed",
        "traceId": "abc",
        "metadata": {"orderId": "A-1"},
    }
    assert second.service == "other"


def test_a_tenant_written_by_the_client_is_ignored():
    out = decode(orjson.dumps({"service": "s", "logs": [{"message": "x", "tenant": "victim"}]}))
    (env,) = envelopes(out)
    assert env.tenant == "acme"
    assert env.entry is not None and "tenant" not in env.entry


def test_plain_array_and_strings_as_raw_lines():
    out = decode(
        orjson.dumps([{"message": "a"}, "<34>1 2025-02-15T12:00:00Z host app - - - hi"]), service="svc"
    )
    a, b = envelopes(out)
    assert a.entry == {"message": "a"} and a.service == "svc"
    assert b.line is not None and b.line.startswith("<34>1") and b.entry is None


def test_bad_entries_are_reported_by_index_and_the_rest_goes_on():
    big = {"message": "x" * (LIMIT + 10)}
    out = decode(
        orjson.dumps({"service": "s", "logs": [{"message": "ok"}, 42, big, {}, "", {"message": "ok2"}]})
    )
    assert (out.received, out.accepted, out.rejected) == (6, 2, 4)
    assert [(e["index"], e["reason"]) for e in out.errors] == [
        (1, "NOT_AN_OBJECT"),
        (2, "TOO_LARGE"),
        (3, "EMPTY"),
        (4, "EMPTY"),
    ]
    response = out.response("b1")
    assert response["status"] == "accepted" and response["batch_id"] == "b1"
    assert set(response) >= {"status", "received", "accepted", "rejected", "errors", "batch_id"}


def test_ndjson_reports_line_numbers_of_bad_lines():
    body = b'{"message": "a"}\nnot json\n\n{"message": "b"}\n' + b'{"message": "' + b"y" * LIMIT + b'"}\n'
    out = decode(body, "application/x-ndjson", service="s")
    assert (out.received, out.accepted) == (4, 2)
    assert [(e["index"], e["reason"]) for e in out.errors] == [(1, "MALFORMED_JSON"), (4, "TOO_LARGE")]


def test_ndjson_sent_as_application_json_is_accepted():
    out = decode(b'{"message": "a"}\n{"message": "b"}\n', service="s")
    assert out.accepted == 2


def test_text_plain_lines_keep_invalid_utf8_as_base64():
    out = decode(b"line one\r\n\xff\xfe bad bytes\n", "text/plain", service="s")
    first, second = envelopes(out)
    assert first.line == "line one"
    assert second.line_encoding == "base64" and second.line_bytes() == b"\xff\xfe bad bytes"


@pytest.mark.parametrize("body", [b"{not json", b"42", b'{"logs": "nope"}'])
def test_unreadable_bodies_are_refused_whole(body):
    with pytest.raises(PayloadError):
        decode(body)


def test_gzip_zstd_and_deflate_bodies():
    raw = b'{"logs": []}' * 100
    assert decompress(gzip.compress(raw), "gzip", 10_000) == raw
    assert decompress(gzip.compress(raw[:600]) + gzip.compress(raw[600:]), "gzip", 10_000) == raw
    assert decompress(zstandard.ZstdCompressor().compress(raw), "zstd", 10_000) == raw
    import zlib

    assert decompress(zlib.compress(raw), "deflate", 10_000) == raw
    assert decompress(raw, None, 10_000) == raw


def test_decompression_bombs_stop_at_the_limit():
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(BodyTooLarge):
        decompress(bomb, "gzip", 1_000_000)
    with pytest.raises(BodyTooLarge):
        decompress(zstandard.ZstdCompressor().compress(b"\0" * 50_000_000), "zstd", 1_000_000)


def test_corrupt_or_unknown_encodings():
    with pytest.raises(BadBody):
        decompress(b"not gzip at all", "gzip", 1000)
    with pytest.raises(BadBody):
        decompress(gzip.compress(b"x" * 1000)[:20], "gzip", 10_000)
    with pytest.raises(UnsupportedEncoding):
        decompress(b"x", "br", 1000)


def test_text_plain_joins_a_stack_trace_into_one_entry():
    body = (
        b"2025-02-15 12:00:00 ERROR failed\r\n"
        b"\tat com.acme.Api.handle(Api.java:42)\n"
        b"Caused by: java.io.IOException: closed\n"
        b"\n"
        b"2025-02-15 12:00:01 INFO next\n"
    )
    out = decode(body, "text/plain", service="s")
    first, second = envelopes(out)
    assert first.line == (
        "2025-02-15 12:00:00 ERROR failed\n\tat com.acme.Api.handle(Api.java:42)\n"
        "Caused by: java.io.IOException: closed"
    )
    assert second.line == "2025-02-15 12:00:01 INFO next"
    assert (out.received, out.accepted, out.indexes) == (2, 2, [0, 4])


def test_text_plain_splits_an_endless_continuation_and_says_so():
    body = b"start\n" + b"\n".join(b"  frame %d " % i + b"x" * 200 for i in range(400))
    out = decode(body, "text/plain", service="s")
    parts = envelopes(out)
    assert len(parts) > 1 and all(p.attributes.get("multiline_split") == "true" for p in parts)
    assert sum(p.line.count("\n") + 1 for p in parts if p.line) == 401


def test_ndjson_entries_that_continue_a_stack_trace_join_it():
    # Docker's json-file driver writes one entry per line of output, stack traces included.
    lines = [
        "2025-02-15 12:00:00 ERROR request failed\n",
        "java.lang.IllegalStateException: boom\n",
        "\tat com.acme.Api.handle(Api.java:42)\n",
        "Caused by: java.io.IOException: closed\n",
        "\t... 12 more\n",
        "2025-02-15 12:00:01 INFO next\n",
    ]
    body = b"".join(
        orjson.dumps({"log": line, "stream": "stderr", "time": "2025-02-15T12:00:00Z"}) + b"\n"
        for line in lines
    )
    body += b"not json\n" + orjson.dumps({"log": "\tat after.the(Bad.java:1)\n"}) + b"\n" + b"[1]\n"
    out = decode(body, "application/x-ndjson", service="api")
    entries = [e.entry for e in envelopes(out)]
    assert [e["log"] for e in entries] == [
        "2025-02-15 12:00:00 ERROR request failed\n",  # an entry left alone is left as it was
        "java.lang.IllegalStateException: boom\n\tat com.acme.Api.handle(Api.java:42)\n"
        "Caused by: java.io.IOException: closed\n\t... 12 more",
        "2025-02-15 12:00:01 INFO next\n",
        "\tat after.the(Bad.java:1)\n",  # nothing joins across a line that was refused
    ]
    assert all(e["stream"] == "stderr" for e in entries[:3])
    assert out.indexes == [0, 1, 5, 7]
    assert (out.received, out.accepted) == (6, 4)
    assert [(e["index"], e["reason"]) for e in out.errors] == [(6, "MALFORMED_JSON"), (8, "NOT_AN_OBJECT")]
