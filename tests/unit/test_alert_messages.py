"""What the notifier records and sends: replay filtering and the three message formats."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from core.alerts.engine import AlertEngine
from core.alerts.evaluate import AlertEvent, State
from core.alerts.messages import Decision, GroupSeen, admit, after, email_text, slack_body, webhook_body
from core.alerts.notify import backoff_s
from core.query import parse
from tests.unit.alert_support import ms, record, rule

pytestmark = pytest.mark.unit

SEARCH = "http://strata.example/v1/search"


def event(state: State, end_s: float, notify: bool = True, eid: str | None = None) -> AlertEvent:
    return AlertEvent(
        event_id=eid or f"{state}-{end_s}-{notify}",
        tenant="acme",
        rule_id="r1",
        rule_name="payment errors",
        revision=1,
        severity="critical",
        state=state,
        notify=notify,
        group={"host": "web-1"},
        group_id="r1\x1fweb-1",
        value=101.0,
        comparison=">",
        threshold=100,
        window_start_ms=ms(end_s - 300),
        window_end_ms=ms(end_s),
        since_ms=ms(end_s),
    )


def run_through(events: list[AlertEvent]) -> list[tuple[str, bool]]:
    seen: GroupSeen | None = None
    out = []
    for e in events:
        d = admit(seen, e)
        if d.record:
            out.append((str(e.state), d.notify))
            seen = after(seen, e, d)
    return out


def test_a_replayed_firing_is_neither_recorded_nor_sent_twice() -> None:
    fired = event(State.FIRING, 60)
    # after a restore the job may fire again for a later window of the same episode
    assert run_through([fired, fired, event(State.FIRING, 120), event(State.RESOLVED, 360)]) == [
        ("FIRING", True),
        ("RESOLVED", True),
    ]


def test_stale_and_orphan_events_are_dropped() -> None:
    assert run_through([event(State.FIRING, 120), event(State.FIRING, 60, eid="older")]) == [("FIRING", True)]
    assert run_through([event(State.FIRING, 60), event(State.RESOLVED, 120), event(State.RESOLVED, 180)]) == [
        ("FIRING", True),
        ("RESOLVED", True),
    ]


def test_a_cooldown_held_firing_is_sent_once_when_the_job_says_so() -> None:
    events = [
        event(State.FIRING, 60, notify=False),
        event(State.FIRING, 660, notify=True),
        event(State.FIRING, 720, notify=True),
        event(State.RESOLVED, 780, notify=True),
    ]
    assert run_through(events) == [("FIRING", False), ("FIRING", True), ("RESOLVED", True)]


def test_a_resolution_is_sent_only_when_its_firing_was() -> None:
    events = [event(State.FIRING, 60, notify=False), event(State.RESOLVED, 120, notify=True)]
    assert run_through(events) == [("FIRING", False), ("RESOLVED", False)]
    assert admit(None, event(State.PENDING, 60)) == Decision(True, False)


def fired_events() -> list[AlertEvent]:
    engine = AlertEngine([rule(threshold=2, group_by=["host"])])
    out: list[AlertEvent] = []
    for host in ("web-1", "web-2"):
        for t in (1, 2, 3):
            out += engine.process(record(t, host=host, message=f"card declined for order {t}"))
    return out


def test_webhook_body_carries_rule_groups_values_window_samples_and_link() -> None:
    events = fired_events()
    r = rule(threshold=2, group_by=["host"])
    body = webhook_body(r, events, SEARCH)
    assert body["state"] == "FIRING" and body["rule"]["name"] == "payment errors"
    assert body["rule"]["window_s"] == 300 and body["rule"]["threshold"] == 2
    first = body["alerts"][0]
    assert [a["group"] for a in body["alerts"]] == [{"host": "web-1"}, {"host": "web-2"}]
    assert first["value"] == 3.0 and first["window"] == {
        "start": "2025-03-01T11:56:00.000000Z",
        "end": "2025-03-01T12:01:00.000000Z",
    }
    assert first["samples"][-1]["message"] == "card declined for order 3"
    assert first["samples"][-1]["timestamp"] == "2025-03-01T12:00:03.000000Z"
    link = urlparse(first["link"])
    params = parse_qs(link.query)
    assert link.path == "/v1/search" and params["from"] == ["2025-03-01T11:56:00.000000Z"]
    assert 'host:"web-1"' in params["q"][0] and 'service:"payment-service"' in params["q"][0]
    parse(params["q"][0])  # the link's query is valid query language


def test_slack_and_email_say_the_same_in_text() -> None:
    events = fired_events()
    r = rule(threshold=2, group_by=["host"])
    text = slack_body(r, events, SEARCH)["text"]
    assert "[FIRING] payment errors (2 groups)" in text and "host=web-1: 3 > 2 in 300s" in text
    assert "|logs>" in text
    subject, body = email_text(r, events, SEARCH)
    assert subject == "Strata alert: [FIRING] payment errors (2 groups) — warning"
    assert "host=web-2: 3 > 2 in 300s" in body and "card declined for order 3" in body


def test_backoff_doubles_up_to_the_cap() -> None:
    assert 0.8 <= backoff_s(1, 300) <= 1.2
    assert 6.4 <= backoff_s(4, 300) <= 9.6
    assert backoff_s(30, 300) <= 360
