"""Per-tenant rate limits: a token bucket per tenant, in records per second.

A request may take the bucket below zero (a batch is never split), and the next request then waits
until it refills; ``Retry-After`` says how long. Buckets live in each worker process, so with N
workers a tenant's ceiling is N times the setting: set it per worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, burst_s: float, clock: Callable[[], float] | None = None) -> None:
        self._burst_s = burst_s
        self._buckets: dict[str, _Bucket] = {}
        self._clock = clock or time.monotonic

    def wait_s(self, tenant: str, rate_per_s: float) -> float:
        """Seconds until ``tenant`` may send again (0: now), spending nothing: asked before a
        request's body is read, so a tenant over its rate costs no decompression or parsing."""
        if rate_per_s <= 0:
            return 0.0
        bucket = self._buckets.get(tenant)
        if bucket is None:
            return 0.0
        tokens = min(
            rate_per_s * self._burst_s, bucket.tokens + (self._clock() - bucket.updated) * rate_per_s
        )
        return max(1.0, math.ceil(-tokens / rate_per_s)) if tokens < 0 else 0.0

    def take(self, tenant: str, rate_per_s: float, count: int) -> float:
        """Spend ``count`` records; returns 0 when allowed, else the seconds to wait before retrying."""
        if rate_per_s <= 0 or count <= 0:
            return 0.0
        now = self._clock()
        capacity = rate_per_s * self._burst_s
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate_per_s)
        bucket.updated = now
        if bucket.tokens < 0:
            return max(1.0, math.ceil(-bucket.tokens / rate_per_s))
        bucket.tokens -= count
        return 0.0
