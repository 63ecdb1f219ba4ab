"""The alerts job end to end: real Kafka and PostgreSQL, `strata alerts run` as a process, the
notifier in this process, a local webhook receiver. Event times are chosen by the test, so five
minutes of windows pass in seconds.

Every record of a test goes to one partition, in order; a "probe" rule (any ERROR of service
probe, one group per host) tells the test that the job has read up to a point.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.alerts.notify import Notifier
from infra.settings import Settings
from schemas.record import format_ts
from tests.integration.alerts_support import AlertsJob, Logs, WebhookReceiver, hour_ago, topics
from tests.integration.collector_support import ApiServer, require_stack, tenant_with_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAYMENT_RULE = {  # the seeds' example: ERROR count from payment-service > 100 in 5 minutes
    "name": "payment errors",
    "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
    "window": "5m",
    "slide": "1m",
    "comparison": ">",
    "threshold": 100,
    "severity": "critical",
}


class World:
    """One tenant, its topics, the job, the notifier and the receiver of one test."""

    def __init__(
        self,
        settings: Settings,
        api: ApiServer,
        key: str,
        tenant: str,
        raw: str,
        alerts: str,
        tmp: Path,
        receiver: WebhookReceiver,
    ) -> None:
        self.settings, self.tenant, self.receiver = settings, tenant, receiver
        self.http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        self.logs = Logs(settings, raw, tenant, hour_ago())
        self.job = AlertsJob(settings, raw, alerts, tmp / "checkpoints", tmp / "job.log")
        self.alerts_topic = alerts
        self.probes = 0
        self.rule(
            "probe",
            filter={"services": ["probe"], "levels": ["ERROR"]},
            window="1m",
            threshold=0,
            group_by=["host"],
            cooldown=0,
        )

    def rule(self, path: str, **spec: Any) -> str:
        body = {
            **spec,
            "name": spec.get("name", path),
            "channels": [{"type": "webhook", "url": f"{self.receiver.url}/{path}"}],
        }
        response = self.http.post("/v1/alerts/rules", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def sync(self, at_s: float, timeout: float = 300.0) -> None:
        """Send a probe at event time ``at_s`` and wait for its alert: the job has read all before it."""
        self.probes += 1
        self.logs.send(at_s, "ERROR", service="probe", host=f"probe-{self.probes}")
        self.logs.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.job.check_alive()
            fired = [
                a["group"]["host"]
                for b in self.receiver.bodies("/probe")
                for a in b["alerts"]
                if b["state"] == "FIRING"
            ]
            if f"probe-{self.probes}" in fired:
                time.sleep(1.0)  # the keyed subtask of other groups may trail the probe's a little
                return
            time.sleep(0.1)
        log = self.job.log_file.read_text()[-3000:]
        raise AssertionError(f"probe {self.probes} not seen; job log: {log}")

    def states(self, path: str) -> list[tuple[str, Any]]:
        return [(b["state"], a["value"]) for b in self.receiver.bodies(f"/{path}") for a in b["alerts"]]

    def wait_states(self, path: str, count: int, timeout: float = 120.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.states(path)) < count and time.monotonic() < deadline:
            self.job.check_alive()
            time.sleep(0.1)
        return self.states(path)


@pytest.fixture(scope="module")
def stack() -> Settings:
    # The test receivers listen on loopback, which channels may reach only when allowed.
    return require_stack().model_copy(update={"alerts_allowed_hosts": "127.0.0.1"})


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[ApiServer]:
    with ApiServer(stack) as server:
        yield server


@pytest.fixture
def world(stack: Settings, api: ApiServer, tmp_path: Path) -> Iterator[World]:
    receiver = WebhookReceiver().up()
    with tenant_with_key(stack) as (tenant, key), topics(stack, 2, 1) as (raw, alerts):
        w = World(stack, api, key, tenant, raw, alerts, tmp_path, receiver)
        settings = stack.model_copy(update={"alerts_batch_wait_s": 0.1, "alerts_retry_max_s": 1.0})
        notifier = Notifier(settings, topic=alerts, group_id=f"test-notify-{uuid.uuid4().hex[:8]}").start()
        try:
            yield w
        finally:
            w.job.kill()
            notifier.stop()
            if notifier.errors:
                print("notifier errors:", notifier.errors)
            print(
                "history:",
                [
                    (h["rule_name"], h["state"], h["value"])
                    for h in w.http.get("/v1/alerts/history", params={"limit": 1000}).json()
                ],
            )
            receiver.down()


def test_rules_fire_at_the_threshold_hold_for_cooldown_and_apply_without_restart(world: World) -> None:
    w = world
    w.rule("payment", **PAYMENT_RULE)
    w.rule(
        "checkout",
        filter={"services": ["checkout"], "levels": ["ERROR"]},
        window="1m",
        threshold=2,
        for_evaluations=2,
        cooldown=0,
    )
    w.rule(
        "search",
        filter={"services": ["search"], "levels": ["ERROR"]},
        window="1m",
        threshold=2,
        cooldown="10m",
    )
    w.job.start()
    w.sync(-60)

    # 100 errors in the first minute: at the threshold, not over it
    for i in range(100):
        w.logs.send(i * 0.5, "ERROR")
    w.sync(50)
    assert w.states("payment") == []
    # the 101st crosses it
    crossing = w.logs.send(55, "ERROR")
    w.logs.flush()
    assert w.wait_states("payment", 1) == [("FIRING", 101.0)]
    fired = w.receiver.bodies("/payment")[0]["alerts"][0]
    assert crossing in [s["message"] for s in fired["samples"]]
    assert fired["window"]["end"] == format_ts(w.logs.t0 + timedelta(minutes=1))
    # quiet minutes: once the 5-minute window no longer holds the burst, it resolves, once
    for t in range(60, 6 * 60 + 15, 5):
        w.logs.send(t, "INFO")
    w.sync(6 * 60 + 15)
    assert w.wait_states("payment", 2) == [("FIRING", 101.0), ("RESOLVED", 0.0)]

    # `for`: 3 errors in minute 7 only make it PENDING; minute 8 holds again and it fires
    for t in (7 * 60 + 1, 7 * 60 + 2, 7 * 60 + 3):
        w.logs.send(t, "ERROR", service="checkout")
    w.sync(7 * 60 + 10)
    assert w.states("checkout") == []
    for t in (8 * 60 + 1, 8 * 60 + 2, 8 * 60 + 3):
        w.logs.send(t, "ERROR", service="checkout")
    w.logs.flush()
    assert w.wait_states("checkout", 1) == [("FIRING", 3.0)]
    pending = w.http.get("/v1/alerts/history", params={"state": "PENDING"}).json()
    assert [h["rule_name"] for h in pending] == ["checkout"]

    # cooldown: fires in minute 10, resolves in 11, fires again in 12 inside the 10-minute cooldown
    for minute, level in ((10, "ERROR"), (11, "INFO"), (12, "ERROR"), (13, "INFO")):
        for s in (1, 2, 3):
            w.logs.send(minute * 60 + s, level, service="search")
    w.sync(14 * 60 + 5)
    time.sleep(2)
    assert [s for s, _ in w.states("search")] == ["FIRING", "RESOLVED"]
    history = w.http.get("/v1/alerts/history", params={"state": "FIRING"}).json()
    search_firings = [h["notify"] for h in history if h["rule_name"] == "search"]
    assert sorted(search_firings) == [False, True]  # the second firing is recorded, not sent

    # a rule created now, through the API, applies to the next records without a restart
    w.rule("inventory", filter={"services": ["inventory"], "levels": ["ERROR"]}, window="1m", threshold=0)
    time.sleep(3)  # the job re-reads rules every second here
    w.logs.send(15 * 60, "ERROR", service="inventory")
    w.logs.flush()
    assert w.wait_states("inventory", 1) == [("FIRING", 1.0)]
    assert [s for s, _ in w.states("payment")] == ["FIRING", "RESOLVED"]


def test_a_restart_mid_window_neither_loses_nor_repeats_a_firing(world: World) -> None:
    w = world
    w.rule("payment", **PAYMENT_RULE)
    w.job.start()
    w.sync(-60)
    for i in range(60):
        w.logs.send(i * 0.5, "ERROR")
    w.sync(40)
    time.sleep(3)  # a checkpoint holds the 60 errors
    w.job.kill()

    w.job.start()  # resumes from the last checkpoint
    w.sync(41)
    assert w.states("payment") == []
    for i in range(41):
        w.logs.send(42 + i * 0.25, "ERROR")
    w.logs.flush()
    assert w.wait_states("payment", 1) == [("FIRING", 101.0)]
    w.job.kill()  # right after firing: the checkpoint it restarts from may predate the firing

    w.job.start()
    w.sync(58)
    for t in range(60, 6 * 60 + 15, 5):
        w.logs.send(t, "INFO")
    w.sync(6 * 60 + 15)
    assert w.wait_states("payment", 2) == [("FIRING", 101.0), ("RESOLVED", 0.0)]
    time.sleep(2)
    assert w.states("payment") == [("FIRING", 101.0), ("RESOLVED", 0.0)]
