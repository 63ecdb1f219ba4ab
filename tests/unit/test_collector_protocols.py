"""Elasticsearch _bulk and OTLP decoding, auth headers, keys and rate limits (no services)."""

from __future__ import annotations

import base64

import orjson
import pytest
from starlette.requests import Request
from starlette.websockets import WebSocket

from api.collector.bulk import BulkFormatError, decode_bulk, service_of
from api.collector.encoder import EnvelopeEncoder
from api.collector.ratelimit import RateLimiter
from api.deps import credential
from api.routers.otlp import decode_otlp, protobuf_to_json, severity_level
from connectors.postgres.tenants import hash_secret, new_key, split_key
from schemas.envelope import RawEnvelope

pytestmark = pytest.mark.unit


def ndjson(*objs) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


def bulk(body: bytes, index: str | None = None, limit: int = 4096):
    return decode_bulk(
        body, EnvelopeEncoder("acme", source="bulk"), default_index=index, max_record_bytes=limit
    )


def test_bulk_index_and_create_become_entries_with_per_item_slots():
    body = (
        ndjson(
            {"index": {"_index": "web-2025.02.15", "_id": "1"}},
            {"message": "GET /", "host": {"name": "web-1"}},
            {"create": {}},
            {"message": "x", "service": {"name": "checkout"}},
            {"delete": {"_index": "a", "_id": "2"}},
            {"update": {"_index": "a", "_id": "3"}},
            {"doc": {"a": 1}},
            {"create": {"_index": "a"}},
        )
        + b"not json\n"
    )
    out, items = bulk(body, index="app")
    assert out.received == 5 and out.accepted == 2
    assert [next(iter(i)) for i in items] == ["index", "create", "delete", "update", "create"]
    assert items[2]["delete"]["status"] == 400 and items[3]["update"]["status"] == 400
    assert items[4]["create"]["error"]["type"] == "MALFORMED_JSON"
    first, second = (RawEnvelope.decode(v) for _, v in out.messages)
    assert first.service == "web" and first.host == "web-1" and first.attributes["index"] == "web-2025.02.15"
    assert second.service == "checkout" and second.attributes["index"] == "app"
    assert out.indexes == [0, 1]


def test_bulk_with_a_broken_action_line_is_refused_whole():
    with pytest.raises(BulkFormatError):
        bulk(b'{"index": {}}\n{"message": "a"}\nnope\n')
    with pytest.raises(BulkFormatError):
        bulk(b'{"index": {}}\n')


def test_bulk_oversized_document_fails_alone():
    out, items = bulk(
        ndjson(
            {"index": {"_index": "a"}}, {"message": "x" * 5000}, {"index": {"_index": "a"}}, {"message": "ok"}
        )
    )
    assert out.accepted == 1 and items[0]["index"]["status"] == 400
    assert items[0]["index"]["error"]["type"] == "TOO_LARGE"


def test_service_of_falls_back_to_common_agent_fields():
    assert service_of({"PROGRAM": "sshd"}, "syslog-2025.01.01") == "sshd"
    assert service_of({"kubernetes": {"container": {"name": "api"}}}, "x") == "api"
    assert service_of({}, "logs-2025-01-01") == "logs"


OTLP = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "cart"}},
                    {"key": "host.name", "value": {"stringValue": "node-7"}},
                    {"key": "deployment.environment", "value": {"stringValue": "prod"}},
                ]
            },
            "scopeLogs": [
                {
                    "scope": {"name": "app.logger"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1739620800123456789",
                            "severityNumber": 17,
                            "body": {"stringValue": "boom"},
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "attributes": [{"key": "http.status", "value": {"intValue": "500"}}],
                        },
                        {
                            "severityText": "Warning",
                            "body": {"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": True}}]}},
                        },
                        {"body": {"stringValue": ""}},
                    ],
                }
            ],
        }
    ]
}


