"""Reading the header of a line nobody described: its time, level, host, process and component.

A line that no format parser claimed (``source_format: raw``) still almost always starts with a
header a program wrote: a timestamp somewhere in the first few fields, maybe a level, a host, a
``process[pid]:`` or a ``logger.Class:``. :func:`read_header` finds those and returns where the
message proper starts, so pattern mining sees ``Connection closed`` rather than a line in which
every timestamp, pid and host is a new variable.

How it stays linear and cheap:

- Timestamps are tried only at the starts of the first :data:`MAX_HEADER_TOKENS` whitespace
  tokens (and within the first :data:`MAX_HEADER_CHARS` characters), each with ``re.match`` at that
  position against short regexes whose quantifiers are bounded (``\\d{1,9}``), never nested, never
  over free text. Every other field is read by looking at whole tokens.
- :class:`HeaderReader` remembers, per source (tenant, service), which timestamp form was found at
  which token, and tries that first on the next line, as Datadog's and Splunk's timestamp
  recognition learn a source's format from its first lines. A line that does not fit the learned
  shape gets the full search, and teaches its shape in turn.

Times without a zone are read in the source's zone (UTC unless configured). A time without a year
(syslog's ``Jun 14 15:16:01``) is placed in the year that puts it closest to its arrival but not
more than a day after it; a time without a date takes the arrival's date, or the day before when
that would put it in the future.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import islice
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.records.normalize import MONTHS, infer_year_us
from core.records.parsers import Parsed

MAX_HEADER_TOKENS = 7
MAX_HEADER_CHARS = 200
_MAX_ROLE_TOKENS = 8
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH_NAIVE.toordinal()
_ONE_US = timedelta(microseconds=1)
_HOUR_US = 3_600_000_000
_DAY_US = 86_400_000_000
_Y2000_US = 946_684_800_000_000
_YEAR_US = 366 * _DAY_US

# Ranks: a full date and time beats an epoch field, which beats a date alone, which beats a time alone.
FULL, EPOCH, DATE, TIME = 3, 2, 1, 0


@dataclass
class Header:
    """What the header held. ``message_start`` is where the message begins in the line."""

    timestamp_us: int | None = None
    timestamp_text: str | None = None
    kind: str | None = None
    token_index: int = -1
    message_start: int = 0
    level: str | None = None
    host: str | None = None
    process: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    steps: tuple[str, ...] | None = None  # the fields read token by token (None: by a layout)


def zone(name: str | None) -> tzinfo:
    """A time zone by IANA name (``Europe/Paris``), ``UTC`` for none; ValueError for an unknown one."""
    if not name or name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


# -- timestamp forms -------------------------------------------------------------------------

_FRAC = r"(?:[.,:](\d{1,9}))?"
_ZONE = r"(?:\s?(Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)(?![A-Za-z]))?"


def _frac_us(frac: str | None) -> int:
    return int((frac + "000000")[:6]) if frac else 0


def _offset_us(text: str | None) -> int | None:
    if text is None:
        return None
    if text in ("Z", "UTC", "GMT"):
        return 0
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60) * 1_000_000


@lru_cache(maxsize=4096)
def _day_us(y: int, mo: int, d: int) -> int:
    return (date(y, mo, d).toordinal() - _EPOCH_ORDINAL) * _DAY_US  # ValueError for 31 February


def _local_us(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int, tz: tzinfo, off: int | None) -> int:
    """UTC microseconds of a civil time, read with its own offset, else in ``tz``."""
    if h > 23 or mi > 59 or s > 60:
        raise ValueError("not a time of day")
    t = _day_us(y, mo, d) + ((h * 60 + mi) * 60 + s) * 1_000_000 + us
    if off is not None:
        return t - off
    if tz is UTC:
        return t
    delta = tz.utcoffset(datetime(y, mo, d, h, mi, min(s, 59)))
    return t - (delta // _ONE_US if delta else 0)


class _Ctx:
    __slots__ = ("received_us", "tags", "tz")

    def __init__(self, received_us: int, tz: tzinfo) -> None:
        self.received_us = received_us
        self.tz = tz
        self.tags: list[str] = []


class _Matched(Protocol):
    """A regex match, or the slice of a longer one's groups that holds the timestamp."""

    def groups(self) -> tuple[Any, ...]: ...


class _Groups:
    __slots__ = ("_groups",)

    def __init__(self, groups: tuple[Any, ...]) -> None:
        self._groups = groups

    def groups(self) -> tuple[Any, ...]:
        return self._groups


Convert = Callable[[_Matched, _Ctx], int]


def _year_less(mo: int, d: int, h: int, mi: int, s: int, us: int, ctx: _Ctx) -> int:
    local_arrival = ctx.received_us + _tz_shift(ctx)
    t = infer_year_us(mo, d, h, mi, s, us, local_arrival)
    if t is None:
        raise ValueError("no year fits")
    ctx.tags.append("year_inferred")
    y = (_EPOCH_NAIVE + timedelta(microseconds=t)).year
    return _local_us(y, mo, d, h, mi, s, us, ctx.tz, None)


