"""The entry cap through the real API: every HTTP collector answers 413 naming the cap, and sends
nothing of the refused request to Kafka; a request at the cap goes through whole."""

from __future__ import annotations

import orjson
import pytest

from tests.integration.collector_support import (
    ApiServer,
    kafka_topic,
    read_topic,
    require_stack,
    tenant_with_key,
)

pytestmark = pytest.mark.integration

CAP = 5


@pytest.fixture(scope="module")
def world():
    settings = require_stack()
    with kafka_topic(settings) as topic:
        settings = settings.model_copy(
            update={"raw_topic": topic, "auth_cache_s": 0.0, "ingest_max_entries": CAP}
        )
        with ApiServer(settings) as server, tenant_with_key(settings) as (_, key):
            yield settings, server, key


def post(world, path: str, body: bytes, content_type: str):  # type: ignore[no-untyped-def]
    import httpx

    _, server, key = world
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return http.post(path, content=body, headers=headers)


def ingest(n: int) -> bytes:
    return orjson.dumps({"service": "s", "logs": [{"message": f"m{i}"} for i in range(n)]})


def bulk(n: int) -> bytes:
    return b"".join(
        b'{"index": {"_index": "app"}}\n' + orjson.dumps({"message": f"m{i}"}) + b"\n" for i in range(n)
    )


def otlp(n: int) -> bytes:
    records = [{"body": {"stringValue": f"m{i}"}} for i in range(n)]
    return orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]})


def test_every_http_collector_refuses_a_request_over_the_cap_with_413_and_sends_none_of_it(world) -> None:  # type: ignore[no-untyped-def]
    settings = world[0]
    cases = [
        ("/v1/logs/ingest", ingest, "application/json"),
        ("/v1/logs/ingest", lambda n: b"\n".join(b"line %d" % i for i in range(n)), "text/plain"),
        ("/_bulk", bulk, "application/x-ndjson"),
        ("/v1/logs", otlp, "application/json"),
    ]
    for path, make, content_type in cases:
        refused = post(world, path, make(CAP + 1), content_type)
        assert refused.status_code == 413, (path, refused.text)
        assert f"at most {CAP} entries" in refused.text, path
    for path, make, content_type in cases:
        assert post(world, path, make(CAP), content_type).status_code in (200, 202), path
    # Only the requests at the cap reached Kafka, each whole.
    assert len(read_topic(settings, settings.raw_topic, expected=CAP * len(cases), settle=2.0)) == CAP * len(
        cases
    )


def test_an_entry_nested_too_deep_to_encode_is_refused_alone(world) -> None:  # type: ignore[no-untyped-def]
    """orjson reads 1024 levels but writes 254: such an entry was a 500 for the whole request."""
    deep = b'{"message": "deep", "a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    answer = post(world, "/v1/logs/ingest", b'[{"message": "fine"}, ' + deep + b"]", "application/json")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 1
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "TOO_DEEP")]


def test_a_tenant_over_its_rate_is_refused_before_its_body_and_the_connection_closed(world) -> None:  # type: ignore[no-untyped-def]
    import httpx

    settings, server, _ = world
    with tenant_with_key(settings, rate=1) as (_, key):
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.post("/v1/logs/ingest", content=ingest(CAP), headers=headers).status_code == 202
            refused = http.post("/v1/logs/ingest", content=b"x" * (4 * 1024 * 1024), headers=headers)
    assert refused.status_code == 429
    assert refused.headers["connection"] == "close"
    assert int(refused.headers["retry-after"]) >= 1
