"""Normalization of timestamps and levels: any common spelling in, UTC microseconds / six levels out.

Everything here is called once per record, so the common cases come first and cost one C call.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta

from schemas.record import Level

_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000

MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


def to_micros(dt: datetime) -> int:
    """UTC microseconds of a datetime; a naive one is taken as UTC (the only safe guess for logs)."""
    off = dt.utcoffset()
    naive = dt.replace(tzinfo=None)
    us = (naive - _EPOCH_NAIVE) // _ONE_US
    if off:
        us -= off // _ONE_US
    return us


def epoch_to_micros(value: float) -> int:
    """Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude.

    Seconds stay below 1e11 until the year 5138, milliseconds below 1e14 until then, and so on, so
    the boundaries cannot be crossed by any date a log line plausibly carries.
    """
    a = abs(value)
    if a < 1e11:
        return round(value * 1_000_000)
    if a < 1e14:
        return round(value * 1_000)
    if a < 1e17:
        return int(value)
    return int(value) // 1000


_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")
# Apache access `10/Oct/2000:13:55:36 -0700`
_APACHE = re.compile(r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:\s*([+-]\d{4}))?")
# ctime / Apache error `Sun Dec 04 04:47:44 2005`, `Wed Oct 11 14:32:52.123456 2000`
_CTIME = re.compile(
    r"(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d\d):(\d\d):(\d\d)(?:\.(\d+))?\s+(\d{4})"
)
# syslog 3164 `Jun 14 15:16:01` (no year)
_SYSLOG = re.compile(r"([A-Za-z]{3})\s+(\d{1,2})\s+(\d\d):(\d\d):(\d\d)(?:\.(\d+))?")
# `2025/02/15 12:00:00` (nginx error), `17/06/09 20:10:40` (yy/mm/dd, Spark)
_SLASH = re.compile(r"(\d{2}|\d{4})/(\d\d)/(\d\d)[ T:](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?")
# ISO-like with odd separators that fromisoformat refuses: `2005-06-03-15.42.50.675872` (BGL)
_ISOISH = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[-T ](\d\d)[.:](\d\d)[.:](\d\d)(?:[.,](\d+))?\s*(Z|[+-]\d\d:?\d\d)?"
)


def _frac_us(frac: str | None) -> int:
    if not frac:
        return 0
    return int((frac + "000000")[:6])


def _tz_offset_us(tz: str | None) -> int:
    if not tz or tz == "Z":
        return 0
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60) * 1_000_000


def _civil_us(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int) -> int:
    return (datetime(y, mo, d, h, mi, s) - _EPOCH_NAIVE) // _ONE_US + us


def infer_year_us(month: int, day: int, h: int, mi: int, s: int, us: int, arrival_us: int) -> int | None:
    """A year-less time (syslog 3164, Android) placed in the year that puts it closest to arrival,
    never more than a day in its future (a line cannot be written after it arrived, bar clock skew).
    """
    year = datetime(1970, 1, 1) + timedelta(microseconds=arrival_us)
    best: int | None = None
    for y in (year.year + 1, year.year, year.year - 1):
        try:
            t = _civil_us(y, month, day, h, mi, s, us)
        except ValueError:  # 29 February in a common year
            continue
        if t - arrival_us > _DAY_US:
            continue
        if best is None or abs(t - arrival_us) < abs(best - arrival_us):
            best = t
    return best


def parse_timestamp(value: object, arrival_us: int) -> int | None:
    """UTC microseconds from a number or any common text form, or None when it is not a time.

    >>> parse_timestamp("2025-02-15T12:00:00.123+01:00", 0)
    1739617200123000
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return epoch_to_micros(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    c0 = text[0]
    if c0.isdigit():
        if len(text) >= 10 and text[4] == "-":
            try:
                return to_micros(datetime.fromisoformat(text))
            except ValueError:
                pass
            m = _ISOISH.match(text)
            if m:
                y, mo, d, h, mi, s, frac, tz = m.groups()
                try:
                    return _civil_us(int(y), int(mo), int(d), int(h), int(mi), int(s), _frac_us(frac)) - (
                        _tz_offset_us(tz)
                    )
                except ValueError:
                    return None
            return None
        if _NUMERIC.fullmatch(text):
            return epoch_to_micros(float(text) if "." in text else int(text))
        m = _APACHE.match(text)
        if m:
            d, mon, y, h, mi, s, frac, tz = m.groups()
            month = MONTHS.get(mon.lower())
            if month is None:
                return None
            try:
                return _civil_us(int(y), month, int(d), int(h), int(mi), int(s), _frac_us(frac)) - (
                    _tz_offset_us(tz)
                )
            except ValueError:
                return None
        m = _SLASH.match(text)
        if m:
            y, mo, d, h, mi, s, frac = m.groups()
            year = int(y) + (2000 if len(y) == 2 else 0)
            try:
                return _civil_us(year, int(mo), int(d), int(h), int(mi), int(s), _frac_us(frac))
            except ValueError:
                return None
        return None
    if c0.isalpha():
        m = _CTIME.match(text)
        if m:
            mon, d, h, mi, s, frac, y = m.groups()
            month = MONTHS.get(mon.lower())
            if month is not None:
                try:
                    return _civil_us(int(y), month, int(d), int(h), int(mi), int(s), _frac_us(frac))
                except ValueError:
                    return None
        m = _SYSLOG.match(text)
        if m:
            mon, d, h, mi, s, frac = m.groups()
            month = MONTHS.get(mon.lower())
            if month is not None:
                return infer_year_us(month, int(d), int(h), int(mi), int(s), _frac_us(frac), arrival_us)
        return None
    return None


def parse_with_format(value: str, fmt: str, arrival_us: int) -> int | None:
    """``strptime`` for patterns that declare a ``time_format``; formats without ``%Y``/``%y`` get
    their year inferred from the arrival time."""
    try:
        dt = datetime.strptime(value.strip(), fmt)
    except ValueError:
        return None
    if "%Y" not in fmt and "%y" not in fmt:
        return infer_year_us(dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond, arrival_us)
    return to_micros(dt)


# -- levels ------------------------------------------------------------------------------------

_LEVEL_WORDS: dict[str, Level] = {}
for _lvl, _words in {
    Level.TRACE: ("trace", "trc", "finest", "finer", "t", "v", "verbose", "all"),
    Level.DEBUG: ("debug", "dbg", "debu", "fine", "d", "config"),
    Level.INFO: ("info", "inf", "information", "informational", "notice", "i", "n", "ok", "log", "success"),
    Level.WARN: ("warn", "warning", "wrn", "w", "wa"),
    Level.ERROR: ("error", "err", "eror", "e", "severe", "fail", "failure", "exception"),
    Level.FATAL: (
        "fatal",
        "crit",
        "critical",
        "alert",
        "emerg",
        "emergency",
        "panic",
        "f",
        "a",
        "c",
        "assert",
        "ftl",
    ),
}.items():
    for _w in _words:
        _LEVEL_WORDS[_w] = _lvl

# Syslog severities 0-7 (RFC 5424 §6.2.1) and bunyan/pino's 10..60 share no values, so one table.
_LEVEL_NUMBERS: dict[int, Level] = {
    0: Level.FATAL,
    1: Level.FATAL,
    2: Level.FATAL,
    3: Level.ERROR,
    4: Level.WARN,
    5: Level.INFO,
    6: Level.INFO,
    7: Level.DEBUG,
    10: Level.TRACE,
    20: Level.DEBUG,
    30: Level.INFO,
    40: Level.WARN,
    50: Level.ERROR,
    60: Level.FATAL,
}

SYSLOG_SEVERITY: tuple[Level, ...] = tuple(_LEVEL_NUMBERS[i] for i in range(8))

_level_cache: dict[object, Level | None] = {}


def normalize_level(value: object) -> Level | None:
    """One of the six levels for any common spelling, or None when it is not a level at all."""
    try:
        return _level_cache[value]
    except (KeyError, TypeError):
        pass
    result: Level | None = None
    if isinstance(value, bool):
        result = None
    elif isinstance(value, int):
        result = _LEVEL_NUMBERS.get(value)
    elif isinstance(value, str):
        word = value.strip().strip("[]<>:").lower()
        result = _LEVEL_WORDS.get(word)
        if result is None and word.isdigit():
            result = _LEVEL_NUMBERS.get(int(word))
        if result is None and word.startswith(("warn", "err", "crit", "fatal", "info", "debug", "trace")):
            result = _LEVEL_WORDS.get(word[:4]) or _LEVEL_WORDS.get(word[:3])
    if len(_level_cache) < 4096:
        with contextlib.suppress(TypeError):  # unhashable values are normalized, just not cached
            _level_cache[value] = result
    return result


__all__ = [
    "SYSLOG_SEVERITY",
    "epoch_to_micros",
    "infer_year_us",
    "normalize_level",
    "parse_timestamp",
    "parse_with_format",
    "to_micros",
]
