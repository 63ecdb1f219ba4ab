"""The expected band of an anomaly rule's series: pure Python, kept in the group's keyed state.

An anomaly rule's series is the count of matching records per window, one value per evaluation.
:class:`History` remembers that series, bounded, and answers what the next value is expected to be:

- **Same time of day**: when previous days have a value for this time of day (UTC, in slots of
  ``max(slide, 5 min)``, up to 7 days back), the expected value is their median, shifted by the
  median of recent residuals (today's level against the same-time baseline, so steady growth is not
  an anomaly), and the spread is the median absolute deviation of those residuals. A daily cycle is
  then expected, and a value normal at noon can still be an anomaly at 3 a.m.
- **Recent windows** otherwise (the first day, and until half the recent values have a same-time
  baseline to be compared with): the median and the median absolute deviation of the last
  evaluations.

Counts are at least Poisson-noisy, so the spread is never below ``sqrt(expected)``: a series that
has been flat (a spread of 0) does not fire on one extra record. The band is
``expected ± sensitivity × spread``.

The band learns only from values inside it. A window outside the band (on either side, whichever
the rule's direction) stays out of the history, so an outage keeps firing until traffic returns
instead of becoming the baseline it is judged against, and the return of traffic after an outage
is no surge. A series that stays outside for :data:`ADAPT_AFTER_MS` has changed level for good (a
service retired, a new client): its history starts again from the new level, which resolves the
alert and keeps the old days from firing it again at the times of day they remember.

State per group: at most :data:`MAX_RECENT` recent values and 8 days of slot means (288 a day at
most), a few tens of kilobytes of JSON at worst.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import orjson

DAY_MS = 86_400_000
SEASON_DAYS = 7
SEASON_SLOT_MIN_MS = 300_000
MIN_RECENT, MAX_RECENT = 30, 240
RECENT_WINDOWS = 24  # the recent baseline spans this many windows, within MIN_RECENT..MAX_RECENT
MEDIAN_VARIANCE = math.pi / 2  # the variance of a median of n normal values is this * sigma^2 / n
MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a normal distribution is 0.6745 sigma
FORGET_AFTER_MS = (SEASON_DAYS + 1) * DAY_MS  # a group silent this long has no baseline worth keeping
ADAPT_AFTER_MS = DAY_MS  # an anomaly lasting this long is the new normal
MAX_COUNTED = 1_000_000  # evaluations counted towards min_history (a bound; only the start matters)


def recent_length(window_ms: int, slide_ms: int) -> int:
    """How many recent evaluations the recent baseline keeps."""
    return min(MAX_RECENT, max(MIN_RECENT, RECENT_WINDOWS * (window_ms // slide_ms)))


def slot_ms(slide_ms: int) -> int:
    """The width of a time-of-day slot."""
    return max(slide_ms, SEASON_SLOT_MIN_MS)


def _mad(values: list[float], centre: float) -> float:
    return median(abs(v - centre) for v in values)


@dataclass(slots=True, frozen=True)
class Band:
    """What one window's value is expected to be."""

    expected: float
    spread: float
    lower: float
    upper: float
    days: int  # previous days the expected value comes from (0: recent windows)
    # the same-time median (before the level shift) whether or not the band used it: kept with the
    # window's value, their difference is a residual of the same-time model
    seasonal: float | None

    def to_list(self) -> list[Any]:
        return [self.expected, self.spread, self.lower, self.upper, self.days, self.seasonal]

    @classmethod
    def from_list(cls, data: list[Any]) -> Band:
        return cls(*data)

    def describe(self) -> str:
        basis = (
            f"the same time on {self.days} previous day{'s' if self.days > 1 else ''}"
            if self.days
            else "recent windows"
        )
        return f"expected {self.expected:.4g} from {basis}, band {max(self.lower, 0):.4g} to {self.upper:.4g}"


