"""The tier policy: which tier holds a record, by event time, and which tiers answer a time range.

Both sides of the pipeline use this one policy: the ingest job admits a record to hot and warm
while it is younger than their windows (and always archives it), and the search routes each slice
of a time range to the tier that holds it. A record's tier therefore never depends on who asks.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_US = 86_400_000_000
HOT, WARM, COLD = "hot", "warm", "cold"
TIERS = (HOT, WARM, COLD)
# Cassandra TTLs are whole seconds, cut down: a warm row may expire up to a second before the end
# of the warm window, so the warm slice starts a little later and the archive answers for the rest.
WARM_EDGE_US = 2_000_000


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """Hot and warm hold records younger than their window (in days); cold holds everything, or
    the last ``archive_days`` when a retention says so."""

    hot_days: int
    warm_days: int
    archive_days: int | None = None

    def admit(self, ts_us: int, now_us: int) -> tuple[bool, bool, int]:
        """(hot?, warm?, warm TTL in seconds) for an event at ``ts_us`` seen at ``now_us``.

        The warm TTL is what is left of the warm window, so a 30-day-old line expires from
        Cassandra 15 days from now with the default 45-day window, not 45.
        """
        age_us = now_us - ts_us
        hot = age_us < self.hot_days * DAY_US
        warm_left_us = self.warm_days * DAY_US - max(age_us, 0)
        warm = warm_left_us > 0
        return hot, warm, max(int(warm_left_us // 1_000_000), 1) if warm else 0

    def route(self, start_us: int, end_us: int, now_us: int) -> list[tuple[str, int, int]]:
        """``[(tier, start_us, end_us)]``, newest slice first, covering ``[start_us, end_us)``; the
        archive's slice starts ``archive_days`` ago at the earliest (older is past its retention)."""
        hot_start = now_us - self.hot_days * DAY_US
        warm_start = (
            min(now_us - self.warm_days * DAY_US + WARM_EDGE_US, hot_start)
            if self.warm_days > self.hot_days
            else hot_start
        )
        out = []
        cold_start = None if self.archive_days is None else now_us - self.archive_days * DAY_US
        for tier, lo, hi in (
            (HOT, hot_start, None),
            (WARM, warm_start, hot_start),
            (COLD, cold_start, warm_start),
        ):
            s = start_us if lo is None else max(start_us, lo)
            e = end_us if hi is None else min(end_us, hi)
            if s < e:
                out.append((tier, s, e))
        return out


def route(
    start_us: int, end_us: int, now_us: int, hot_days: int, warm_days: int
) -> list[tuple[str, int, int]]:
    """:meth:`TierPolicy.route` for windows given in days."""
    return TierPolicy(hot_days, warm_days).route(start_us, end_us, now_us)
