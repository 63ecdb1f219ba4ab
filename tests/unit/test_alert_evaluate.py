"""Window evaluation and the alert state machine, driven through AlertEngine (no Flink)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from core.alerts.engine import AlertEngine
from core.alerts.evaluate import AlertEvent, GroupEvaluator, State
from tests.unit.alert_support import ms, record, rule

pytestmark = pytest.mark.unit


def states(events: list[AlertEvent]) -> list[tuple[str, bool]]:
    return [(str(e.state), e.notify) for e in events]


def feed(engine: AlertEngine, times: Iterable[float], **kw: object) -> list[AlertEvent]:
    out: list[AlertEvent] = []
    for t in times:
        out += engine.process(record(t, **kw))  # type: ignore[arg-type]
    return out


def test_fires_on_the_record_that_crosses_the_threshold_and_resolves_when_it_falls_back() -> None:
    engine = AlertEngine([rule()], lateness_ms=5_000)
    # 100 errors in the first minute: at the threshold, not over it
    assert feed(engine, [i * 0.5 for i in range(100)]) == []
    crossing = record(55)
    (fired,) = engine.process(crossing)
    assert (fired.state, fired.notify, fired.value) == (State.FIRING, True, 101.0)
    assert fired.group == {} and fired.window_end_ms == ms(60)
    assert fired.samples[-1]["log_id"] == crossing.log_id
    # more errors in the same episode fire nothing more
    assert feed(engine, [70, 80, 90]) == []
    # quiet INFO traffic moves the watermark; the window drops back under 101 at 5 minutes
    events = feed(engine, list(range(100, 420, 10)), level="INFO")
    assert states(events) == [("RESOLVED", True)]
    assert events[0].window_end_ms == ms(360) and events[0].value == 3.0


def test_a_count_at_the_threshold_does_not_fire() -> None:
    engine = AlertEngine([rule(threshold=5)])
    events = feed(engine, [1, 2, 3, 4, 5]) + feed(engine, range(10, 700, 10), level="INFO")
    assert events == []


def test_for_holds_the_alert_pending_for_n_evaluations() -> None:
    r = rule(window="1m", slide="1m", threshold=2, for_evaluations=3)
    engine = AlertEngine([r])
    events = feed(engine, [1, 2, 3])  # minute 0: 3 > 2
    assert states(events) == [("PENDING", False)]
    events = feed(engine, [61, 62, 63])  # minute 1
    assert events == []
    events = feed(engine, [121, 122, 123])  # minute 2: third evaluation in a row
    assert states(events) == [("FIRING", True)]
    assert events[0].since_ms == ms(60)


def test_pending_that_stops_holding_goes_back_to_ok_without_firing() -> None:
    r = rule(window="1m", slide="1m", threshold=2, for_evaluations=3)
    engine = AlertEngine([r])
    events = feed(engine, [1, 2, 3]) + feed(engine, [61]) + feed(engine, range(125, 300, 20), level="INFO")
    assert states(events) == [("PENDING", False), ("OK", False)]


def test_cooldown_fires_a_group_once_and_sends_the_held_back_firing_after_it() -> None:
    r = rule(window="1m", slide="1m", threshold=2, cooldown="10m")
    engine = AlertEngine([r])
    first = feed(engine, [1, 2, 3])
    assert states(first) == [("FIRING", True)]
    # minute 1 is quiet: resolved; minute 2 fires again inside the cooldown: no notification
    flap = feed(engine, [70], level="INFO") + feed(engine, [121, 122, 123])
    assert states(flap) == [("RESOLVED", True), ("FIRING", False)]
    # still firing every minute; at minute 11 (10 minutes after the notified firing) it is sent
    later: list[AlertEvent] = []
    for minute in range(3, 12):
        later += feed(engine, [minute * 60 + 1, minute * 60 + 2, minute * 60 + 3])
    assert states(later) == [("FIRING", True)]
    assert later[0].window_end_ms == ms(11 * 60)


def test_a_quiet_window_still_open_when_the_next_burst_arrives_resolves_first() -> None:
    r = rule(window="1m", slide="1m", threshold=2, cooldown="10m")
    engine = AlertEngine([r], lateness_ms=10_000)
    events = feed(engine, [1, 2, 3]) + feed(engine, [65, 118], level="INFO")
    # minute 1 was quiet, but the watermark (108 s) has not closed it when minute 2's errors come
    events += feed(engine, [121, 122, 123]) + feed(engine, [200], level="INFO")
    assert states(events) == [("FIRING", True), ("RESOLVED", True), ("FIRING", False)]
    assert [e.window_end_ms for e in events] == [ms(60), ms(120), ms(180)]


def test_a_held_back_firing_resolves_silently() -> None:
    r = rule(window="1m", slide="1m", threshold=2, cooldown="10m")
    engine = AlertEngine([r])
    events = feed(engine, [1, 2, 3]) + feed(engine, [70], level="INFO") + feed(engine, [121, 122, 123])
    events += feed(engine, range(190, 400, 30), level="INFO")
    assert states(events) == [("FIRING", True), ("RESOLVED", True), ("FIRING", False), ("RESOLVED", False)]


def test_groups_fire_separately() -> None:
    engine = AlertEngine([rule(threshold=2, group_by=["host"])])
    events = feed(engine, [1, 2, 3], host="web-1") + feed(engine, [4, 5], host="web-2")
    assert [e.group for e in events] == [{"host": "web-1"}]
    events = feed(engine, [6], host="web-2")
    assert [e.group for e in events] == [{"host": "web-2"}]


def test_state_survives_serialization_mid_window_without_losing_or_repeating() -> None:
    engine = AlertEngine([rule(threshold=4)])
    assert feed(engine, [1, 2, 3]) == []
    # what a checkpoint and restore do to each key's state
    engine.groups = {k: GroupEvaluator.from_bytes(v.to_bytes()) for k, v in engine.groups.items()}
    events = feed(engine, [4, 5])
    assert states(events) == [("FIRING", True)]
    engine.groups = {k: GroupEvaluator.from_bytes(v.to_bytes()) for k, v in engine.groups.items()}
    assert feed(engine, [6, 7, 8]) == []


def test_replaying_the_same_records_gives_the_same_event_ids() -> None:
    def run() -> list[str]:
        engine = AlertEngine([rule(threshold=2)], lateness_ms=1000)
        events = feed(engine, [1, 2, 3]) + feed(engine, range(100, 500, 20), level="INFO")
        return [e.event_id for e in events]

    assert run() == run() and len(run()) == 2


def test_late_records_count_in_the_windows_still_open() -> None:
    engine = AlertEngine([rule(window="1m", slide="1m", threshold=2)], lateness_ms=10_000)
    feed(engine, [50, 51], level="INFO")
    events = feed(engine, [55, 58])  # minute 0 has 2
    events += feed(engine, [65], level="INFO")  # watermark 55: minute 0 still open
    events += feed(engine, [59])  # late but within the lateness: counted, minute 0 has 3
    assert states(events) == [("FIRING", True)]
    feed(engine, [200], level="INFO")  # watermark far past minute 0
    feed(engine, [10])
    (group,) = engine.groups.values()
    assert group.late == 1


def test_rate_is_decided_when_the_window_closes() -> None:
    r = rule(window="1m", slide="1m", aggregation="rate", threshold=0.5)
    engine = AlertEngine([r])
    events = feed(engine, [1, 2, 3])  # 3 errors: a rate of 1.0 so far, but the minute is not over
    events += feed(engine, [10, 11, 12, 13], level="INFO")  # 3 / 7
    assert events == []
    events = feed(engine, [61, 62], level="INFO")
    assert events == []  # 3/7 < 0.5
    events = feed(engine, [63, 64, 65]) + feed(engine, [121], level="INFO")  # minute 1: 3 / 5
    assert states(events) == [("FIRING", True)] and events[0].value == pytest.approx(0.6)


def test_count_distinct_counts_values() -> None:
    r = rule(aggregation="count_distinct", field="attributes.user", threshold=2)
    engine = AlertEngine([r])
    events = feed(engine, [1, 2], attributes={"user": "u1"}) + feed(engine, [3], attributes={"user": "u2"})
    assert events == []
    (fired,) = feed(engine, [4], attributes={"user": "u3"})
    assert fired.value == 3.0


def test_a_lower_bound_fires_when_records_stop() -> None:
    r = rule(
        window="1m",
        slide="1m",
        comparison="<",
        threshold=2,
        filter={"services": ["payment-service"], "levels": ["INFO"]},
    )
    engine = AlertEngine([r])
    events = feed(engine, [1, 2, 3], level="INFO") + feed(engine, [61, 62, 63], level="INFO")
    assert events == []
    events = feed(engine, [130, 200], level="ERROR")  # no INFO in minute 2
    assert states(events) == [("FIRING", True)]
    assert events[0].value == 0.0


def test_a_deleted_rule_resolves_what_it_had_firing() -> None:
    engine = AlertEngine([rule(threshold=2)])
    feed(engine, [1, 2, 3])
    engine.set_rules([rule(id="other", threshold=2)])
    events = feed(engine, [400], service="auth")
    assert states(events) == [("RESOLVED", True)]
    assert "deleted" in events[0].reason
    assert engine.groups == {}


def test_new_pattern_fires_for_a_pattern_the_service_never_logged() -> None:
    r = rule(
        type="new_pattern", window="1m", slide="1m", threshold=2, filter={"services": ["payment-service"]}
    )
    engine = AlertEngine([r])
    # the first minute is the service's history: its patterns are known, and new ones are not alerts yet
    events = feed(engine, [1, 2, 3, 4], pattern_id="old") + feed(engine, [5, 6, 7], pattern_id="early")
    events += feed(engine, [20, 30, 40], level="INFO", pattern_id="chatty")
    assert events == []
    # later: an old pattern erroring a lot is not new; a never-seen one is, from its third occurrence
    events = feed(engine, [70, 71, 72, 73], pattern_id="old")
    events += feed(engine, [74, 75], pattern_id="fresh")
    assert events == []
    (fired,) = feed(engine, [76], pattern_id="fresh")
    assert fired.state is State.FIRING
    assert fired.group == {"service": "payment-service", "pattern_id": "fresh"}
    # a pattern seen at INFO before is not new when it turns up at ERROR
    assert feed(engine, [77, 78, 79], pattern_id="chatty") == []
    # once it is no longer new (its first sighting left the window), the alert resolves
    events = feed(engine, range(80, 200, 10), level="INFO", pattern_id="chatty")
    assert states(events) == [("RESOLVED", True)]
