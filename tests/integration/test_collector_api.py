"""The collector API against real Kafka and PostgreSQL: every endpoint, limit and error."""

from __future__ import annotations

import gzip
import io
import threading
import time
import uuid

import httpx
import orjson
import pytest
import zstandard

from tests.integration.collector_support import (
    ApiServer,
    add_key,
    kafka_topic,
    read_topic,
    require_stack,
    tenant_with_key,
)

pytestmark = pytest.mark.integration

ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def stack():
    settings = require_stack()
    with kafka_topic(settings) as topic:
        settings = settings.model_copy(
            update={
                "raw_topic": topic,
                "auth_cache_s": 0.0,
                "ingest_max_body_bytes": 2 * 1024 * 1024,
                "ingest_max_record_bytes": 64 * 1024,
                "admin_token": ADMIN_TOKEN,
            }
        )
        with ApiServer(settings) as server:
            yield settings, server


@pytest.fixture()
def topic_api():
    """An API writing to a topic of this test alone, so counts in it are exact."""
    settings = require_stack()
    with kafka_topic(settings) as topic:
        settings = settings.model_copy(update={"raw_topic": topic, "auth_cache_s": 0.0})
        with ApiServer(settings) as server:
            yield settings, server


@pytest.fixture()
def tenant(stack):
    settings, _ = stack
    with tenant_with_key(settings) as pair:
        yield pair


def client(server: ApiServer, key: str | None = None, **headers: str) -> httpx.Client:
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def batch(n: int, service: str = "checkout", prefix: str = "msg") -> dict:
    return {
        "service": service,
        "logs": [
            {
                "timestamp": "2025-02-15T12:00:00.123Z",
                "level": "INFO",
                "message": f"{prefix} {i}",
                "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                "metadata": {"i": i},
            }
            for i in range(n)
        ],
    }


def test_ingest_batch_reaches_kafka_stamped_with_the_keys_tenant(topic_api):
    settings, server = topic_api
    with tenant_with_key(settings) as (tenant_id, key), client(server, key) as http:
        answer = http.post("/v1/logs/ingest", json=batch(50))
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["status"], body["received"], body["accepted"], body["rejected"], body["errors"]) == (
            "accepted",
            50,
            50,
            0,
            [],
        )
        assert len(body["batch_id"]) == 32
        found = read_topic(settings, settings.raw_topic, 50)
    assert len(found) == 50
    assert {key for key, _ in found} == {f"{tenant_id}/checkout".encode()}
    assert {env.tenant for _, env in found} == {tenant_id}
    messages = sorted(env.entry["message"] for _, env in found if env.entry)
    assert messages == sorted(f"msg {i}" for i in range(50))


def test_text_lines_join_a_stack_trace_into_one_record(topic_api):
    settings, server = topic_api
    body = (
        b"2025-02-15 12:00:00,001 ERROR [main] com.acme.Api: request failed\n"
        b"java.lang.IllegalStateException: boom\n"
        b"\tat com.acme.Api.handle(Api.java:42)\n"
        b"Caused by: java.io.IOException: closed\n"
        b"\t... 12 more\n"
        b"2025-02-15 12:00:01,002 INFO [main] com.acme.Api: next\n"
    )
    with tenant_with_key(settings) as (_, key), client(server, key) as http:
        answer = http.post(
            "/v1/logs/ingest?service=api", content=body, headers={"Content-Type": "text/plain"}
        )
        assert answer.status_code == 202, answer.text
        assert (answer.json()["received"], answer.json()["accepted"]) == (3, 3)
        found = read_topic(settings, settings.raw_topic, 3)
    lines = sorted((env.line or "") for _, env in found)
    assert lines[2].startswith("java.lang.IllegalStateException: boom\n\tat com.acme.Api.handle")
    assert lines[2].endswith("Caused by: java.io.IOException: closed\n\t... 12 more")


