"""Field values as metrics: measurements with units, and the mergeable quantile sketch."""

from __future__ import annotations

import random

import pytest

from core.sketch import RELATIVE_ACCURACY, Measure, Sketch, parse_measure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("722ms", Measure(722.0, "ms")),
        ("1.5s", Measure(1500.0, "ms")),
        (" 250 us ", Measure(0.25, "ms")),
        ("2m", Measure(120_000.0, "ms")),
        ("2 KiB", Measure(2048.0, "bytes")),
        ("3MB", Measure(3_000_000.0, "bytes")),
        ("200", Measure(200.0, "")),
        ("-4.5", Measure(-4.5, "")),
        ("1e3ms", Measure(1000.0, "ms")),
    ],
)
def test_measurements_are_read_in_their_units_base(text: str, expected: Measure) -> None:
    assert parse_measure(text) == expected


@pytest.mark.parametrize("text", ["", "fast", "12 parsecs", "1.2.3ms", "nan", "ms"])
def test_what_is_not_a_measurement_has_no_value(text: str) -> None:
    assert parse_measure(text) is None


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_quantiles_are_within_the_relative_accuracy() -> None:
    rnd = random.Random(3)
    values = [rnd.lognormvariate(4, 1.2) for _ in range(20_000)] + [0.0] * 50
    sketch = Sketch()
    for v in values:
        sketch.add(v)
    assert sketch.count == len(values) and sketch.sum == pytest.approx(sum(values))
    assert sketch.min == 0.0 and sketch.max == max(values)
    for q in (0.5, 0.95, 0.99):
        exact = _exact(values, q)
        assert abs(sketch.quantile(q) - exact) <= RELATIVE_ACCURACY * exact * 1.0001  # type: ignore[operator]
    assert sketch.quantile(0.0) == 0.0
    assert Sketch().quantile(0.5) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        sketch.quantile(1.5)


def test_minutes_merge_into_an_hour_exactly_as_one_sketch_of_every_value() -> None:
    rnd = random.Random(5)
    minutes = [[rnd.uniform(1, 900) for _ in range(rnd.randint(0, 300))] for _ in range(60)]
    hour = Sketch()
    whole = Sketch()
    for values in minutes:
        minute = Sketch()
        for v in values:
            minute.add(v)
            whole.add(v)
        hour.merge(Sketch.from_dict(minute.to_dict()))  # as stored and read back
    assert hour.positive == whole.positive and hour.count == whole.count
    assert hour.sum == pytest.approx(whole.sum) and (hour.min, hour.max) == (whole.min, whole.max)
    assert [hour.quantile(q) for q in (0.5, 0.95, 0.99)] == [whole.quantile(q) for q in (0.5, 0.95, 0.99)]


def test_negative_values_sort_below_zero() -> None:
    sketch = Sketch()
    for v in (-10.0, -1.0, 0.0, 1.0, 10.0):
        sketch.add(v)
    assert sketch.quantile(0.0) == -10.0
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == 10.0