def _tz_shift(ctx: _Ctx) -> int:
    if ctx.tz is UTC:
        return 0
    delta = ctx.tz.utcoffset(_EPOCH_NAIVE + timedelta(microseconds=ctx.received_us))
    return delta // _ONE_US if delta else 0


def _ymd_hms(m: _Matched, ctx: _Ctx) -> int:
    g = m.groups()
    return _local_us(
        int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5] or 0), _frac_us(g[6]), ctx.tz,
        _offset_us(g[7]) if len(g) > 7 else None,
    )  # fmt: skip


def _yy(m: _Matched, ctx: _Ctx) -> int:
    g = m.groups()
    return _local_us(2000 + int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), 0, ctx.tz, None)


def _compact(m: _Matched, ctx: _Ctx) -> int:
    g = m.groups()
    us = int(g[6].ljust(3, "0")) * 1000 if g[6] else 0
    return _local_us(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), us, ctx.tz, None)


def _mdy(m: _Matched, ctx: _Ctx) -> int:
    mo, d, y, h, mi, s, frac, ampm = m.groups()
    hour = int(h)
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError("12-hour clock")
        hour = hour % 12 + (12 if ampm[0] in "pP" else 0)
    return _local_us(int(y), int(mo), int(d), hour, int(mi), int(s), _frac_us(frac), ctx.tz, None)


def _month(name: str) -> int:
    n = MONTHS.get(name.lower())
    if n is None:
        raise ValueError("not a month")
    return n


def _apache(m: _Matched, ctx: _Ctx) -> int:
    d, mon, y, h, mi, s, frac, off = m.groups()
    return _local_us(
        int(y), _month(mon), int(d), int(h), int(mi), int(s), _frac_us(frac), ctx.tz, _offset_us(off)
    )


def _dmy_text(m: _Matched, ctx: _Ctx) -> int:
    d, mon, y, h, mi, s, frac = m.groups()
    return _local_us(int(y), _month(mon), int(d), int(h), int(mi), int(s), _frac_us(frac), ctx.tz, None)


def _syslog(m: _Matched, ctx: _Ctx) -> int:
    mon, d, y1, h, mi, s, frac, off, y2 = m.groups()
    month = _month(mon)
    year = y1 or y2
    if year is None:
        return _year_less(month, int(d), int(h), int(mi), int(s), _frac_us(frac), ctx)
    return _local_us(
        int(year), month, int(d), int(h), int(mi), int(s), _frac_us(frac), ctx.tz, _offset_us(off)
    )


def _month_day(m: _Matched, ctx: _Ctx) -> int:
    mo, d, h, mi, s, frac = m.groups()
    return _year_less(int(mo), int(d), int(h), int(mi), int(s), _frac_us(frac), ctx)


def _glog(m: _Matched, ctx: _Ctx) -> int:
    _level, mo, d, h, mi, s, frac = m.groups()
    return _year_less(int(mo), int(d), int(h), int(mi), int(s), _frac_us(frac), ctx)


def _hdfs(m: _Matched, ctx: _Ctx) -> int:
    yy, mo, d, h, mi, s = m.groups()
    return _local_us(2000 + int(yy), int(mo), int(d), int(h), int(mi), int(s), 0, ctx.tz, None)


def _epoch(m: _Matched, ctx: _Ctx) -> int:
    digits, frac = m.groups()
    n = int(digits)
    scale = {10: 1_000_000, 13: 1_000, 16: 1}.get(len(digits))
    t = n * scale + (_frac_us(frac) if scale == 1_000_000 else 0) if scale else n // 1000
    # A leading number is a time only when it lands in this century and not past its arrival.
    if not _Y2000_US <= t <= ctx.received_us + _DAY_US:
        raise ValueError("not a plausible epoch")
    return t


def _date_only(m: _Matched, ctx: _Ctx) -> int:
    y, mo, d = m.groups()
    return _local_us(int(y), int(mo), int(d), 0, 0, 0, 0, ctx.tz, None)


def _time_only(m: _Matched, ctx: _Ctx) -> int:
    h, mi, s, frac = m.groups()
    local_arrival = _EPOCH_NAIVE + timedelta(microseconds=ctx.received_us + _tz_shift(ctx))
    day = local_arrival.date()
    t = _local_us(day.year, day.month, day.day, int(h), int(mi), int(s), _frac_us(frac), ctx.tz, None)
    if t > ctx.received_us + _HOUR_US:
        t -= _DAY_US
    ctx.tags.append("date_inferred")
    return t


@dataclass(frozen=True)
class _Kind:
    name: str
    regex: re.Pattern[str]
    rank: int
    convert: Convert
    first_token_only: bool = False