def test_a_retried_batch_without_timestamps_lands_on_the_same_log_ids(topic_api):
    from core.records.pipeline import RecordPipeline
    from schemas.record import Record

    settings, server = topic_api
    entries = {"service": "cron", "logs": [{"message": "job started"}, {"message": "job started"}]}
    with tenant_with_key(settings) as (_, key), client(server, key) as http:
        for headers in ({}, {}, {"Idempotency-Key": "run-1"}, {"Idempotency-Key": "run-1"}):
            assert http.post("/v1/logs/ingest", json=entries, headers=headers).status_code == 202
            time.sleep(0.01)  # the resend arrives later: another received_at
        too_long = http.post("/v1/logs/ingest", json=entries, headers={"Idempotency-Key": "k" * 257})
        assert too_long.status_code == 422
        found = read_topic(settings, settings.raw_topic, 8)
    pipeline = RecordPipeline()
    ids = [r.log_id for _, env in found if isinstance(r := pipeline.process(env), Record)]
    assert len(ids) == 8
    by_entry = {}
    for (_, env), log_id in zip(found, ids, strict=True):
        by_entry.setdefault(env.entry_id, set()).add(log_id)
    # Four entry names (two per body hash, two per key), each resent once under the same id.
    assert len(by_entry) == 4 and all(len(v) == 1 for v in by_entry.values())
    assert len(set(ids)) == 4


def test_ndjson_array_gzip_and_zstd_bodies(stack, tenant):
    _, server = stack
    _, key = tenant
    ndjson = b"".join(orjson.dumps({"message": f"n{i}", "service": "s"}) + b"\n" for i in range(10))
    with client(server, key) as http:
        answers = [
            http.post("/v1/logs/ingest", content=ndjson, headers={"Content-Type": "application/x-ndjson"}),
            http.post("/v1/logs/ingest?service=arr", json=[{"message": "a"}, {"message": "b"}]),
            http.post(
                "/v1/logs/ingest",
                content=gzip.compress(orjson.dumps(batch(5))),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ),
            http.post(
                "/v1/logs/ingest",
                content=zstandard.ZstdCompressor().compress(orjson.dumps(batch(7))),
                headers={"Content-Encoding": "zstd", "Content-Type": "application/json"},
            ),
            http.post(
                "/v1/logs/ingest?service=plain",
                content=b"line 1\nline 2\n",
                headers={"Content-Type": "text/plain"},
            ),
        ]
    assert [a.status_code for a in answers] == [202] * 5
    assert [a.json()["accepted"] for a in answers] == [10, 2, 5, 7, 2]


def test_bad_records_are_listed_and_the_batch_goes_on(stack, tenant):
    settings, server = stack
    _, key = tenant
    logs = [
        {"message": "ok"},
        17,
        {"message": "x" * (settings.ingest_max_record_bytes + 1)},
        {"message": "ok"},
    ]
    with client(server, key) as http:
        answer = http.post("/v1/logs/ingest", json={"service": "s", "logs": logs})
        bad = http.post("/v1/logs/ingest", content=b"{broken", headers={"Content-Type": "application/json"})
    assert answer.status_code == 202
    body = answer.json()
    assert (body["received"], body["accepted"], body["rejected"]) == (4, 2, 2)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(1, "NOT_AN_OBJECT"), (2, "TOO_LARGE")]
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]


