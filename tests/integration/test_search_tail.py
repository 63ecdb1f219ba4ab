"""Live tail from a `logs` topic of the test's own: WebSocket push within 2 s, polling by position,
filters, and tenant isolation."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Producer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from schemas.record import Level, Record
from tests.integration.collector_support import (
    ApiServer,
    add_key,
    kafka_topic,
    require_stack,
    tenant_with_key,
)
from tests.integration.search_support import make_id

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tail_world():  # type: ignore[no-untyped-def]
    # A long key cache: an open tail must still notice a revocation at its own re-check.
    base = require_stack().model_copy(update={"auth_cache_s": 30.0, "tail_key_check_s": 1.0})
    with (
        kafka_topic(base) as topic,
        tenant_with_key(base, scopes=("search",)) as a,
        tenant_with_key(base, scopes=("search",)) as b,
    ):
        settings = base.model_copy(update={"logs_topic": topic})
        producer = Producer({"bootstrap.servers": settings.kafka_servers, "linger.ms": 0})
        with ApiServer(settings) as server:
            yield {"url": server.url, "a": a, "b": b, "producer": producer, "topic": topic}
        producer.flush(10)


_rng = random.Random(7)


def record(tenant: str, level: Level, service: str, message: str) -> Record:
    now = datetime.now(UTC)
    return Record(make_id(_rng), tenant, now, now, level, service, "web-1", None, None, message, None, None)


def send(world: dict[str, Any], records: list[Record]) -> None:
    for r in records:
        world["producer"].produce(world["topic"], key=f"{r.tenant}/{r.service}".encode(), value=r.to_json())
    world["producer"].flush(10)


def test_websocket_pushes_matching_records_within_two_seconds(tail_world) -> None:  # type: ignore[no-untyped-def]
    tenant_a, key_a = tail_world["a"]
    tenant_b, _ = tail_world["b"]
    ws_url = (
        tail_world["url"].replace("http://", "ws://")
        + "/v1/logs/tail?service=checkout&level=>=WARN&q=payment"
    )
    with connect(ws_url, additional_headers={"X-API-Key": key_a}, open_timeout=10) as ws:
        assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"
        time.sleep(1.0)  # the consumer assigns itself the partitions
        wanted = [record(tenant_a, Level.ERROR, "checkout", f"payment failed {i}") for i in range(3)]
        others = [
            record(tenant_a, Level.INFO, "checkout", "payment ok"),  # level below WARN
            record(tenant_a, Level.ERROR, "auth", "payment failed"),  # another service
            record(tenant_a, Level.ERROR, "checkout", "refund failed"),  # no word "payment"
            record(tenant_b, Level.ERROR, "checkout", "payment failed"),  # another tenant
        ]
        sent_at = time.monotonic()
        send(tail_world, others + wanted)
        got: list[dict[str, Any]] = []
        while len(got) < len(wanted) and time.monotonic() - sent_at < 10:
            message = orjson.loads(ws.recv(timeout=10))
            if message["type"] == "logs":
                got.extend(message["logs"])
        took = time.monotonic() - sent_at
        assert sorted(x["log_id"] for x in got) == sorted(r.log_id for r in wanted)
        assert took < 2.0, f"records arrived after {took:.2f} s"
        # a new filter replaces the old one
        ws.send(orjson.dumps({"service": "auth"}).decode())
        assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"
        auth = record(tenant_a, Level.DEBUG, "auth", "token refreshed")
        send(tail_world, [record(tenant_a, Level.ERROR, "checkout", "payment failed"), auth])
        message = orjson.loads(ws.recv(timeout=10))
        assert [x["log_id"] for x in message["logs"]] == [auth.log_id]


def test_websocket_needs_a_key(tail_world) -> None:  # type: ignore[no-untyped-def]
    ws_url = tail_world["url"].replace("http://", "ws://") + "/v1/logs/tail"
    with pytest.raises(ConnectionClosed) as info, connect(ws_url, open_timeout=10) as ws:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401


def test_a_browser_sends_its_key_in_the_query_string(tail_world) -> None:  # type: ignore[no-untyped-def]
    # A browser cannot set headers on a WebSocket: the web app's live tail passes ?api_key=.
    tenant_a, key_a = tail_world["a"]
    base = tail_world["url"].replace("http://", "ws://") + "/v1/logs/tail?service=checkout"
    with connect(f"{base}&api_key={key_a}", open_timeout=10) as ws:
        assert orjson.loads(ws.recv(timeout=10)) == {"type": "subscribed", "tenant": tenant_a}
    with pytest.raises(ConnectionClosed) as info, connect(f"{base}&api_key=nope", open_timeout=10) as ws:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    assert info.value.rcvd.reason == "the API key is not valid"
    # the query string is not a way in for plain HTTP: URLs land in access logs
    http = tail_world["url"] + f"/v1/logs/tail?api_key={key_a}"
    assert httpx.get(http, timeout=10).status_code == 401


def _closed_after(ws: Any, change: Any) -> tuple[int, str, float]:
    """Make ``change`` to the key, then read until the server closes: (code, reason, seconds)."""
    assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"
    change()
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as info:
        while time.monotonic() - started < 20:
            ws.recv(timeout=20)
    assert info.value.rcvd is not None, "the client closed, not the server"
    return info.value.rcvd.code, info.value.rcvd.reason, time.monotonic() - started


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_an_open_tail_closes_when_its_key_is_revoked_or_expires(tail_world, how) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import psycopg

    from connectors.postgres import tenants

    settings = require_stack()
    tenant_a, _ = tail_world["a"]
    key_id, key = add_key(settings, tenant_a, ("search",))
    ws_url = tail_world["url"].replace("http://", "ws://") + "/v1/logs/tail"

    def change() -> None:
        async def go() -> None:
            async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
                if how == "revoked":
                    await tenants.revoke_key(conn, tenant_a, key_id)
                else:
                    await tenants.rotate_key(conn, tenant_a, key_id, grace_s=0)

        asyncio.run(go())

    with connect(ws_url, additional_headers={"X-API-Key": key}, open_timeout=10) as ws:
        code, reason, took = _closed_after(ws, change)
    assert code == 4403
    assert reason == (
        "the API key has been revoked" if how == "revoked" else "the API key has expired (it was rotated)"
    )
    assert took < 1.0 + 2.0, f"the tail stayed open {took:.1f} s after the key was {how}"


def test_polling_returns_what_arrived_since_a_position(tail_world) -> None:  # type: ignore[no-untyped-def]
    tenant_a, key_a = tail_world["a"]
    tenant_b, key_b = tail_world["b"]
    with httpx.Client(base_url=tail_world["url"], headers={"X-API-Key": key_a}, timeout=30) as c:
        start = c.get("/v1/logs/tail", params={"since": "now", "service": "mailer"})
        assert start.status_code == 200, start.text
        position = start.json()["next"]
        first = [record(tenant_a, Level.INFO, "mailer", f"sent {i}") for i in range(5)]
        send(tail_world, [*first, record(tenant_b, Level.INFO, "mailer", "not yours")])
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            body = c.get("/v1/logs/tail", params={"since": position, "service": "mailer"}).json()
            got.extend(body["logs"])
            position = body["next"]
            time.sleep(0.3)
        assert [x["log_id"] for x in got] == [r.log_id for r in first]
        assert c.get("/v1/logs/tail", params={"since": position, "service": "mailer"}).json()["logs"] == []
        by_time = c.get("/v1/logs/tail", params={"since": "now-5m", "service": "mailer", "q": "sent"}).json()
        assert {x["log_id"] for x in by_time["logs"]} >= {r.log_id for r in first}
        assert c.get("/v1/logs/tail", params={"since": "yesterday-ish"}).status_code == 400
    with httpx.Client(base_url=tail_world["url"], headers={"X-API-Key": key_b}, timeout=30) as c:
        body = c.get("/v1/logs/tail", params={"since": "now-5m", "service": "mailer"}).json()
        assert {x["tenant"] for x in body["logs"]} == {tenant_b}