# Order matters only among forms that can start at the same character: the longer form first.
_DIGIT_KINDS: tuple[_Kind, ...] = (
    _Kind(
        "iso",
        re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:T|t| {1,2})(\d\d):(\d\d)(?::(\d\d))?" + _FRAC + _ZONE),
        FULL,
        _ymd_hms,
    ),
    _Kind(
        "ymd_dotted_time", re.compile(r"(\d{4})-(\d\d)-(\d\d)-(\d\d)\.(\d\d)\.(\d\d)" + _FRAC), FULL, _ymd_hms
    ),
    _Kind(
        "ymd_slash",
        re.compile(r"(\d{4})/(\d\d)/(\d\d)[ T:](\d\d):(\d\d):(\d\d)" + _FRAC + _ZONE),
        FULL,
        _ymd_hms,
    ),
    _Kind(
        "ymd_dot",
        re.compile(r"(\d{4})\.(\d\d)\.(\d\d)[ T-](\d\d)[:.](\d\d)[:.](\d\d)" + _FRAC),
        FULL,
        _ymd_hms,
    ),
    _Kind(
        "compact",
        re.compile(r"(\d{4})(\d\d)(\d\d)[-T ](\d\d):?(\d\d):?(\d\d)(?:[.,:](\d{1,3}))?"),
        FULL,
        _compact,
    ),
    _Kind("yy_slash", re.compile(r"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)"), FULL, _yy),
    _Kind(
        "mdy",
        re.compile(r"(\d\d?)/(\d\d?)/(\d{4}),? (\d\d?):(\d\d):(\d\d)" + _FRAC + r"(?: ?([AaPp][Mm]))?"),
        FULL,
        _mdy,
    ),
    _Kind(
        "apache",
        re.compile(r"(\d\d?)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)" + _FRAC + r"(?: ([+-]\d{4}))?"),
        FULL,
        _apache,
    ),
    _Kind(
        "dmy_text",
        re.compile(r"(\d\d?)[ -]([A-Za-z]{3})[ -](\d{4})[ :](\d\d):(\d\d):(\d\d)" + _FRAC),
        FULL,
        _dmy_text,
    ),
    _Kind("month_day_dot", re.compile(r"(\d\d)\.(\d\d) (\d\d):(\d\d):(\d\d)" + _FRAC), FULL, _month_day),
    _Kind("month_day_dash", re.compile(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)" + _FRAC), FULL, _month_day),
    _Kind("yymmdd_hhmmss", re.compile(r"(\d\d)(\d\d)(\d\d) (\d\d)(\d\d)(\d\d)"), FULL, _hdfs, True),
    _Kind("epoch", re.compile(r"(\d{19}|\d{16}|\d{13}|\d{10})(?!\d)(?:\.(\d{1,9}))?"), EPOCH, _epoch),
    _Kind("date", re.compile(r"(\d{4})[-/.](\d\d)[-/.](\d\d)"), DATE, _date_only),
    _Kind("time", re.compile(r"(\d\d):(\d\d):(\d\d)" + _FRAC), TIME, _time_only),
)
_ALPHA_KINDS: tuple[_Kind, ...] = (
    _Kind(
        "syslog",
        re.compile(
            r"(?:[A-Z][a-z]{2}[a-z]{0,6},? )?([A-Za-z]{3}) {1,2}(\d\d?),? (?:(\d{4}) )?"
            r"(\d\d):(\d\d):(\d\d)" + _FRAC + _ZONE + r"(?: (\d{4})(?!\d))?"
        ),
        FULL,
        _syslog,
    ),
    _Kind("glog", re.compile(r"([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)" + _FRAC), FULL, _glog, True),
)
KINDS: dict[str, _Kind] = {k.name: k for k in (*_DIGIT_KINDS, *_ALPHA_KINDS)}
_GLOG_LEVEL = {"I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL"}


def _ok_end(line: str, end: int) -> bool:
    """A timestamp ends at a field boundary, not inside a longer word or number."""
    return end >= len(line) or not (line[end].isalnum() or line[end] in "_:")


Candidate = tuple[_Kind, int, int, int, int, tuple[str, ...]]  # kind, pos, us, end, token index, tags


def _try(kind: _Kind, line: str, pos: int, index: int, ctx: _Ctx) -> Candidate | None:
    m = kind.regex.match(line, pos)
    if m is None or not _ok_end(line, m.end()):
        return None
    ctx.tags = []
    try:
        us = kind.convert(m, ctx)
    except (ValueError, OverflowError):  # 31 February, hour 25, an epoch out of range
        return None
    return kind, pos, us, m.end(), index, tuple(ctx.tags)


# -- the other header fields -------------------------------------------------------------------