def test_body_over_the_limit_is_413_even_when_compressed(stack, tenant):
    settings, server = stack
    _, key = tenant
    huge = orjson.dumps(batch(1, prefix="y" * (settings.ingest_max_body_bytes + 10)))
    with client(server, key) as http:
        plain = http.post("/v1/logs/ingest", content=huge, headers={"Content-Type": "application/json"})
        bomb = http.post(
            "/v1/logs/ingest",
            content=gzip.compress(huge),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        unknown = http.post("/v1/logs/ingest", content=b"{}", headers={"Content-Encoding": "br"})
    assert plain.status_code == 413 and "limit" in plain.json()["detail"]
    assert bomb.status_code == 413
    assert unknown.status_code == 415


def test_no_key_401_bad_key_401_revoked_or_wrong_scope_403(stack, tenant):
    settings, server = stack
    tenant_id, admin_key = tenant
    _, search_only = add_key(settings, tenant_id, ("search",))
    with client(server) as anonymous:
        assert anonymous.post("/v1/logs/ingest", json=batch(1)).status_code == 401
        assert anonymous.post("/_bulk", content=b"").status_code == 401
        assert anonymous.post("/v1/logs", json={}).status_code == 401
        assert anonymous.post("/v1/logs/upload", files={"file": ("a.log", b"x")}).status_code == 401
        wrong = anonymous.post(
            "/v1/logs/ingest",
            json=batch(1),
            headers={"Authorization": "Bearer strata_0123456789abcdef_" + "A" * 43},
        )
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    with client(server, search_only) as http:
        answer = http.post("/v1/logs/ingest", json=batch(1))
        assert answer.status_code == 403 and "scope" in answer.json()["detail"]
    with client(server, admin_key) as admin:
        key_id, key = (lambda j: (j["key_id"], j["key"]))(
            admin.post("/v1/keys", json={"scopes": ["ingest"]}).json()
        )
        with client(server, key) as http:
            assert http.post("/v1/logs/ingest", json=batch(1)).status_code == 202
            assert admin.delete(f"/v1/keys/{key_id}").status_code == 204
            revoked = http.post("/v1/logs/ingest", json=batch(1))
            assert revoked.status_code == 403 and "revoked" in revoked.json()["detail"]
        with client(server, **{"X-API-Key": admin_key}) as by_header:
            assert by_header.post("/v1/logs/ingest", json=batch(1)).status_code == 202


def test_rotation_keeps_the_old_key_for_the_grace_period_only(stack, tenant):
    _, server = stack
    _, admin_key = tenant
    with client(server, admin_key) as admin:
        old = admin.post("/v1/keys", json={"name": "agent", "scopes": ["ingest"]}).json()
        new = admin.post(f"/v1/keys/{old['key_id']}/rotate", json={"grace_s": 2}).json()
        assert new["replaces"] == old["key_id"]
        with client(server, old["key"]) as old_http, client(server, new["key"]) as new_http:
            assert old_http.post("/v1/logs/ingest", json=batch(1)).status_code == 202
            assert new_http.post("/v1/logs/ingest", json=batch(1)).status_code == 202
            time.sleep(2.5)
            expired = old_http.post("/v1/logs/ingest", json=batch(1))
            assert expired.status_code == 403 and "expired" in expired.json()["detail"]
            assert new_http.post("/v1/logs/ingest", json=batch(1)).status_code == 202
        listed = {k["key_id"]: k for k in admin.get("/v1/keys").json()}
        assert listed[old["key_id"]]["rotated_to"] == new["key_id"]
        assert "key" not in listed[new["key_id"]] and "secret_sha256" not in listed[new["key_id"]]


def test_tenant_isolation_a_key_never_writes_into_another_tenant(topic_api):
    settings, server = topic_api
    with tenant_with_key(settings) as (tenant_a, key_a), tenant_with_key(settings) as (tenant_b, key_b):
        claims_b = {"service": "s", "tenant": tenant_b, "logs": [{"message": "from a", "tenant": tenant_b}]}
        with client(server, key_a) as http_a:
            assert http_a.post("/v1/logs/ingest", json=claims_b).status_code == 202
            bulk = (
                orjson.dumps({"index": {"_index": tenant_b}})
                + b"\n"
                + orjson.dumps({"message": "bulk from a", "tenant": tenant_b})
                + b"\n"
            )
            assert (
                http_a.post(
                    f"/{tenant_b}/_bulk", content=bulk, headers={"Content-Type": "application/x-ndjson"}
                ).status_code
                == 200
            )
            # A tenant key cannot manage another tenant's keys either.
            assert http_a.get(f"/v1/keys?tenant={tenant_b}").status_code == 403
        with client(server, key_b) as http_b:
            assert (
                http_b.post(
                    "/v1/logs/ingest", json={"service": "s", "logs": [{"message": "from b"}]}
                ).status_code
                == 202
            )
        found = read_topic(settings, settings.raw_topic, 3)
    stamped = {(env.entry or {}).get("message"): env.tenant for _, env in found}
    assert stamped == {"from a": tenant_a, "bulk from a": tenant_a, "from b": tenant_b}
    assert all(key.startswith(f"{env.tenant}/".encode()) for key, env in found)


def test_rate_limit_answers_429_with_retry_after(stack):
    settings, server = stack
    with tenant_with_key(settings, rate=10) as (_, key), client(server, key) as http:
        first = http.post("/v1/logs/ingest", json=batch(25))  # burst 2 s x 10/s = 20; one batch may overdraw
        second = http.post("/v1/logs/ingest", json=batch(1))
    assert first.status_code == 202
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1 and "rate" in second.json()["detail"]


def test_elasticsearch_bulk_shape_and_probes(stack, tenant):
    _, server = stack
    _, key = tenant
    body = b"".join(
        orjson.dumps(o) + b"\n"
        for o in (
            {"index": {"_index": "web-2025.02.15", "_id": "a1"}},
            {"@timestamp": "2025-02-15T12:00:00Z", "message": "GET /"},
            {"create": {}},
            {"message": "created"},
            {"delete": {"_index": "web", "_id": "a1"}},
        )
    )
    with client(server, key) as http:
        root = http.get("/")
        head = http.head("/")
        answer = http.post("/web/_bulk", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert root.status_code == 200 and root.json()["version"]["number"].startswith("8.")
    assert root.headers["x-elastic-product"] == "Elasticsearch" and head.status_code == 200
    assert answer.status_code == 200
    result = answer.json()
    assert result["errors"] is True
    index, create, delete = result["items"]
    assert (
        index["index"].items()
        >= {"_index": "web-2025.02.15", "_id": "a1", "status": 201, "result": "created"}.items()
    )
    assert create["create"]["status"] == 201 and create["create"]["_index"] == "web"
    assert delete["delete"]["status"] == 400


def test_bulk_as_node_shippers_and_beats_send_it(topic_api):
    """winston-elasticsearch's action lines, pino-elasticsearch's closing refresh, and agents' index
    names, which become a service that survives an agent upgrade or a new day."""
    settings, server = topic_api
    body = (
        b'{"index":{"_index":"winston","pipeline":null},"attempts":0}\n'
        b'{"@timestamp":"2026-11-28T10:00:00Z","message":"from winston","severity":"info"}\n'
        b'{"create":{"_index":"filebeat-8.1.3-2026.11.28"}}\n'
        b'{"@timestamp":"2026-11-28T10:00:01Z","message":"from filebeat","host":{"name":"web-1"}}\n'
        b'{"create":{"_index":".ds-logs-app-default-2026.11.28-000001"}}\n'
        b'{"@timestamp":"2026-11-28T10:00:02Z","message":"from a data stream"}\n'
    )
    with tenant_with_key(settings) as (tenant_id, key), client(server, key) as http:
        answer = http.post("/_bulk", content=body, headers={"Content-Type": "application/x-ndjson"})
        refreshes = [
            http.get("/pino-logs/_refresh"),
            http.post("/pino-logs/_refresh"),
            http.post("/_refresh"),
        ]
        found = read_topic(settings, settings.raw_topic, 3)
    assert answer.status_code == 200, answer.text
    assert answer.json()["errors"] is False
    assert [item[next(iter(item))]["status"] for item in answer.json()["items"]] == [201, 201, 201]
    for refresh in refreshes:
        assert refresh.status_code == 200 and refresh.json()["_shards"]["failed"] == 0
        assert refresh.headers["x-elastic-product"] == "Elasticsearch"
    by_message = {env.entry["message"]: env for _, env in found if env.entry}
    assert {m: (e.tenant, e.service) for m, e in by_message.items()} == {
        "from winston": (tenant_id, "winston"),
        "from filebeat": (tenant_id, "filebeat"),
        "from a data stream": (tenant_id, "app"),
    }
    assert by_message["from filebeat"].host == "web-1"


def test_otlp_json_and_protobuf(stack, tenant):
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    _, server = stack
    _, key = tenant
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"body": {"stringValue": "hello"}, "severityNumber": 9},
                            {"body": {"stringValue": ""}},
                        ]
                    }
                ],
            }
        ]
    }
    proto = ParseDict(doc, logs_service_pb2.ExportLogsServiceRequest()).SerializeToString()
    with client(server, key) as http:
        as_json = http.post("/v1/logs", json=doc)
        as_proto = http.post("/v1/logs", content=proto, headers={"Content-Type": "application/x-protobuf"})
    assert as_json.status_code == 200 and as_json.json()["partialSuccess"]["rejectedLogRecords"] == 1
    assert as_proto.status_code == 200
    answer = logs_service_pb2.ExportLogsServiceResponse.FromString(as_proto.content)
    assert answer.partial_success.rejected_log_records == 1


