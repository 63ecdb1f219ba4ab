"""Where a running job gets its rules: a fixed list (tests) or PostgreSQL, re-read periodically.

Each Flink operator that needs rules holds one source and calls :meth:`start` in ``open()``. The
PostgreSQL source reads once at start (failing the task if it cannot, so Flink restarts it rather
than evaluate with no rules, which would resolve every firing alert), then re-reads on a daemon
thread and swaps the whole set at once. A failed re-read keeps the last good set: a PostgreSQL
outage pauses rule changes, never alerting.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from core.alerts.matching import RuleMatcher
from core.alerts.rules import Rule

log = logging.getLogger(__name__)


class RuleSource:
    """The current rules, as a matcher (the fan-out) and by id (the evaluation)."""

    def __init__(self) -> None:
        self._matcher = RuleMatcher(())
        self._signature: tuple[tuple[str, int], ...] = ()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        return None

    @property
    def matcher(self) -> RuleMatcher:
        return self._matcher

    def get(self, rule_id: str) -> Rule | None:
        return self._matcher.rules.get(rule_id)

    def _install(self, rules: list[Rule]) -> bool:
        signature = tuple(sorted((r.id, r.revision) for r in rules if r.enabled))
        if signature == self._signature:
            return False
        self._matcher = RuleMatcher(rules)  # one assignment: readers see the old or the new set
        self._signature = signature
        return True

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to the Python workers before start(): no thread or compiled query travels.
        state = dict(self.__dict__)
        state["_matcher"] = RuleMatcher(())
        state["_signature"] = ()
        state.pop("_thread", None)
        state.pop("_stopped", None)
        return state


class StaticRules(RuleSource):
    def __init__(self, rules: list[Rule]) -> None:
        super().__init__()
        self._rules = [r.model_dump(mode="json") for r in rules]

    def start(self) -> None:
        self._install([Rule.model_validate(r) for r in self._rules])


class PostgresRules(RuleSource):
    def __init__(self, dsn: str, refresh_s: float) -> None:
        super().__init__()
        self.dsn = dsn
        self.refresh_s = refresh_s

    def start(self) -> None:
        from connectors.postgres.alerts import load_rules

        self._install(load_rules(self.dsn))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alert-rules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        stopped = getattr(self, "_stopped", None)
        if stopped is not None:
            stopped.set()

    def _loop(self) -> None:
        from connectors.postgres.alerts import load_rules

        while not self._stopped.wait(self.refresh_s):
            started = time.monotonic()
            try:
                if self._install(load_rules(self.dsn)):
                    log.info(
                        "alert rules reloaded: %d enabled (%.0f ms)",
                        len(self._matcher),
                        (time.monotonic() - started) * 1000,
                    )
            except Exception as exc:
                log.warning("cannot reload alert rules, keeping the last ones: %s", exc)