_LEVEL_WORDS = {
    w: lvl
    for lvl, words in {
        "TRACE": ("trace", "finest", "finer", "verbose", "trc"),
        "DEBUG": ("debug", "dbg", "fine", "debu"),
        "INFO": ("info", "information", "informational", "notice", "inf", "note"),
        "WARN": ("warn", "warning", "wrn"),
        "ERROR": ("error", "err", "eror", "severe"),
        "FATAL": ("fatal", "crit", "critical", "alert", "emerg", "emergency", "panic", "ftl"),
    }.items()
    for w in words
}
_SINGLE_LETTER = {"V": "TRACE", "D": "DEBUG", "I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL"}
_SEVERITY = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")
_SEPARATORS = frozenset(("-", "|", ":", "--", "::", "—", ">", "-->", "=>", "·"))
_PROCESS = re.compile(r"([^\s\[\]:]{1,128})\[(\d{1,10})\]:?")
_COMPONENT = re.compile(r"[A-Za-z_][\w.$\-/()@#<>]{0,199}")
_HOSTLIKE = re.compile(r"[A-Za-z0-9][\w.\-/]{0,252}")  # "host/relay" from syslog relays
_PRI = re.compile(r"<(\d{1,3})>")
# A source file (by its language's extension, so "proxy.example.com:5070" is not one) and line.
_SOURCE_EXT = (
    r"(?:java|kt|scala|groovy|go|py|rb|php|js|mjs|ts|cs|vb|fs|c|cc|cpp|cxx|h|hh|hpp|m|mm|swift|rs"
    r"|erl|ex|exs|lua|pl|sh)"
)
_SOURCE_LOCATION = re.compile(r"[\w.\-/$]{1,200}\." + _SOURCE_EXT + r":\d{1,7}[\]:]?")


def _level_of(token: str) -> str | None:
    word = token.strip("[]<>():, ")
    if not word or len(word) > 13:
        return None
    lvl = _LEVEL_WORDS.get(word.lower())
    if lvl is None:
        return None
    if word.islower() or word.isupper() or word.istitle():
        return lvl
    return None


def _is_component(name: str) -> bool:
    """``org.apache.Foo``, ``dfs.DataNode$PacketResponder``, ``WindowManager``: a logger or class,
    not a message word such as ``Error`` or ``Note``."""
    if not _COMPONENT.fullmatch(name):
        return False
    if any(c in name for c in ".$/_(#@"):
        return True
    return any(c.isupper() for c in name[1:]) and any(c.islower() for c in name)


def _bracket_end(line: str, pos: int) -> int:
    """Index after the bracket group opening at ``pos`` (nesting counted), or -1 past a bound."""
    depth = 0
    limit = min(len(line), pos + 512)
    for i in range(pos, limit):
        c = line[i]
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


# Tokens end at a newline too: a joined multi-line event's header is on its first line.
_SPACES = re.compile(r"[ \t\r\n]*")
_NEXT_TOKEN = re.compile(r"[ \t\r\n]*([^ \t\r\n]+)")
_TOKEN = re.compile(r"[^ \t\r\n]+")


def _skip_spaces(line: str, pos: int) -> int:
    return _SPACES.match(line, pos).end()  # type: ignore[union-attr]  # "*" always matches


def _token_end(line: str, pos: int) -> int:
    m = _TOKEN.match(line, pos)
    return m.end() if m else pos