def test_otlp_maps_resource_severity_and_trace_context():
    out = decode_otlp(OTLP, "acme", 4096)
    assert (out.received, out.accepted, out.rejected) == (3, 2, 1)
    assert out.messages[0][0] == b"acme/cart"
    first, second = (RawEnvelope.decode(v) for _, v in out.messages)
    assert first.service == "cart" and first.host == "node-7" and first.source == "otlp"
    assert first.attributes == {"deployment.environment": "prod"}
    assert first.entry == {
        "message": "boom",
        "timestamp": "2025-02-15T12:00:00.123456Z",
        "level": "ERROR",
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "metadata": {"http.status": 500, "otel.scope.name": "app.logger"},
        "service": "cart",
        "host": "node-7",
    }
    assert second.entry is not None and second.entry["level"] == "Warning"
    assert orjson.loads(second.entry["message"]) == {"a": True}


def test_otlp_protobuf_gives_the_same_entries_as_json():
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    doc = orjson.loads(orjson.dumps(OTLP))
    for record in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        for field in ("traceId", "spanId"):
            if field in record:
                record[field] = base64.b64encode(bytes.fromhex(record[field])).decode()
    message = ParseDict(doc, logs_service_pb2.ExportLogsServiceRequest())
    from_proto = decode_otlp(protobuf_to_json(message.SerializeToString()), "acme", 4096)
    from_json = decode_otlp(OTLP, "acme", 4096)
    strip = lambda out: [RawEnvelope.decode(v).entry for _, v in out.messages]  # noqa: E731
    assert strip(from_proto) == strip(from_json)


