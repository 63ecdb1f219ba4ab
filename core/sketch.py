"""Values of a field as metrics: a measurement read from an attribute (``"722ms"``, ``"1.5 KiB"``,
``"200"``) and a mergeable quantile sketch of many of them.

The sketch keeps counts in logarithmic buckets (as DDSketch does): a value ``v > 0`` falls in
bucket ``ceil(log(v) / log(gamma))``, ``gamma = (1 + a) / (1 - a)``, so any quantile it answers is
within a relative error ``a`` of a value that was added. Two sketches merge by adding their bucket
counts, which is exact: a minute's sketches roll up into an hour's and a day's without losing
accuracy, and a sketch stored as its bucket counts can be summed by any store.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

RELATIVE_ACCURACY = 0.01
# Below this a value counts in the zero bucket: latencies and sizes have no use for finer.
MIN_VALUE = 1e-9

_DURATION_MS = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "ms": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
}
_SIZE_BYTES = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_MEASURE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Zµμ]*)\s*$")


@dataclass(frozen=True)
class Measure:
    value: float
    unit: str  # "ms" for durations, "bytes" for sizes, "" for plain numbers


def parse_measure(text: str) -> Measure | None:
    """A number with an optional unit, in the unit's base (durations in ms, sizes in bytes);
    None when ``text`` is not one (a rule then counts the record as having no value).

    >>> parse_measure("722ms"), parse_measure("1.5s")
    (Measure(value=722.0, unit='ms'), Measure(value=1500.0, unit='ms'))
    >>> parse_measure("2 KiB"), parse_measure("200"), parse_measure("fast")
    (Measure(value=2048.0, unit='bytes'), Measure(value=200.0, unit=''), None)
    """
    match = _MEASURE.match(text)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2)
    if not math.isfinite(number):
        return None
    if not unit:
        return Measure(number, "")
    if unit in _DURATION_MS or unit.lower() in _DURATION_MS:
        return Measure(number * _DURATION_MS.get(unit, _DURATION_MS.get(unit.lower(), 1.0)), "ms")
    if unit.lower() in _SIZE_BYTES:
        return Measure(number * _SIZE_BYTES[unit.lower()], "bytes")
    return None


@dataclass
class Sketch:
    """Count, sum, min, max and log-bucket counts of the values added; mergeable."""

    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    zeros: int = 0
    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)

    _gamma = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
    _log_gamma = math.log(_gamma)

    def add(self, value: float, times: int = 1) -> None:
        self.count += times
        self.sum += value * times
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if abs(value) < MIN_VALUE:
            self.zeros += times
            return
        store = self.positive if value > 0 else self.negative
        index = math.ceil(math.log(abs(value)) / self._log_gamma)
        store[index] = store.get(index, 0) + times

    def merge(self, other: Sketch) -> None:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.zeros += other.zeros
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for index, n in theirs.items():
                mine[index] = mine.get(index, 0) + n

    def _value(self, index: int) -> float:
        # the middle of the bucket (gamma^(i-1), gamma^i] in the sense of relative error
        return 2 * self._gamma**index / (self._gamma + 1)

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0 to 1), within the relative accuracy; None when empty."""
        if not 0 <= q <= 1:
            raise ValueError("a quantile is between 0 and 1")
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for index in sorted(self.negative, reverse=True):
            seen += self.negative[index]
            if seen > rank:
                return max(-self._value(index), self.min)
        seen += self.zeros
        if seen > rank:
            return 0.0
        for index in sorted(self.positive):
            seen += self.positive[index]
            if seen > rank:
                return min(self._value(index), self.max)
        return self.max

    def to_dict(self) -> dict[str, object]:
        """As stored: bucket counts keyed by their index (text, as JSON objects need)."""
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "zeros": self.zeros,
            "positive": {str(k): v for k, v in self.positive.items()},
            "negative": {str(k): v for k, v in self.negative.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Sketch:
        def buckets(name: str) -> dict[int, int]:
            raw = data.get(name) or {}
            assert isinstance(raw, dict)
            return {int(k): int(v) for k, v in raw.items()}

        count = int(data["count"])  # type: ignore[call-overload]
        return cls(
            count=count,
            sum=float(data["sum"]),  # type: ignore[arg-type]
            min=float(data["min"]) if count else math.inf,  # type: ignore[arg-type]
            max=float(data["max"]) if count else -math.inf,  # type: ignore[arg-type]
            zeros=int(data.get("zeros") or 0),  # type: ignore[call-overload]
            positive=buckets("positive"),
            negative=buckets("negative"),
        )