def _read_roles(line: str, pos: int, h: Header, after_syslog_time: bool, steps: list[str]) -> int:
    """Level, pid, thread, host, process and component fields after the timestamp; returns where
    the message starts. Stops at the first token that is none of them."""
    attrs = h.attributes
    brackets = 0
    numbers = 0
    level_token = False
    for _ in range(_MAX_ROLE_TOKENS):
        m = _NEXT_TOKEN.match(line, pos)
        if m is None:
            break
        pos, end = m.span(1)
        token = m.group(1)
        c = token[0]
        if c == "|":
            steps.append("pipe")
            return _pipe_fields(line, pos, h)
        if c == "[":
            close = line.find("]", pos, pos + 512)
            end = close + 1 if close > 0 and "[" not in line[pos + 1 : close] else _bracket_end(line, pos)
            if end < 0 or brackets >= 2:
                break
            inner = line[pos + 1 : end - 1]
            lvl = _level_of(inner) if not level_token else None
            if lvl is not None:
                h.level = lvl
                level_token = True
                steps.append("level")
            else:
                attrs["thread" if brackets == 0 else "context"] = inner.strip()
                brackets += 1
                steps.append("bracket")
            pos = end
            if pos < len(line) and line[pos] == ":":
                pos += 1
            continue
        bare = token.rstrip(",")
        if bare in _SEPARATORS:
            steps.append("sep")
            pos = end
            continue
        if not level_token:
            lvl = _level_of(bare)
            if lvl is None and len(bare) == 1 and bare in _SINGLE_LETTER:
                # "D" or "E" alone is a level only where a header puts one: after pids (logcat) or
                # before a "Tag:" field, not as the first word of a sentence ("I think ...").
                nxt = line[_skip_spaces(line, end) :][:200].split(" ", 1)[0]
                if numbers or (nxt.endswith(":") and len(nxt) > 1):
                    lvl = _SINGLE_LETTER[bare]
            if lvl is not None:
                h.level = lvl
                level_token = True
                steps.append("level")
                pos = end
                continue
        if bare.isdigit() and len(bare) <= 10 and numbers < 2 and h.process is None:
            attrs["pid" if numbers == 0 else "tid"] = bare
            numbers += 1
            steps.append("pid")
            pos = end
            continue
        m = _PROCESS.fullmatch(token)
        if m:
            h.process = m.group(1)
            attrs["pid"] = m.group(2)
            steps.append("process")
            return _skip_spaces(line, end)
        if _SOURCE_LOCATION.fullmatch(token):
            # "controller.go:123]" (glog), "CassandraDaemon.java:123": where in the code, not what.
            attrs["source_location"] = token.rstrip("]:")
            steps.append("source")
            pos = end
            continue
        if token.endswith(":") and len(token) > 1:
            name = token[:-1]
            if _is_component(name):
                attrs["component"] = name
                steps.append("component:")
                return _skip_spaces(line, end)
            break
        nxt_pos = _skip_spaces(line, end)
        nxt_end = _token_end(line, nxt_pos)
        nxt = line[nxt_pos:nxt_end]
        if (
            h.host is None
            and not level_token
            and not numbers
            and after_syslog_time
            and _HOSTLIKE.fullmatch(token)
            and (_PROCESS.fullmatch(nxt) or (nxt.endswith(":") and _COMPONENT.fullmatch(nxt[:-1])))
        ):
            h.host = token
            steps.append("host")
            pos = end
            continue
        if level_token and "." in token and _is_component(token) and (nxt in _SEPARATORS or nxt[:1] == "["):
            attrs["component"] = token
            steps.append("component")
            pos = end
            continue
        if nxt == "-" and "component" not in attrs and _COMPONENT.fullmatch(token):
            # "chrome.exe - open through proxy", "worker - started": a program or logger name.
            attrs["component"] = token
            steps.append("component")
            steps.append("sep")
            pos = nxt_end
            continue
        if not level_token:
            found = _level_ahead(line, pos)
            if found is not None:
                attrs["header_fields"], h.level, pos = found
                level_token = True
                steps.append("ahead")
                continue
        break
    return pos


def _level_ahead(line: str, pos: int) -> tuple[str, str, int] | None:
    """A level in capitals a few short fields further on ("R02-M1 RAS KERNEL INFO ..."): the
    fields before it are header too. Returns (those fields, level, end of the level)."""
    start = pos
    for _ in range(4):
        end = _token_end(line, pos)
        token = line[pos:end]
        if not token or len(token) > 48 or token.endswith(":"):
            return None
        word = token.strip("[]<>")
        if word.isupper() and len(word) > 1:
            lvl = _LEVEL_WORDS.get(word.lower())
            if lvl is not None and pos > start:
                return line[start:pos].rstrip(), lvl, end
        pos = _skip_spaces(line, end)
    return None


def _pipe_fields(line: str, pos: int, h: Header) -> int:
    """``TIME|Component|1234|message`` or ``TIME | INFO | module | message``: short fields
    between bars are the level, a pid and a component; the message is the first field that is
    not one of them."""
    attrs = h.attributes
    for _ in range(_MAX_ROLE_TOKENS):
        if line[pos : pos + 1] != "|":
            break
        nxt = line.find("|", pos + 1, pos + 130)
        if nxt < 0:
            return _skip_spaces(line, pos + 1)
        field = line[pos + 1 : nxt].strip()
        lvl = _level_of(field) if h.level is None else None
        if lvl is not None:
            h.level = lvl
        elif field.isdigit() and len(field) <= 10 and "pid" not in attrs:
            attrs["pid"] = field
        elif "component" not in attrs and _COMPONENT.fullmatch(field):
            attrs["component"] = field
        elif not field:
            pass
        else:
            return _skip_spaces(line, pos + 1)
        pos = nxt
    return _skip_spaces(line, pos + 1) if line[pos : pos + 1] == "|" else pos


