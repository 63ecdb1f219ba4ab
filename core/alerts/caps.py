"""Bounds on alert state: how many groups one rule, and one tenant, may keep at once.

A rule grouped by a field with a value per request (an id, a user, an address) would otherwise
make a group, with its windows in keyed state, for every record. The API refuses the obvious
cases when a rule is saved (:func:`core.alerts.rules.group_by_refusal`); these caps bound the rest
at run time. A point for a new group past a cap is not evaluated; it is counted, and the count is
reported in the rule's history as an ``OK`` entry of the group ``overflow`` that notifies no one
(:meth:`GroupCaps.overflow_event`), at most once per slide of the rule.

The job's evaluating operator runs in parallel, each subtask holding the groups whose keys hash
to it; each keeps its share of the cap (``ceil(cap / parallelism)``), so the job as a whole keeps
about the cap.
"""

from __future__ import annotations

import math
from collections import Counter

from core.alerts.evaluate import OVERFLOW_GROUP_ID, AlertEvent, State, event_id
from core.alerts.rules import Rule

__all__ = ["OVERFLOW_GROUP_ID", "GroupCaps"]


class GroupCaps:
    """The groups one subtask keeps per rule and per tenant.

    >>> caps = GroupCaps(per_rule=2, per_tenant=10)
    >>> [caps.admit("r1", "acme", k, existing=False) for k in ("a", "b", "c", "a")]
    [True, True, False, True]
    >>> caps.overflow["r1"]
    1
    """

    def __init__(self, per_rule: int, per_tenant: int, parallelism: int = 1) -> None:
        share = max(parallelism, 1)
        self.per_rule = max(math.ceil(per_rule / share), 1)
        self.per_tenant = max(math.ceil(per_tenant / share), 1)
        self.groups: dict[str, set[str]] = {}
        self.tenants: Counter[str] = Counter()
        self.overflow: Counter[str] = Counter()  # refused since the last report, per rule
        self.total_overflow: Counter[str] = Counter()
        self.reported_ms: dict[str, int] = {}

    def admit(self, rule_id: str, tenant: str, key: str, *, existing: bool) -> bool:
        """Whether the group ``key`` may be evaluated. A group already in state (``existing``: kept
        from before a restart) always is, and is counted from then on."""
        groups = self.groups.setdefault(rule_id, set())
        if key in groups:
            return True
        if not existing and (len(groups) >= self.per_rule or self.tenants[tenant] >= self.per_tenant):
            self.overflow[rule_id] += 1
            self.total_overflow[rule_id] += 1
            return False
        groups.add(key)
        self.tenants[tenant] += 1
        return True

    def release(self, rule_id: str, tenant: str, key: str) -> None:
        """The group's state is gone (it went quiet, or its rule was removed)."""
        groups = self.groups.get(rule_id)
        if groups is not None and key in groups:
            groups.discard(key)
            self.tenants[tenant] -= 1
            if not groups:
                del self.groups[rule_id]

    def overflow_event(self, rule: Rule, at_ms: int) -> AlertEvent | None:
        """A history entry saying how many points of new groups the rule refused since the last
        one, at most once per slide of event time; None when there is nothing (new) to say."""
        refused = self.overflow.get(rule.id, 0)
        slide_ms = int(rule.slide or 60) * 1000
        if not refused or at_ms < self.reported_ms.get(rule.id, -(2**62)) + slide_ms:
            return None
        self.reported_ms[rule.id] = at_ms
        self.overflow[rule.id] = 0
        bucket = at_ms - at_ms % slide_ms
        cap = self.per_rule
        return AlertEvent(
            event_id=event_id(rule.id, OVERFLOW_GROUP_ID, "OK", bucket, False),
            tenant=rule.tenant,
            rule_id=rule.id,
            rule_name=rule.name,
            revision=rule.revision,
            severity=str(rule.severity),
            state=State.OK,
            notify=False,
            group={"overflow": str(refused)},
            group_id=OVERFLOW_GROUP_ID,
            value=float(refused),
            comparison=">",
            threshold=float(cap),
            window_start_ms=bucket,
            window_end_ms=bucket + slide_ms,
            since_ms=None,
            reason=(
                f"group cap reached: {refused} records of new groups were not evaluated (at most "
                f"{self.per_rule} groups per rule and {self.per_tenant} per tenant on each of the "
                "job's subtasks); group by a field with fewer values"
            ),
        )
