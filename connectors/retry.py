"""Bounded retries for the start of a client of a service that may have just started.

A broker that has just started has no group coordinator for a while, a new topic has no leader
for a moment, OpenSearch answers 503 while it recovers its cluster state and Cassandra refuses
connections until its native transport is up. Each of those clears itself within seconds; a first
run must wait for it instead of failing, and must still fail, with the last error, when it does not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("strata.retry")


class NotReady(Exception):
    """Raised by a call that found the service reachable but not ready; always retried."""


def retry_until(
    call: Callable[[], T],
    *,
    what: str,
    retriable: Callable[[BaseException], bool],
    wait_s: float,
    first_delay_s: float = 0.2,
    max_delay_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, again after a growing pause while it raises a retriable error, for up to ``wait_s``.

    A non-retriable error is raised at once; a retriable one still raised after ``wait_s`` is raised
    wrapped in a :class:`TimeoutError` that names ``what`` and how long it waited::

        meta = retry_until(lambda: admin.list_topics(timeout=5), what="Kafka metadata",
                           retriable=kafka_retriable, wait_s=60)
    """
    deadline = clock() + wait_s
    delay = first_delay_s
    attempt = 1
    while True:
        try:
            return call()
        except Exception as exc:
            if not (isinstance(exc, NotReady) or retriable(exc)):
                raise
            left = deadline - clock()
            if left <= 0:
                raise TimeoutError(f"{what}: still not ready after {wait_s:g} s: {exc}") from exc
            log.info("%s not ready (attempt %d, %s); retrying", what, attempt, exc)
            sleep(min(delay, left))
            delay = min(delay * 2, max_delay_s)
            attempt += 1