# A source's role fields as one regex, built from the steps the token-by-token reading took on an
# earlier line: the next line of that source is then read with one match. Every part is bounded.
_STEP_REGEX = {
    "sep": (r"[ \t]*(?:-->|=>|--|::|[-|:>\u2014\u00b7]),?(?=[ \t]|$)", ()),
    "level": (r"[ \t]*[\[<(]?([A-Za-z]{1,13})[\]>)]?:?,?(?=[ \t]|$)", ("level",)),
    "bracket": (r"[ \t]*\[([^\[\]]{0,510})\]:?", ("bracket",)),
    "pid": (r"[ \t]*(\d{1,10}),?(?=[ \t]|$)", ("pid",)),
    "process": (r"[ \t]*([^\s\[\]:]{1,128})\[(\d{1,10})\]:?(?=[ \t]|$)", ("process", "pid")),
    "component:": (r"[ \t]*([A-Za-z_][\w.$\-/()@#<>]{0,199}):(?=[ \t]|$)", ("component",)),
    "component": (r"[ \t]*([A-Za-z_][\w.$\-/()@#<>]{0,199})(?=[ \t]|$)", ("component",)),
    "host": (r"[ \t]*([A-Za-z0-9][\w.\-/]{0,252})(?=[ \t]|$)", ("host",)),
    "source": (
        r"[ \t]*([\w.\-/$]{1,200}\." + _SOURCE_EXT + r":\d{1,7})[\]:]?(?=[ \t]|$)",
        ("source_location",),
    ),
    "ahead": (
        r"[ \t]*((?:[^ \t]{1,48}[ \t]+){1,3}?)("
        + "|".join(sorted((w.upper() for w in _LEVEL_WORDS), key=len, reverse=True))
        + r")(?=[ \t]|$)",
        ("header_fields", "level"),
    ),
}


class _Layout:
    __slots__ = ("final", "has_level", "regex", "roles", "steps")

    def __init__(self, steps: tuple[str, ...]) -> None:
        self.steps = steps
        self.regex = re.compile("".join(_STEP_REGEX[s][0] for s in steps) + r"[ \t]*")
        self.roles = tuple(r for s in steps for r in _STEP_REGEX[s][1])
        self.has_level = "level" in self.roles
        # The token-by-token reading stops after a process[pid]: or a Logger: field.
        self.final = steps[-1] in ("process", "component:")

    def read(self, line: str, pos: int, h: Header) -> bool:
        """Fill ``h`` from the line at ``pos``; False (``h`` untouched) when the line does not fit."""
        m = self.regex.match(line, pos)
        return m is not None and self.fill(line, m.end(), m.groups(), h)

    def fill(self, line: str, end: int, groups: tuple[Any, ...], h: Header) -> bool:
        """Fill ``h`` from this layout's groups of a match that ended at ``end``."""
        rest = line[end : end + 140] if not self.final else ""
        word = rest.split(" ", 1)[0]
        if not self.final and (
            rest[:1] in ("[", "|")
            or word in _SEPARATORS
            or word.endswith(":")
            or (not self.has_level and _level_of(word))
            or (word.isdigit() and len(word) <= 10)
            or (word.endswith("]") and _PROCESS.fullmatch(line, end, end + len(word)))
        ):
            return False  # more header than this layout holds: read it field by field
        found: dict[str, str] = {}
        level = host = process = None
        brackets = pids = 0
        for role, value in zip(self.roles, groups, strict=True):
            if role == "level":
                level = _level_of(value) if len(value) > 1 else _SINGLE_LETTER.get(value)
                if level is None:
                    return False
            elif role == "bracket":
                found["thread" if brackets == 0 else "context"] = value.strip()
                brackets += 1
            elif role == "pid":
                found["pid" if pids == 0 else "tid"] = value
                pids += 1
            elif role == "process":
                process = value
            elif role == "host":
                host = value
            elif role == "header_fields":
                found[role] = value.rstrip()
            else:
                found[role] = value
        h.attributes.update(found)
        h.level = level or h.level
        h.host, h.process = host, process
        h.message_start = end
        return True


class _Fast:
    """A source whose timestamp opens the line and whose fields follow a learned layout, read with
    one match: the timestamp's form, its end, and the layout, as one regex."""

    __slots__ = ("kind", "layout", "regex", "size")

    def __init__(self, kind: _Kind, layout: _Layout) -> None:
        self.kind = kind
        self.layout = layout
        self.size = kind.regex.groups
        self.regex = re.compile(
            # Atomic: the timestamp matches as it would alone, never shortened to fit the layout.
            r"[\[(]?((?>" + kind.regex.pattern + r"))(?![\w:])[\])>,]?" + layout.regex.pattern
        )

    def read(self, line: str, received_us: int, tz: tzinfo) -> Header | None:
        m = self.regex.match(line)
        if m is None:
            return None
        groups = m.groups()
        ctx = _Ctx(received_us, tz)
        try:
            us = self.kind.convert(_Groups(groups[1 : 1 + self.size]), ctx)
        except (ValueError, OverflowError):
            return None
        h = Header(timestamp_us=us, timestamp_text=groups[0], kind=self.kind.name, token_index=0)
        h.tags.extend(ctx.tags)
        if self.kind.name == "glog":
            h.level = _GLOG_LEVEL[groups[0][0]]
        if not self.layout.fill(line, m.end(), groups[1 + self.size :], h):
            return None
        return h


