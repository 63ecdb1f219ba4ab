"""Alert state is bounded: high-cardinality grouping is refused when saved, and the groups a rule
and a tenant keep are capped at run time, the overflow counted and reported."""

from __future__ import annotations

import pytest

from core.alerts.caps import OVERFLOW_GROUP_ID, GroupCaps
from core.alerts.evaluate import State
from core.alerts.rules import Rule, group_by_refusal


@pytest.mark.parametrize(
    "group_by",
    [
        ["log_id"],
        ["service", "trace_id"],
        ["span_id"],
        ["attributes.request_id"],
        ["attributes.requestId"],
        ["attributes.http.correlation-id"],
        ["attributes.session_id"],
        ["attributes.uuid"],
    ],
)
def test_grouping_by_a_per_record_field_is_refused_with_the_reason(group_by: list[str]) -> None:
    refusal = group_by_refusal(group_by)
    assert refusal is not None
    assert repr(group_by[-1]) in refusal and "a value per record or request" in refusal


@pytest.mark.parametrize(
    "group_by", [[], ["service"], ["host", "level"], ["attributes.status"], ["attributes.user_type"]]
)
def test_bounded_fields_may_be_grouped_by(group_by: list[str]) -> None:
    assert group_by_refusal(group_by) is None


def rule(**update: object) -> Rule:
    return Rule.model_validate(
        {"id": "r1", "tenant": "acme", "name": "errors", "window": "1m", "slide": "30s", **update}
    )


def test_a_rule_keeps_at_most_its_cap_of_groups_and_counts_the_rest() -> None:
    caps = GroupCaps(per_rule=3, per_tenant=100)
    admitted = [caps.admit("r1", "acme", f"r1\x1fh{i}", existing=False) for i in range(10)]
    assert admitted == [True] * 3 + [False] * 7
    assert caps.admit("r1", "acme", "r1\x1fh0", existing=False), "a kept group goes on"
    assert caps.admit("r2", "acme", "r2\x1fh9", existing=False), "another rule has its own cap"
    caps.release("r1", "acme", "r1\x1fh1")
    assert caps.admit("r1", "acme", "r1\x1fh7", existing=False), "a group that went quiet frees a place"
    assert caps.total_overflow["r1"] == 7


def test_a_tenant_keeps_at_most_its_cap_across_its_rules() -> None:
    caps = GroupCaps(per_rule=100, per_tenant=4)
    for r in ("r1", "r2"):
        for i in range(3):
            caps.admit(r, "acme", f"{r}\x1fh{i}", existing=False)
    assert sum(len(g) for g in caps.groups.values()) == 4
    assert caps.admit("r3", "globex", "r3\x1fh0", existing=False), "another tenant is not affected"


def test_groups_kept_from_before_a_restart_are_admitted_and_counted() -> None:
    caps = GroupCaps(per_rule=2, per_tenant=100)
    assert all(caps.admit("r1", "acme", f"k{i}", existing=True) for i in range(3))
    assert not caps.admit("r1", "acme", "new", existing=False)


def test_the_cap_is_shared_between_the_jobs_subtasks() -> None:
    caps = GroupCaps(per_rule=10, per_tenant=25, parallelism=4)
    assert (caps.per_rule, caps.per_tenant) == (3, 7)


def test_the_overflow_is_said_in_the_rules_history_once_per_slide_and_notifies_no_one() -> None:
    caps = GroupCaps(per_rule=1, per_tenant=100)
    r = rule()
    caps.admit("r1", "acme", "a", existing=False)
    assert caps.overflow_event(r, 1_000) is None, "nothing refused yet"
    for i in range(5):
        caps.admit("r1", "acme", f"b{i}", existing=False)
    event = caps.overflow_event(r, 61_000)
    assert event is not None
    assert (event.state, event.notify, event.group_id) == (State.OK, False, OVERFLOW_GROUP_ID)
    assert event.value == 5 and event.threshold == 1
    assert "5 records of new groups were not evaluated" in event.reason
    caps.admit("r1", "acme", "c", existing=False)
    assert caps.overflow_event(r, 70_000) is None, "at most once per slide"
    later = caps.overflow_event(r, 91_000)
    assert later is not None and later.value == 1 and later.event_id != event.event_id


def test_every_overflow_report_reaches_the_history_and_none_notifies() -> None:
    from core.alerts.messages import admit, after

    caps = GroupCaps(per_rule=1, per_tenant=100)
    r = rule()
    caps.admit("r1", "acme", "a", existing=False)
    seen = None
    for at_ms in (60_000, 120_000, 180_000):
        caps.admit("r1", "acme", f"new-{at_ms}", existing=False)
        event = caps.overflow_event(r, at_ms)
        assert event is not None
        decision = admit(seen, event)
        assert decision.record and not decision.notify
        seen = after(seen, event, decision)
    assert not admit(seen, event).record, "a replayed report is recorded once"