def test_upload_streams_a_file_and_reports_progress(topic_api):
    settings, server = topic_api
    lines = b"".join(f"2025-02-15 12:00:{i % 60:02d} INFO line {i}\n".encode() for i in range(12_000))
    with tenant_with_key(settings) as (tenant_id, key), client(server, key) as http:
        started = http.post(
            "/v1/logs/upload",
            files={"file": ("app.log.gz", gzip.compress(lines))},
            data={"service": "batchjob"},
        )
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["state"] in ("queued", "running", "done") and job["status_url"].endswith(job["job_id"])
        deadline = time.monotonic() + 60
        while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = http.get(job["status_url"]).json()
        assert (job["state"], job["lines"], job["accepted"], job["rejected"], job["progress"]) == (
            "done",
            12_000,
            12_000,
            0,
            1.0,
        )
        # Another tenant cannot see the job.
        with tenant_with_key(settings) as (_, other), client(server, other) as other_http:
            assert other_http.get(job["status_url"]).status_code == 404
        ndjson = io.BytesIO(b'{"message": "a"}\nnot json\n{"message": "b"}\n')
        second = http.post(
            "/v1/logs/upload", files={"file": ("x.ndjson", ndjson)}, data={"service": "j"}
        ).json()
        while second["state"] not in ("done", "failed"):
            time.sleep(0.2)
            second = http.get(second["status_url"]).json()
        assert (second["accepted"], second["rejected"]) == (2, 1)
        assert second["errors"][0]["line"] == 2 and second["errors"][0]["reason"] == "MALFORMED_JSON"
        found = read_topic(settings, settings.raw_topic, 12_002, timeout=60)
    assert len(found) == 12_002
    assert {env.tenant for _, env in found} == {tenant_id}