_LAYOUTS: dict[tuple[str, ...], _Layout | None] = {}


def _layout(steps: tuple[str, ...]) -> _Layout | None:
    layout = _LAYOUTS.get(steps, False)
    if layout is False:
        layout = None if not steps or "pipe" in steps or len(_LAYOUTS) > 1000 else _Layout(steps)
        _LAYOUTS[steps] = layout
    return layout  # type: ignore[return-value]


# -- reading a header --------------------------------------------------------------------------


def _token_starts(line: str, start: int, count: int = MAX_HEADER_TOKENS) -> list[int]:
    """Where the first ``count`` tokens start (within :data:`MAX_HEADER_CHARS`)."""
    return [m.start() for m in islice(_TOKEN.finditer(line, start, MAX_HEADER_CHARS), count)]


def _candidate_at(line: str, pos: int, index: int, ctx: _Ctx) -> Candidate | None:
    """The first timestamp form that matches at ``pos`` (after an opening bracket), if any."""
    if line[pos : pos + 1] in ("[", "(", "<"):
        pos += 1
    c = line[pos : pos + 1]
    if not c:
        return None
    kinds = _DIGIT_KINDS if c.isdigit() else _ALPHA_KINDS if c.isalpha() else ()
    for kind in kinds:
        if kind.first_token_only and index:
            continue
        r = _try(kind, line, pos, index, ctx)
        if r is not None:
            return r
    return None


def read_header(
    line: str,
    received_us: int,
    tz: tzinfo = UTC,
    hint: tuple[str, int] | None = None,
    layout: _Layout | None = None,
) -> Header:
    """The header fields of ``line`` and where its message starts.

    ``hint`` is a (timestamp form, token index) learned from earlier lines of the same source; it is
    tried first and the full search runs only when the line does not fit it.

    >>> h = read_header("2025-02-15 12:00:00,123 ERROR [main] com.acme.Pay: card declined", 0)
    >>> h.level, h.attributes["component"], h.attributes["thread"], h.timestamp_us
    ('ERROR', 'com.acme.Pay', 'main', 1739620800123000)
    """
    h = Header()
    start = 0
    pri = _PRI.match(line) if line[:1] == "<" else None
    if pri is not None:
        value = int(pri.group(1))
        if value <= 191:
            h.level = _SEVERITY[value & 7]
            h.attributes["syslog.facility"] = str(value >> 3)
            start = pri.end()
    ctx = _Ctx(received_us, tz)
    best: Candidate | None = None
    if hint is not None:
        kind = KINDS.get(hint[0])
        index = hint[1]
        if kind is not None and kind.rank >= EPOCH:
            starts = _token_starts(line, start, index + 1) if index else [start]
            if index < len(starts):
                pos = starts[index]
                if line[pos : pos + 1] in ("[", "(", "<"):
                    pos += 1
                best = _try(kind, line, pos, index, ctx)
    if best is None:
        starts = _token_starts(line, start)
        found: list[Candidate] = []
        after = -1
        for index, pos in enumerate(starts):
            if pos < after:
                continue  # inside a timestamp already found ("Jun 14 15:16:01" spans three tokens)
            c = _candidate_at(line, pos, index, ctx)
            if c is not None:
                found.append(c)
                after = c[3]
        if not found:
            return h
        best = _choose(found, line, h, tz)
    kind, pos, us, end, index, tags = best
    h.timestamp_us, h.kind, h.token_index = us, kind.name, index
    h.timestamp_text = line[pos:end]
    h.tags.extend(tags)
    if kind.name == "glog":
        h.level = _GLOG_LEVEL[line[pos]]
    prefix = line[start:pos].strip(" \t[(<")
    if prefix:
        h.attributes["header_prefix"] = prefix[:256]
        if h.level is None:
            # "INFO  [main] 2024-01-02 ...": a level written before the time.
            for word in prefix.split(None, 3)[:3]:
                lvl = _level_of(word)
                if lvl is not None and word.strip("[]<>():, ").isupper():
                    h.level = lvl
                    break
    if end < len(line) and line[end] in "])>,":
        end += 1
    if layout is None or not layout.read(line, end, h):
        steps: list[str] = []
        h.message_start = _read_roles(line, end, h, kind.name in _HOST_FOLLOWS, steps)
        h.steps = tuple(steps)
    return h


# Forms after which a bare word before "proc[pid]:" is a host name (syslog and its descendants).
_HOST_FOLLOWS = frozenset(("syslog", "iso", "month_day_dot", "ymd_slash"))


