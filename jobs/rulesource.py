"""Where a running job gets its rules: a fixed list (tests) or PostgreSQL, re-read periodically.

Each Flink operator that needs rules holds one source and calls :meth:`RuleSource.start` in
``open()``; the source gives the current set compiled for matching (``current``). The PostgreSQL
source reads once at start (failing the task if it cannot, so Flink restarts it rather than work
with no rules: for alerts that would resolve every firing alert), then re-reads on a daemon thread
and swaps the whole set at once. A failed re-read keeps the last good set: a PostgreSQL outage
pauses rule changes, never the rules.

The alerts job (:mod:`jobs.alerts.rulesource`) and the field metrics job
(:mod:`jobs.fieldmetrics.rulesource`) each name their rule model, how a set is compiled and how it
is loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

log = logging.getLogger(__name__)


R = TypeVar("R", bound=BaseModel)
C = TypeVar("C")


class RuleSource(Generic[R, C]):
    """The current rules, compiled by ``compile`` (a class or a module-level function, so that a
    source pickles by reference); rules need an ``id``, a ``revision`` and ``enabled``."""

    what = "rules"

    def __init__(self, compile: Callable[[Sequence[R]], C]) -> None:
        self._compile = compile
        self._current = compile(())
        self._signature: tuple[tuple[str, int], ...] = ()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        return None

    @property
    def current(self) -> C:
        return self._current

    def _install(self, rules: Sequence[R]) -> bool:
        signature = tuple(sorted((r.id, r.revision) for r in rules if r.enabled))  # type: ignore[attr-defined]
        if signature == self._signature:
            return False
        self._current = self._compile(rules)  # one assignment: readers see the old or the new set
        self._signature = signature
        return True

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to the Python workers before start(): no thread or compiled rule travels.
        state = dict(self.__dict__)
        state["_current"] = self._compile(())
        state["_signature"] = ()
        state.pop("_thread", None)
        state.pop("_stopped", None)
        return state


class StaticSource(RuleSource[R, C]):
    """A fixed list, carried as JSON and validated again on start (as a PostgreSQL row would be)."""

    def __init__(self, compile: Callable[[Sequence[R]], C], model: type[R], rules: Sequence[R]) -> None:
        super().__init__(compile)
        self._model = model
        self._static = [r.model_dump(mode="json") for r in rules]

    def start(self) -> None:
        self._install([self._model.model_validate(r) for r in self._static])


class PostgresSource(RuleSource[R, C]):
    """The rules ``load(dsn)`` returns, read at start and every ``refresh_s`` seconds."""

    def __init__(
        self, compile: Callable[[Sequence[R]], C], load: Callable[[str], list[R]], dsn: str, refresh_s: float
    ) -> None:
        super().__init__(compile)
        self._load = load
        self.dsn = dsn
        self.refresh_s = refresh_s

    def start(self) -> None:
        self._install(self._load(self.dsn))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.what.replace(" ", "-"), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        stopped = getattr(self, "_stopped", None)
        if stopped is not None:
            stopped.set()

    def _loop(self) -> None:
        while not self._stopped.wait(self.refresh_s):
            started = time.monotonic()
            try:
                if self._install(self._load(self.dsn)):
                    log.info("%s reloaded (%.0f ms)", self.what, (time.monotonic() - started) * 1000)
            except Exception as exc:
                log.warning("cannot reload %s, keeping the last ones: %s", self.what, exc)