def test_agent_registration_gives_a_working_ingest_token(stack, tenant):
    _, server = stack
    tenant_id, key = tenant
    registration = {
        "organization": tenant_id,
        "environment": "prod",
        "agentVersion": "1.4.2",
        "hostname": "h1",
    }
    with client(server, key) as http:
        answer = http.post("/v1/agents/register", json=registration)
        other_org = http.post("/v1/agents/register", json={**registration, "organization": "someone-else"})
    assert answer.status_code == 201, answer.text
    creds = answer.json()
    assert creds["client_id"].startswith("agent-") and creds["tenant"] == tenant_id
    assert other_org.status_code == 403
    with client(server, creds["token"]) as agent:
        assert agent.post("/v1/logs/ingest", json=batch(1)).status_code == 202
        assert agent.post("/v1/agents/register", json=registration).status_code == 403  # ingest scope only


def test_health_readiness_and_metrics(stack, tenant):
    _, server = stack
    _, key = tenant
    with client(server, key) as http:
        http.post("/v1/logs/ingest", json={"service": "s", "logs": [{"message": "m"}, 3]})
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        metrics = http.get("/metrics").text
    assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok", "postgres": "ok"}
    assert 'strata_ingest_records_accepted_total{route="ingest"}' in metrics
    assert 'strata_ingest_records_rejected_total{reason="NOT_AN_OBJECT",route="ingest"}' in metrics
    assert "strata_ingest_request_seconds_bucket" in metrics and "strata_ingest_bytes_total" in metrics