def _choose(found: list[Candidate], line: str, h: Header, tz: tzinfo) -> Candidate:
    """The most complete candidate (leftmost among equals); a date and a time in neighbouring
    fields are one timestamp; two full timestamps that disagree are both kept and the record
    tagged."""
    best = max(found, key=lambda c: (c[0].rank, -c[1]))
    rank = best[0].rank
    if rank == DATE:
        for c in found:
            if c[0].rank == TIME and 0 < c[4] - best[4] <= 2:
                m = KINDS["time"].regex.match(line, c[1])
                assert m is not None
                hh, mi, ss, frac = m.groups()
                t = best[2] + ((int(hh) * 60 + int(mi)) * 60 + int(ss)) * 1_000_000 + _frac_us(frac)
                return (best[0], best[1], t, c[3], c[4], ())
    if "year_inferred" in best[5]:
        # "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 ...": the year is in the header already.
        for c in found:
            if c[0].rank in (EPOCH, DATE):
                ctx = _Ctx(c[2] + _DAY_US, tz)
                again = _try(best[0], line, best[1], best[4], ctx)
                if again is not None:
                    best = (*again[:5], tuple(t for t in again[5] if t != "year_inferred"))
                break
    if rank == FULL:
        for c in found:
            if c[1] != best[1] and c[0].rank == FULL and abs(c[2] - best[2]) > _DAY_US:
                h.tags.append("ambiguous_timestamp")
                h.attributes["timestamp_alternative"] = line[c[1] : c[3]]
                break
    return best


class HeaderReader:
    """:func:`read_header` with each source's learned shape remembered (bounded, per source): the
    timestamp's form and token, and the layout of the fields after it as one regex (one regex with
    the timestamp too, when the timestamp opens the line)."""

    def __init__(self, max_sources: int = 10_000) -> None:
        self._shapes: dict[tuple[str, str | None], tuple[str, int, _Layout | None, _Fast | None]] = {}
        self._max_sources = max_sources

    def read(self, line: str, source: tuple[str, str | None], received_us: int, tz: tzinfo = UTC) -> Header:
        shape = self._shapes.get(source)
        if shape is None:
            h = read_header(line, received_us, tz)
        else:
            fast = shape[3]
            if fast is not None and line[:1] != "<":
                found = fast.read(line, received_us, tz)
                if found is not None:
                    return found
            h = read_header(line, received_us, tz, (shape[0], shape[1]), shape[2])
        if h.kind is not None and (
            shape is None or h.steps is not None or shape[0] != h.kind or shape[1] != h.token_index
        ):
            if len(self._shapes) >= self._max_sources:
                self._shapes.clear()
            steps = h.steps
            layout = _layout(steps) if steps is not None else shape[2] if shape else None
            self._shapes[source] = (h.kind, h.token_index, layout, _fast(h.kind, h.token_index, layout))
        return h


_FASTS: dict[tuple[str, tuple[str, ...]], _Fast] = {}


def _fast(kind_name: str, index: int, layout: _Layout | None) -> _Fast | None:
    kind = KINDS[kind_name]
    if index != 0 or layout is None or kind.rank < EPOCH:
        return None
    key = (kind_name, layout.steps)
    fast = _FASTS.get(key)
    if fast is None:
        if len(_FASTS) > 1000:
            return None
        fast = _FASTS[key] = _Fast(kind, layout)
    return fast


def with_header(line: str, h: Header, raw: Parsed) -> Parsed:
    """``raw`` (a ``raw`` parse: the whole line as message) replaced by the line's header fields and
    its message; a ``plain`` parse keeps its fields and loses the rest of the header from its
    message; either is returned as it was when no timestamp was found (no header to trust)."""
    if h.timestamp_us is None:
        return raw
    message = line[h.message_start :].strip() or line
    if raw.fmt == "plain":
        # The plaintext parser read the time, the level and a bracketed service; what follows them
        # (a logger, a thread, pids) still comes off the message, and the time takes the zone.
        raw.message = message
        raw.timestamp_us = h.timestamp_us
        for k, v in h.attributes.items():
            if not (k == "thread" and v == raw.service):
                raw.attributes.setdefault(k, v)
        return raw
    p = Parsed("text", message)
    p.timestamp = h.timestamp_text
    p.timestamp_us = h.timestamp_us
    p.level = h.level or raw.level
    p.host = h.host
    p.service = h.process
    attrs = h.attributes
    for k, v in raw.attributes.items():
        attrs.setdefault(k, v)
    p.attributes = attrs
    return p


def plain_has_more_header(p: Parsed) -> bool:
    """Whether a ``plain`` parse (time, level, [service]) left header fields at the start of its
    message: a logger, a thread, pids, a separator. Most plain lines have none, and skip reading
    the header again."""
    if p.level is None:
        return True
    message = p.message
    c = message[:1]
    if c in ("[", "|", "-", "(", "<") or c.isdigit():
        return True
    first, _, rest = message.partition(" ")
    if first.endswith(":") or first.endswith("]") or first.rstrip(",") in _SEPARATORS:
        return True
    second = rest.lstrip(" ").partition(" ")[0]
    return second in _SEPARATORS or second[:1] == "["
