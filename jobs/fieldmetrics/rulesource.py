"""Where the field metrics job gets its rules: a fixed list (tests) or PostgreSQL, re-read
periodically, as the alerts job gets its own (:mod:`jobs.alerts.rulesource`).

The PostgreSQL source reads once at start (failing the task if it cannot, so Flink restarts it),
then re-reads on a daemon thread and swaps the whole set at once; a failed re-read keeps the last
good set.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from core.fieldmetrics import FieldRules, MetricRule

log = logging.getLogger(__name__)


class FieldRuleSource:
    def __init__(self) -> None:
        self._rules = FieldRules(())
        self._signature: tuple[tuple[str, int], ...] = ()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        return None

    @property
    def rules(self) -> FieldRules:
        return self._rules

    def _install(self, rules: list[MetricRule]) -> bool:
        signature = tuple(sorted((r.id, r.revision) for r in rules if r.enabled))
        if signature == self._signature:
            return False
        self._rules = FieldRules(rules)  # one assignment: readers see the old or the new set
        self._signature = signature
        return True

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to the Python workers before start(): no thread or compiled rule travels.
        state = dict(self.__dict__)
        state["_rules"] = FieldRules(())
        state["_signature"] = ()
        state.pop("_thread", None)
        state.pop("_stopped", None)
        return state


class StaticFieldRules(FieldRuleSource):
    def __init__(self, rules: list[MetricRule]) -> None:
        super().__init__()
        self._static = [r.model_dump(mode="json") for r in rules]

    def start(self) -> None:
        self._install([MetricRule.model_validate(r) for r in self._static])


class PostgresFieldRules(FieldRuleSource):
    def __init__(self, dsn: str, refresh_s: float) -> None:
        super().__init__()
        self.dsn = dsn
        self.refresh_s = refresh_s

    def start(self) -> None:
        from connectors.postgres.metric_rules import load_rules

        self._install(load_rules(self.dsn))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metric-rules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        stopped = getattr(self, "_stopped", None)
        if stopped is not None:
            stopped.set()

    def _loop(self) -> None:
        from connectors.postgres.metric_rules import load_rules

        while not self._stopped.wait(self.refresh_s):
            try:
                if self._install(load_rules(self.dsn)):
                    log.info("metric rules reloaded: %d enabled", len(self._rules))
            except Exception as exc:
                log.warning("cannot reload metric rules, keeping the last ones: %s", exc)
