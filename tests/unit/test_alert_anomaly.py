"""Anomaly rules on synthetic series, driven through AlertEngine (the job's logic without Flink).

Each series is a count of records per minute with seeded noise. A heartbeat from another service
every minute moves the watermark, as other traffic does in the job, so windows in which the
watched series has no records at all are still evaluated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from core.alerts.anomaly import History
from core.alerts.engine import AlertEngine
from core.alerts.evaluate import AlertEvent, GroupEvaluator, State
from core.alerts.messages import slack_body, webhook_body
from core.alerts.rules import Rule, RuleSpec
from tests.unit.alert_support import ms, record, rule

pytestmark = pytest.mark.unit

HOUR_MIN = 60
DAY_MIN = 24 * 60


def anomaly(rule_id: str = "r1", **spec: Any) -> Rule:
    base: dict[str, Any] = {"id": rule_id, "type": "anomaly", "threshold": 0, "window": "5m", "slide": "1m"}
    return rule(**{**base, **spec})


def noisy(mean: float, rng: random.Random) -> int:
    """A count around ``mean`` with Poisson-sized noise (normal approximation)."""
    return max(0, round(rng.gauss(mean, math.sqrt(max(mean, 1.0)))))


def feed(
    engine: AlertEngine,
    first_minute: int,
    minutes: int,
    per_minute: Callable[[int], int],
    *,
    level: str = "ERROR",
    heartbeat_every: int = 1,
) -> list[AlertEvent]:
    """``per_minute(m)`` records of payment-service in minute ``m``, at random seconds, and a
    heartbeat from another service every ``heartbeat_every`` minutes."""
    rng = random.Random(first_minute)
    events: list[AlertEvent] = []
    for m in range(first_minute, first_minute + minutes):
        for at in sorted(rng.uniform(0, 59) for _ in range(per_minute(m))):
            events += engine.process(record(m * 60 + at, level=level))
        if m % heartbeat_every == 0:
            events += engine.process(record(m * 60 + 59.5, service="heartbeat", level="INFO"))
    return events


def firings(events: list[AlertEvent], rule_id: str = "r1") -> list[AlertEvent]:
    return [e for e in events if e.rule_id == rule_id and e.state is State.FIRING]


def test_a_spike_is_caught_within_two_evaluation_windows_and_resolves_after_it() -> None:
    engine = AlertEngine([anomaly()], lateness_ms=5_000)
    rng = random.Random(1)
    steady = feed(engine, 0, 3 * HOUR_MIN, lambda m: noisy(20, rng))
    assert steady == []
    spike_min = 3 * HOUR_MIN
    events = feed(engine, spike_min, 2, lambda m: noisy(100, rng))
    (fired,) = events
    assert fired.state is State.FIRING and fired.notify
    # the window that holds the spike's first minute, or the next
    assert fired.window_end_ms <= ms((spike_min + 2) * 60)
    assert fired.comparison == ">" and fired.value is not None and fired.value > fired.threshold
    assert fired.threshold < 200 and "expected 1" in fired.reason and "recent windows" in fired.reason
    assert fired.samples
    after = feed(engine, spike_min + 2, 30, lambda m: noisy(20, rng))
    assert [str(e.state) for e in after] == ["RESOLVED"]
    assert after[0].window_end_ms <= ms((spike_min + 2 + 6) * 60)


def test_a_day_of_steady_noisy_traffic_raises_none_at_the_default_sensitivity() -> None:
    # The same series against a rule that calls 1.5 spreads unusual: the band is tight enough to
    # fire on this noise, so the silence of the default rule is its sensitivity, not deafness.
    default = anomaly(direction="both")
    touchy = anomaly("touchy", direction="both", sensitivity=1.5)
    engine = AlertEngine([default, touchy], lateness_ms=5_000)
    rng = random.Random(7)
    events = feed(engine, 0, DAY_MIN, lambda m: noisy(15, rng))
    assert firings(events, "r1") == []
    assert len(firings(events, "touchy")) >= 5


def test_a_daily_cycle_is_expected_once_previous_days_are_known() -> None:
    # An hourly series that swings from 60 to 540 records an hour, over four days. Against the last
    # 30 hours alone, such a swing needs a band so wide that it would miss the test at the end.
    r = anomaly(direction="both", window="1h", slide="1h")
    engine = AlertEngine([r], lateness_ms=5_000)
    rng = random.Random(3)

    def cycle(m: int) -> int:
        return noisy(5 + 4 * math.sin(2 * math.pi * (m % DAY_MIN) / DAY_MIN), rng)

    first_day = feed(engine, 0, DAY_MIN, cycle)
    later = feed(engine, DAY_MIN, 3 * DAY_MIN - 6 * HOUR_MIN, cycle)
    assert later == [] and first_day == []
    # day 4, 18:00, the trough (60 an hour): the day's average volume is an anomaly at this hour
    trough = 4 * DAY_MIN - 6 * HOUR_MIN
    events = feed(engine, trough, HOUR_MIN, lambda m: noisy(5, rng))
    events += feed(engine, trough + HOUR_MIN, 1, cycle)
    (fired,) = firings(events)
    assert fired.window_end_ms == ms((trough + HOUR_MIN) * 60)
    assert fired.comparison == ">" and fired.threshold < 150
    assert "the same time on 3 previous days" in fired.reason


def test_a_volume_that_drops_to_nothing_fires_down_until_it_returns() -> None:
    volume = {"services": ["payment-service"]}
    down = anomaly(direction="down", filter=volume)
    up = anomaly("up", direction="up", filter=volume)
    engine = AlertEngine([down, up], lateness_ms=5_000)
    rng = random.Random(11)
    assert feed(engine, 0, 3 * HOUR_MIN, lambda m: noisy(30, rng), level="INFO") == []
    outage = 3 * HOUR_MIN
    events = feed(engine, outage, 2 * HOUR_MIN, lambda m: 0)
    (fired,) = events
    assert (fired.rule_id, fired.state, fired.comparison) == ("r1", State.FIRING, "<")
    assert fired.window_end_ms <= ms((outage + 3) * 60)
    # two hours of windows without a single record: still firing, the silence did not become normal
    (group,) = (g for k, g in engine.groups.items() if k.startswith("r1"))
    assert group.subs[""].status.state is State.FIRING
    assert group.subs[""].last_eval_ms == ms((outage + 2 * HOUR_MIN - 1) * 60)  # the watermark lags 5 s
    back = feed(engine, outage + 2 * HOUR_MIN, 10, lambda m: noisy(30, rng), level="INFO")
    # the return of traffic resolves the outage, and is no surge for the upward rule
    assert [(e.rule_id, str(e.state)) for e in back] == [("r1", "RESOLVED")]


def test_a_level_held_for_a_day_becomes_the_new_normal_and_fires_no_more() -> None:
    # A service retired for good: the alert fires, holds for a day, then the history starts again
    # from the silence, and the days that remember its traffic do not fire it again.
    engine = AlertEngine([anomaly(direction="down", window="1h", slide="1h")], lateness_ms=5_000)
    rng = random.Random(6)
    feed(engine, 0, 13 * HOUR_MIN, lambda m: noisy(3, rng), heartbeat_every=10)
    events = feed(engine, 13 * HOUR_MIN, 9 * DAY_MIN, lambda m: 0, heartbeat_every=10)
    assert [(str(e.state), (e.window_end_ms - ms(0)) // 3_600_000) for e in events] == [
        ("FIRING", 14),
        ("RESOLVED", 39),  # a day after it began, at the first evaluation of the new series
    ]
    assert events[1].reason == "learning its level: 1 of 12 evaluations seen"
    assert not any(k.startswith("r1") for k in engine.groups)  # silent for 8 days: forgotten


def test_no_firing_before_the_minimum_history() -> None:
    engine = AlertEngine([anomaly(min_history="2h")])
    rng = random.Random(5)
    events = feed(engine, 0, 90, lambda m: noisy(10, rng))
    events += feed(engine, 90, 2, lambda m: 200)  # 1.5 h in: not enough history to judge
    assert events == []
    events = feed(engine, 92, 40, lambda m: noisy(10, rng))
    events += feed(engine, 132, 2, lambda m: 200)
    assert [str(e.state) for e in firings(events)] == ["FIRING"]


def test_for_evaluations_and_cooldown_apply_as_to_threshold_rules() -> None:
    engine = AlertEngine([anomaly(for_evaluations=3, cooldown="1h", window="1m")])
    rng = random.Random(9)
    assert feed(engine, 0, 2 * HOUR_MIN, lambda m: noisy(20, rng)) == []
    events = feed(engine, 120, 4, lambda m: 150) + feed(engine, 124, 3, lambda m: noisy(20, rng))
    assert [(str(e.state), e.notify) for e in events] == [
        ("PENDING", False),
        ("FIRING", True),
        ("RESOLVED", True),
    ]
    events = feed(engine, 127, 4, lambda m: 150) + feed(engine, 131, 3, lambda m: noisy(20, rng))
    assert [(str(e.state), e.notify) for e in events] == [
        ("PENDING", False),
        ("FIRING", False),  # inside the hour's cooldown
        ("RESOLVED", False),
    ]


def test_state_serialises_mid_stream_and_stays_bounded() -> None:
    def run(checkpoint: bool) -> tuple[list[str], int]:
        engine = AlertEngine([anomaly(direction="both", window="10m", slide="5m")], lateness_ms=5_000)
        rng = random.Random(2)
        events: list[AlertEvent] = []
        for day in range(9):
            events += feed(
                engine, day * DAY_MIN, DAY_MIN, lambda m: 0 if m % 7 else noisy(4, rng), heartbeat_every=5
            )
            if checkpoint:  # what a checkpoint and a restore do to every key's state
                engine.groups = {k: GroupEvaluator.from_bytes(v.to_bytes()) for k, v in engine.groups.items()}
        (group,) = engine.groups.values()
        history = group.subs[""].learnt()
        assert len(history.days) <= 8 and len(history.recent) <= 240
        return [e.event_id for e in events], len(group.to_bytes())

    restored, size = run(True)
    straight, _ = run(False)
    assert restored == straight
    assert size < 40_000


def test_a_silent_group_is_forgotten_after_its_seasonal_history() -> None:
    engine = AlertEngine([anomaly(direction="up", window="1h", slide="1h")])
    rng = random.Random(4)
    feed(engine, 0, 12 * HOUR_MIN, lambda m: noisy(3, rng))
    assert any(k.startswith("r1") for k in engine.groups)
    for day in range(9):  # only the heartbeat: the watched service is gone
        feed(engine, 12 * HOUR_MIN + day * DAY_MIN, DAY_MIN, lambda m: 0)
    assert not any(k.startswith("r1") for k in engine.groups)


def test_a_notification_says_what_was_expected() -> None:
    r = anomaly()
    engine = AlertEngine([r], lateness_ms=5_000)
    rng = random.Random(1)
    feed(engine, 0, 2 * HOUR_MIN, lambda m: noisy(20, rng))
    (fired,) = feed(engine, 120, 1, lambda m: 200)
    (line,) = [t for t in slack_body(r, [fired], "http://x/search")["text"].splitlines() if t.startswith("•")]
    assert f"{fired.value:g} > {fired.threshold:g} in 300s (expected " in line
    body = webhook_body(r, [fired], "http://x/search")
    assert body["rule"]["type"] == "anomaly" and body["rule"]["direction"] == "up"
    assert body["alerts"][0]["reason"].startswith("expected ")


# -- the rule model ------------------------------------------------------------------------------


def test_an_anomaly_rule_gets_its_defaults() -> None:
    spec = RuleSpec.model_validate({"name": "error surge", "type": "anomaly", "window": "5m"})
    assert (spec.direction, spec.sensitivity, spec.min_history) == ("up", 5.0, 3600)
    assert spec.monotone  # an upward count may fire on the record that crosses the band
    hourly = RuleSpec.model_validate({"name": "r", "type": "anomaly", "window": "1h", "slide": "1h"})
    assert hourly.min_history == 12 * 3600
    down = RuleSpec.model_validate({"name": "r", "type": "anomaly", "direction": "down"})
    assert not down.monotone
    assert RuleSpec.model_validate({"name": "r"}).direction is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "anomaly", "direction": "sideways"}, "'up', 'down' or 'both'"),
        ({"type": "anomaly", "sensitivity": 0.5}, "greater than or equal to 1"),
        ({"type": "anomaly", "sensitivity": 50}, "less than or equal to 20"),
        ({"type": "anomaly", "min_history": "5m"}, "at least 600s"),
        ({"type": "anomaly", "window": "1h", "min_history": "30m"}, "at least 3600s"),
        ({"type": "anomaly", "min_history": "60d"}, "at most 2592000s"),
        ({"type": "anomaly", "threshold": 100}, "no comparison or threshold"),
        ({"type": "anomaly", "comparison": "<"}, "no comparison or threshold"),
        ({"type": "anomaly", "aggregation": "rate", "filter": {"levels": ["ERROR"]}}, "must be count"),
        ({"direction": "up"}, "'direction' only applies to anomaly rules"),
        ({"type": "new_pattern", "sensitivity": 3}, "'sensitivity' only applies to anomaly rules"),
    ],
)
def test_impossible_anomaly_rules_are_refused_with_the_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RuleSpec.model_validate({"name": "r", **spec})
    assert message in str(info.value)


def test_a_stored_anomaly_rule_reads_back_the_same() -> None:
    r = anomaly(direction="both", sensitivity=3.5, min_history="3h")
    again = Rule.from_stored(r.id, r.tenant, r.revision, r.enabled, r.spec_dict())
    assert again == r


def test_the_same_time_baseline_is_used_once_half_the_recent_values_can_be_compared_with_it() -> None:
    history = History()
    hour = 3_600_000
    for h in range(48):  # hourly values, 100 by day and 10 by night, over two days
        end = ms(0) + (h + 1) * hour
        band = history.band(end, hour, hour, 5.0)
        assert band is None or band.days == (1 if h >= 24 + 15 else 0), h
        history.record(
            end, 100.0 if 6 <= (h + 1) % 24 < 18 else 10.0, band, ready=False, window_ms=hour, slide_ms=hour
        )
    band = history.band(ms(0) + 49 * hour, hour, hour, 5.0)  # T0 is noon: two days had this hour
    assert band is not None and band.describe().startswith(
        "expected 10 from the same time on 2 previous days"
    )