@pytest.mark.parametrize(
    ("number", "level"),
    [(1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"), (21, "FATAL"), (0, None)],
)
def test_severity_numbers(number, level):
    assert severity_level(number, None) == level


def _connection(headers, kind="http", query=""):
    """A request (or WebSocket handshake) as the server hands it to the key check."""
    scope = {
        "type": kind,
        "path": "/v1/logs/tail",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    if kind == "http":
        return Request(scope)

    async def nothing():  # never called: the key check only reads the handshake
        raise AssertionError

    return WebSocket(scope, nothing, nothing)


def test_keys_arrive_in_every_header_clients_use():
    _, _, key = new_key()
    basic = base64.b64encode(f"elastic:{key}".encode()).decode()
    apikey = base64.b64encode(f"someid:{key}".encode()).decode()
    for headers in (
        {"Authorization": f"Bearer {key}"},
        {"X-API-Key": key},
        {"Authorization": f"Basic {basic}"},
        {"Authorization": f"ApiKey {apikey}"},
        {"Authorization": f"ApiKey {key}"},
    ):
        assert credential(_connection(headers)) == key, headers
    assert credential(_connection({})) is None
    assert credential(_connection({"Authorization": "Digest abc"})) is None


def test_a_websocket_handshake_may_carry_its_key_in_the_query_string():
    _, _, key = new_key()
    _, _, other = new_key()
    assert credential(_connection({}, "websocket", f"q=x&api_key={key}")) == key
    # a header wins over the query string, as it does on any request
    assert credential(_connection({"X-API-Key": other}, "websocket", f"api_key={key}")) == other
    assert credential(_connection({}, "websocket", "api_key=")) is None
    # a plain HTTP request never reads a key from its URL (access logs keep URLs)
    assert credential(_connection({}, "http", f"api_key={key}")) is None


def test_key_format_and_hash():
    key_id, secret, key = new_key()
    assert split_key(key) == (key_id, secret)
    assert split_key("strata_nothex_" + secret) is None
    assert split_key("random") is None
    assert hash_secret(secret) != hash_secret(secret + "x") and len(hash_secret(secret)) == 32


def test_rate_limiter_lets_a_burst_through_then_says_when_to_retry():
    now = [0.0]
    limiter = RateLimiter(burst_s=1.0, clock=lambda: now[0])
    assert limiter.take("a", 100, 100) == 0  # the whole burst
    assert limiter.take("a", 100, 50) == 0  # goes into debt: a batch is never split
    wait = limiter.take("a", 100, 1)
    assert wait >= 1
    assert limiter.take("b", 100, 10) == 0  # tenants are independent
    now[0] += wait
    assert limiter.take("a", 100, 1) == 0
    assert limiter.take("a", 0, 10**9) == 0  # 0 = unlimited


def test_bulk_action_lines_with_extra_keys_are_read_as_elasticsearch_reads_them():
    # winston-elasticsearch's buffered requests; Elasticsearch ignores the unknown keys.
    body = (
        b'{"index":{"_index":"winston","pipeline":null},"attempts":0}\n{"message":"a","severity":"info"}\n'
        b'{"create":{"_index":null,"_id":null}}\n{"message":"b"}\n'
        b'{"index":null}\n{"message":"c"}\n'
    )
    out, items = bulk(body, index="fallback")
    assert out.accepted == 3 and out.rejected == 0
    assert [next(iter(i)) for i in items] == ["index", "create", "index"]
    services = [RawEnvelope.decode(v).service for _, v in out.messages]
    assert services == ["winston", "fallback", "fallback"]


@pytest.mark.parametrize(
    "line, message",
    [
        (b'{"attempts":0}', r"unknown action \[attempts\] at line \[1\]"),
        (b'{"index":"winston"}', r"malformed action/metadata line \[1\]: \[index\] must be an object"),
        (b"[1]", r"malformed action/metadata line \[1\]: expected an object"),
    ],
)
def test_bulk_action_lines_elasticsearch_refuses_are_refused_with_the_line(line, message):
    with pytest.raises(BulkFormatError, match=message):
        bulk(line + b'\n{"message":"a"}\n')


@pytest.mark.parametrize(
    "index, service",
    [
        ("filebeat-8.1.3", "filebeat"),
        ("filebeat-8.1.3-2026.11.28", "filebeat"),
        ("filebeat-7.17.0-000001", "filebeat"),
        ("logs-2026.11.28", "logs"),
        ("logstash-2026.11.28", "logstash"),
        ("app-logs-2026-11-28", "app-logs"),
        ("fluentbit_20261128", "fluentbit"),
        ("web-2026.11", "web"),
        (".ds-logs-app-default-2026.11.28-000001", "app"),
        ("logs-nginx.access-production", "nginx.access"),
        ("logs-generic-default", "logs"),
        ("Checkout", "checkout"),
        ("payments", "payments"),
    ],
)
def test_an_agents_index_name_maps_to_a_stable_service(index, service):
    assert service_of({"message": "x"}, index) == service


def test_the_documents_own_service_comes_before_its_dataset_and_the_index():
    index = "filebeat-8.1.3-2026.11.28"
    assert service_of({"service": {"name": "checkout"}, "event": {"dataset": "nginx.access"}}, index) == (
        "checkout"
    )
    assert service_of({"service.name": "checkout", "data_stream.dataset": "x"}, index) == "checkout"
    assert service_of({"data_stream": {"dataset": "nginx.error"}, "app": "web"}, index) == "nginx.error"
    assert service_of({"event": {"dataset": "system.auth"}}, index) == "system.auth"
    assert service_of({"data_stream": {"dataset": "generic"}, "app": "web"}, index) == "web"
    assert service_of({"service": {"name": " "}}, index) == "filebeat"


def test_asking_the_limiter_before_the_body_spends_nothing():
    now = [0.0]
    limiter = RateLimiter(burst_s=1.0, clock=lambda: now[0])
    assert limiter.wait_s("a", 100) == 0  # a tenant never seen may send
    assert limiter.take("a", 100, 150) == 0  # into debt by 50
    assert limiter.wait_s("a", 100) >= 1 and limiter.wait_s("a", 100) >= 1  # asking twice costs nothing
    now[0] += 0.6  # 60 records' worth later: out of debt
    assert limiter.wait_s("a", 100) == 0
    assert limiter.take("a", 100, 1) == 0
    assert limiter.wait_s("a", 0) == 0  # 0 = unlimited
