"""Timestamps to UTC microseconds and level synonyms to the six levels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.records.normalize import normalize_level, parse_timestamp, parse_with_format, to_micros
from schemas import Level

pytestmark = pytest.mark.unit


def us(*args: int) -> int:
    return to_micros(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


ARRIVAL = us(2025, 2, 15, 12, 0, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-02-15T12:00:00Z", us(2025, 2, 15, 12)),
        ("2025-02-15T13:00:00.5+01:00", us(2025, 2, 15, 12, 0, 0, 500000)),
        ("2025-02-15T07:00:00-05:00", us(2025, 2, 15, 12)),
        ("2025-02-15 12:00:00,123", us(2025, 2, 15, 12, 0, 0, 123000)),
        ("2025-02-15T12:00:00.123456789Z", us(2025, 2, 15, 12, 0, 0, 123456)),
        ("2005-06-03-15.42.50.675872", us(2005, 6, 3, 15, 42, 50, 675872)),
        ("10/Oct/2000:13:55:36 -0700", us(2000, 10, 10, 20, 55, 36)),
        ("Sun Dec 04 04:47:44 2005", us(2005, 12, 4, 4, 47, 44)),
        ("Wed Oct 11 14:32:52.123456 2000", us(2000, 10, 11, 14, 32, 52, 123456)),
        ("2025/02/15 12:00:00", us(2025, 2, 15, 12)),
        ("17/06/09 20:10:40", us(2017, 6, 9, 20, 10, 40)),
        ("1739620800", us(2025, 2, 15, 12)),
        ("1739620800.25", us(2025, 2, 15, 12, 0, 0, 250000)),
        ("1739620800123", us(2025, 2, 15, 12, 0, 0, 123000)),
        ("1739620800123456", us(2025, 2, 15, 12, 0, 0, 123456)),
        ("1739620800123456789", us(2025, 2, 15, 12, 0, 0, 123456)),
    ],
)
def test_text_timestamps(text: str, expected: int) -> None:
    assert parse_timestamp(text, ARRIVAL) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1739620800, us(2025, 2, 15, 12)),
        (1739620800.5, us(2025, 2, 15, 12, 0, 0, 500000)),
        (1739620800123, us(2025, 2, 15, 12, 0, 0, 123000)),
        (1739620800123456, us(2025, 2, 15, 12, 0, 0, 123456)),
        (1739620800123456789, us(2025, 2, 15, 12, 0, 0, 123456)),
    ],
)
def test_epoch_magnitudes(value: float, expected: int) -> None:
    assert parse_timestamp(value, ARRIVAL) == expected


@pytest.mark.parametrize("value", ["", "garbage", "Foo 12 12:00:00", "2025-13-45T00:00:00", None, True, [1]])
def test_not_a_time(value: object) -> None:
    assert parse_timestamp(value, ARRIVAL) is None


def test_yearless_syslog_picks_the_closest_past_year() -> None:
    # Arrival on 1 January: "Dec 31" is last year, not eleven months ahead.
    new_year = us(2025, 1, 1, 0, 5)
    assert parse_timestamp("Dec 31 23:59:59", new_year) == us(2024, 12, 31, 23, 59, 59)
    # A few hours ahead of arrival (clock skew) stays in the same year.
    assert parse_timestamp("Feb 15 13:00:00", ARRIVAL) == us(2025, 2, 15, 13)
    # Arrival on 31 December, line from 1 January: that is this year's January, long ago,
    # unless it is within a day ahead.
    eve = us(2024, 12, 31, 23, 50)
    assert parse_timestamp("Jan  1 00:05:00", eve) == us(2025, 1, 1, 0, 5)
    assert parse_timestamp("Jun 14 15:16:01", ARRIVAL) == us(2024, 6, 14, 15, 16, 1)


def test_yearless_29_february_finds_a_leap_year() -> None:
    assert parse_timestamp("Feb 29 10:00:00", us(2025, 3, 1)) == us(2024, 2, 29, 10)


def test_strptime_formats() -> None:
    assert parse_with_format("081109 203615", "%y%m%d %H%M%S", ARRIVAL) == us(2008, 11, 9, 20, 36, 15)
    assert parse_with_format("03-17 16:13:38.811", "%m-%d %H:%M:%S.%f", ARRIVAL) == us(
        2024, 3, 17, 16, 13, 38, 811000
    )
    assert parse_with_format("nope", "%Y", ARRIVAL) is None


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        ("trace", Level.TRACE),
        ("VERBOSE", Level.TRACE),
        ("debug", Level.DEBUG),
        ("D", Level.DEBUG),
        ("info", Level.INFO),
        ("Information", Level.INFO),
        ("notice", Level.INFO),
        ("I", Level.INFO),
        ("warn", Level.WARN),
        ("WARNING", Level.WARN),
        ("W", Level.WARN),
        ("error", Level.ERROR),
        ("err", Level.ERROR),
        ("E", Level.ERROR),
        ("severe", Level.ERROR),
        ("fatal", Level.FATAL),
        ("crit", Level.FATAL),
        ("critical", Level.FATAL),
        ("alert", Level.FATAL),
        ("emerg", Level.FATAL),
        ("panic", Level.FATAL),
        ("A", Level.FATAL),
        ("[ERROR]", Level.ERROR),
        (0, Level.FATAL),
        (2, Level.FATAL),
        (3, Level.ERROR),
        (4, Level.WARN),
        (5, Level.INFO),
        (6, Level.INFO),
        (7, Level.DEBUG),
        ("3", Level.ERROR),
        (10, Level.TRACE),
        (20, Level.DEBUG),
        (30, Level.INFO),
        (40, Level.WARN),
        (50, Level.ERROR),
        (60, Level.FATAL),
    ],
)
def test_levels(raw: object, level: Level) -> None:
    assert normalize_level(raw) is level


@pytest.mark.parametrize("raw", ["loud", "", 99, None, 3.5])
def test_not_a_level(raw: object) -> None:
    assert normalize_level(raw) is None
