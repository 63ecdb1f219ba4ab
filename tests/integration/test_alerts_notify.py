"""The notifier against real Kafka and PostgreSQL, a local webhook receiver and an SMTP sink:
alert events as the job writes them in, history and messages out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from core.alerts.evaluate import AlertEvent, State
from core.alerts.notify import Notifier
from infra.settings import Settings
from tests.integration.alerts_support import SmtpSink, WebhookReceiver, topics
from tests.integration.collector_support import ApiServer, require_stack, tenant_with_key

pytestmark = pytest.mark.integration

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def stack() -> Settings:
    # The test receivers listen on loopback, which channels may reach only when allowed.
    return require_stack().model_copy(update={"alerts_allowed_hosts": "127.0.0.1"})


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[ApiServer]:
    with ApiServer(stack) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().up()
    yield r
    r.down()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


class Setup:
    def __init__(self, settings: Settings, api: ApiServer, key: str, tenant: str, topic: str) -> None:
        self.settings, self.tenant, self.topic = settings, tenant, topic
        self.http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        self.producer = Producer({"bootstrap.servers": settings.kafka_servers})

    def rule(self, channels: list[dict[str, Any]], **spec: Any) -> str:
        body = {
            "name": "payment errors",
            "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
            "window": "5m",
            "threshold": 100,
            "group_by": ["host"],
            "severity": "critical",
            "channels": channels,
            **spec,
        }
        response = self.http.post("/v1/alerts/rules", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def emit(self, rule_id: str, state: State, host: str, end_ms: int, notify: bool = True) -> None:
        group_id = f"{rule_id}\x1f{host}"
        event = AlertEvent(
            event_id=uuid.uuid4().hex,
            tenant=self.tenant,
            rule_id=rule_id,
            rule_name="payment errors",
            revision=1,
            severity="critical",
            state=state,
            notify=notify,
            group={"host": host},
            group_id=group_id,
            value=101.0 if state is State.FIRING else 3.0,
            comparison=">",
            threshold=100,
            window_start_ms=end_ms - 300_000,
            window_end_ms=end_ms,
            since_ms=end_ms,
            samples=[
                {
                    "log_id": "ab" * 16,
                    "timestamp": end_ms - 1000,
                    "service": "payment-service",
                    "host": host,
                    "level": "ERROR",
                    "message": "card declined",
                }
            ]
            if state is State.FIRING
            else [],
        )
        self.producer.produce(self.topic, event.to_json())
        assert self.producer.flush(10) == 0

    def history(self, **params: Any) -> list[dict[str, Any]]:
        response = self.http.get("/v1/alerts/history", params=params)
        assert response.status_code == 200, response.text
        return list(response.json())


@pytest.fixture
def setup(stack: Settings, api: ApiServer, smtp: SmtpSink) -> Iterator[tuple[Setup, Settings]]:
    with tenant_with_key(stack) as (tenant, key), topics(stack, 1) as (topic,):
        settings = stack.model_copy(
            update={
                "smtp_port": smtp.port,
                "alerts_batch_wait_s": 0.2,
                "alerts_retry_max_s": 1.0,
                "alerts_search_url": "http://strata.test/v1/search",
            }
        )
        yield Setup(settings, api, key, tenant, topic), settings


def notifier(settings: Settings, topic: str) -> Notifier:
    return Notifier(settings, topic=topic, group_id=f"test-notify-{uuid.uuid4().hex[:8]}")


def test_groups_firing_together_make_one_message_per_channel(
    setup: tuple[Setup, Settings], receiver: WebhookReceiver, smtp: SmtpSink
) -> None:
    s, settings = setup
    rid = s.rule(
        [
            {"type": "webhook", "url": f"{receiver.url}/hook", "headers": {"X-Token": "t"}},
            {"type": "slack", "url": f"{receiver.url}/slack"},
            {"type": "email", "to": ["oncall@example.com"]},
        ]
    )
    with notifier(settings, s.topic):
        s.emit(rid, State.FIRING, "web-1", T0_MS)
        s.emit(rid, State.FIRING, "web-2", T0_MS)
        (hook,) = receiver.wait_for("/hook", 1)
        (slack,) = receiver.wait_for("/slack", 1)
        (mail,) = smtp.wait_for(1)
        assert hook["state"] == "FIRING" and hook["rule"]["id"] == rid and hook["rule"]["threshold"] == 100
        assert [a["group"] for a in hook["alerts"]] == [{"host": "web-1"}, {"host": "web-2"}]
        alert = hook["alerts"][0]
        assert alert["value"] == 101.0 and alert["window"]["end"] == "2026-01-01T00:00:00.000000Z"
        assert alert["samples"][0]["message"] == "card declined"
        assert alert["link"].startswith("http://strata.test/v1/search?q=")
        assert "[FIRING] payment errors (2 groups)" in slack["text"]
        assert mail["To"] == "oncall@example.com" and "[FIRING] payment errors" in mail["Subject"]

        s.emit(rid, State.RESOLVED, "web-1", T0_MS + 300_000)
        receiver.wait_for("/hook", 2)
        resolved = receiver.bodies("/hook")[1]
        assert resolved["state"] == "RESOLVED"
        assert [a["group"] for a in resolved["alerts"]] == [{"host": "web-1"}]

    history = s.history(rule_id=rid)
    assert [(h["state"], h["group"]) for h in history] == [
        ("RESOLVED", {"host": "web-1"}),
        ("FIRING", {"host": "web-1"}),
        ("FIRING", {"host": "web-2"}),
    ] or [(h["state"], h["group"]) for h in history] == [
        ("RESOLVED", {"host": "web-1"}),
        ("FIRING", {"host": "web-2"}),
        ("FIRING", {"host": "web-1"}),
    ]
    assert all(d["status"] == "sent" for h in history for d in h["deliveries"])
    assert [h["state"] for h in s.history(rule_id=rid, state="FIRING")] == ["FIRING", "FIRING"]


def test_a_receiver_that_is_down_delays_notifications_but_loses_none(
    setup: tuple[Setup, Settings], receiver: WebhookReceiver
) -> None:
    s, settings = setup
    rid = s.rule([{"type": "webhook", "url": f"{receiver.url}/hook"}])
    receiver.down()
    with notifier(settings, s.topic):
        for i, host in enumerate(("web-1", "web-2", "web-3")):
            s.emit(rid, State.FIRING, host, T0_MS + i * 60_000)  # three separate firings
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            deliveries = [d for h in s.history(rule_id=rid) for d in h["deliveries"]]
            if len(deliveries) == 3 and all(d["attempts"] >= 2 for d in deliveries):
                break
            time.sleep(0.2)
        assert all(d["status"] == "pending" and "ConnectError" in d["last_error"] for d in deliveries)

        receiver.status = 503  # back, but failing: still retried
        receiver.up()
        time.sleep(2.5)
        assert receiver.bodies("/hook") == []
        receiver.status = 200
        deadline = time.monotonic() + 20
        while sum(len(b["alerts"]) for b in receiver.bodies("/hook")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # nothing more may arrive
    hosts = sorted(a["group"]["host"] for b in receiver.bodies("/hook") for a in b["alerts"])
    assert hosts == ["web-1", "web-2", "web-3"]
    assert all(d["status"] == "sent" for h in s.history(rule_id=rid) for d in h["deliveries"])


def test_a_replayed_firing_is_recorded_and_sent_once(
    setup: tuple[Setup, Settings], receiver: WebhookReceiver
) -> None:
    s, settings = setup
    rid = s.rule([{"type": "webhook", "url": f"{receiver.url}/hook"}])
    with notifier(settings, s.topic):
        s.emit(rid, State.FIRING, "web-1", T0_MS)
        receiver.wait_for("/hook", 1)
        # what a job restored from a checkpoint taken before this firing emits again
        s.emit(rid, State.FIRING, "web-1", T0_MS)
        s.emit(rid, State.FIRING, "web-1", T0_MS + 60_000)
        time.sleep(2)
    assert len(receiver.bodies("/hook")) == 1
    assert [h["state"] for h in s.history(rule_id=rid)] == ["FIRING"]


def test_a_second_notifier_resumes_where_the_first_stopped(
    setup: tuple[Setup, Settings], receiver: WebhookReceiver
) -> None:
    s, settings = setup
    rid = s.rule([{"type": "webhook", "url": f"{receiver.url}/hook"}])
    group = f"test-notify-{uuid.uuid4().hex[:8]}"
    receiver.down()
    with Notifier(settings, topic=s.topic, group_id=group):
        s.emit(rid, State.FIRING, "web-1", T0_MS)
        deadline = time.monotonic() + 15
        while not s.history(rule_id=rid) and time.monotonic() < deadline:
            time.sleep(0.1)
    receiver.up()
    with Notifier(settings, topic=s.topic, group_id=group):
        s.emit(rid, State.RESOLVED, "web-1", T0_MS + 300_000)
        bodies = receiver.wait_for("/hook", 2, timeout=20)
        time.sleep(1)
    assert sorted(b["state"] for b in receiver.bodies("/hook")) == ["FIRING", "RESOLVED"]
    assert len(bodies) == 2