def test_openapi_documents_the_ingest_routes(stack):
    _, server = stack
    with client(server) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/logs/ingest",
        "/_bulk",
        "/v1/logs",
        "/v1/logs/upload",
        "/v1/agents/register",
        "/readyz",
    ):
        assert path in paths


def test_admin_token_creates_tenants_but_cannot_send_logs(stack):
    settings, server = stack
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    try:
        with client(server, ADMIN_TOKEN) as admin:
            created = admin.post("/v1/tenants", json={"id": tenant_id, "name": "Globex"})
            assert created.status_code == 201, created.text
            assert admin.post("/v1/tenants", json={"id": tenant_id}).status_code == 409
            assert admin.post("/v1/tenants", json={"id": "Not Valid!"}).status_code == 400
            assert admin.post("/v1/logs/ingest", json=batch(1)).status_code == 403
            assert admin.get("/v1/keys").status_code == 400  # which tenant?
            assert len(admin.get(f"/v1/keys?tenant={tenant_id}").json()) == 1
            agent = admin.post("/v1/agents/register", json={"organization": "Globex", "agentVersion": "2.0"})
            assert agent.status_code == 201 and agent.json()["tenant"] == tenant_id
        with client(server, created.json()["key"]) as tenant_http:
            assert tenant_http.post("/v1/logs/ingest", json=batch(2)).status_code == 202
            assert tenant_http.post("/v1/tenants", json={"id": "x-other"}).status_code == 403
    finally:
        import psycopg

        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))


def _gzip_bomb(expanded: int) -> bytes:
    """A JSON array of tiny objects, ``expanded`` bytes once decompressed, a few KiB compressed."""
    count = (expanded - 2) // 8
    return gzip.compress(b"[" + b'{"m":1},' * (count - 1) + b'{"m":1}]', 9)


def test_a_body_that_expands_hugely_does_not_freeze_the_worker():
    settings = require_stack()
    with kafka_topic(settings) as topic:
        settings = settings.model_copy(
            update={
                "raw_topic": topic,
                "auth_cache_s": 0.0,
                "ingest_max_body_bytes": 8 * 1024 * 1024,
                # the bomb's million entries are what this test times; the cap would refuse them
                "ingest_max_entries": 2_000_000,
            }
        )
        bomb = _gzip_bomb(8 * 1024 * 1024 - 1024)
        assert len(bomb) < 64 * 1024
        with ApiServer(settings) as server, tenant_with_key(settings, rate=100) as (_, key):
            gaps: list[float] = []
            done = threading.Event()

            def ping() -> None:
                with httpx.Client(base_url=server.url, timeout=60) as http:
                    last = time.monotonic()
                    while not done.is_set():
                        http.get("/healthz")
                        now = time.monotonic()
                        gaps.append(now - last)
                        last = now
                        time.sleep(0.02)

            pinger = threading.Thread(target=ping)
            pinger.start()
            try:
                with client(server, key) as http:
                    started = time.monotonic()
                    answer = http.post(
                        "/v1/logs/ingest",
                        content=bomb,
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                    )
                    took = time.monotonic() - started
                    # Over its rate now (a million entries at 100/s): the next body is refused
                    # before it is read, so even one that is not valid gzip gets the 429.
                    again = http.post(
                        "/v1/logs/ingest",
                        content=b"not gzip at all",
                        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                    )
            finally:
                done.set()
                pinger.join()
    print(f"bomb request {took:.2f}s, longest /healthz gap {max(gaps):.2f}s over {len(gaps)} pings")
    # A request may overdraw the bucket (a batch is never split), so the bomb itself is accepted.
    assert answer.status_code == 202, answer.text
    assert again.status_code == 429, again.text
    assert took > 0.3, "the body decoded too fast for this test to say anything"
    # Decoding ran beside the event loop: health checks kept being answered meanwhile.
    assert max(gaps) < max(took / 2, 0.3)