@dataclass(slots=True)
class History:
    """One group's series: recent values and the mean of each time-of-day slot over the last days."""

    recent: list[list[float | None]] = field(default_factory=list)  # [value, seasonal], oldest first
    days: dict[int, list[float | None]] = field(default_factory=dict)  # day -> mean per slot
    slot: list[float] | None = None  # [day, slot, sum, n] of the slot being filled
    evaluations: int = 0
    last_seen_ms: int | None = None  # end of the last window that had records
    outside_since_ms: int | None = None  # end of the first window of a run outside the band

    def to_list(self) -> list[Any]:
        days = [[d, row] for d, row in self.days.items()]
        return [self.recent, days, self.slot, self.evaluations, self.last_seen_ms, self.outside_since_ms]

    @classmethod
    def from_list(cls, data: list[Any]) -> History:
        return cls(data[0], {int(d): row for d, row in data[1]}, data[2], data[3], data[4], data[5])

    def to_json(self) -> str:
        return orjson.dumps(self.to_list()).decode()

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_list(orjson.loads(text))

    def _season(self, end_ms: int, slide_ms: int) -> list[float]:
        width = slot_ms(slide_ms)
        day, slot = divmod(end_ms, DAY_MS)
        index = slot // width
        out: list[float] = []
        for back in range(1, SEASON_DAYS + 1):
            row = self.days.get(day - back)
            mean = None if row is None else row[index]
            if mean is not None:
                out.append(mean)
        return out

    def band(self, end_ms: int, window_ms: int, slide_ms: int, sensitivity: float) -> Band | None:
        """The band of the window ending at ``end_ms``; None before any history."""
        if not self.recent:
            return None
        values = [v for v, _ in self.recent if v is not None]
        season = self._season(end_ms, slide_ms)
        seasonal: float | None = None
        learnt_from = len(values)
        days = 0
        if season:
            seasonal = median(season)
            residuals = [v - s for v, s in self.recent if v is not None and s is not None]
            if len(residuals) * 2 >= len(self.recent) and len(residuals) >= MIN_RECENT // 2:
                level = median(residuals)
                expected = seasonal + level
                spread = MAD_TO_SIGMA * _mad(residuals, level)
                learnt_from = len(residuals)
                days = len(season)
            else:
                # Too few residuals to know today's level and noise against the same-time baseline
                # (one previous day alone is as noisy as one window): stay with recent windows.
                expected = median(values)
                spread = MAD_TO_SIGMA * _mad(values, expected)
        else:
            expected = median(values)
            spread = MAD_TO_SIGMA * _mad(values, expected)
        expected = max(expected, 0.0)
        spread = max(spread, math.sqrt(max(expected, 1.0)))
        # The expected value is itself a median of a few independent windows (sliding windows
        # overlap): widen the band by its error too, or a short history fires on plain noise.
        independent = max(1.0, learnt_from * slide_ms / window_ms)
        spread *= math.sqrt(1 + MEDIAN_VARIANCE / independent)
        return Band(
            expected=expected,
            spread=spread,
            lower=expected - sensitivity * spread,
            upper=expected + sensitivity * spread,
            days=days,
            seasonal=seasonal,
        )

    def record(
        self, end_ms: int, value: float, band: Band | None, *, ready: bool, window_ms: int, slide_ms: int
    ) -> None:
        """Learn the value of the window ending at ``end_ms``, evaluated against ``band`` (whose
        judgement counts once the rule's minimum history is ``ready``)."""
        if value > 0:
            self.last_seen_ms = end_ms
        if ready and band is not None and not band.lower <= value <= band.upper:
            if self.outside_since_ms is None:
                self.outside_since_ms = end_ms
            if end_ms - self.outside_since_ms < ADAPT_AFTER_MS:
                return
            self.restart()
            band = None
        else:
            self.outside_since_ms = None
        kept = round(value, 3)
        seasonal = None if band is None or band.seasonal is None else round(band.seasonal, 3)
        self.recent.append([kept, seasonal])
        del self.recent[: -recent_length(window_ms, slide_ms)]
        self.evaluations = min(self.evaluations + 1, MAX_COUNTED)

        width = slot_ms(slide_ms)
        day, at = divmod(end_ms, DAY_MS)
        index = at // width
        if self.slot is not None and (self.slot[0], self.slot[1]) != (day, index):
            self._close_slot(width)
        if self.slot is None:
            self.slot = [day, index, 0.0, 0]
        self.slot[2] += kept
        self.slot[3] += 1
        for old in [d for d in self.days if d < day - SEASON_DAYS]:
            del self.days[old]

    def restart(self) -> None:
        """Forget the series (not when it last had records): the next windows are learnt afresh."""
        self.recent, self.days, self.slot = [], {}, None
        self.evaluations, self.outside_since_ms = 0, None

    def _close_slot(self, width: int) -> None:
        assert self.slot is not None
        day, index, total, n = self.slot
        row = self.days.get(int(day))
        if row is None:
            row = self.days[int(day)] = [None] * -(-DAY_MS // width)
        row[int(index)] = round(total / n, 3)
        self.slot = None

    def forgotten(self, now_ms: int) -> bool:
        """No records for longer than the seasonal history reaches: nothing left to compare with."""
        return self.last_seen_ms is None or now_ms - self.last_seen_ms > FORGET_AFTER_MS
