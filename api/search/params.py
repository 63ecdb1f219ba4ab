"""What a search request says, in plain values: times, filters, the opaque cursor."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from core.query import (
    Node,
    Or,
    Position,
    QueryError,
    Term,
    and_all,
    levels_from,
    parse,
)
from schemas.record import micros

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE_RE = re.compile(r"^now(?:\s*([+-])\s*(\d+)\s*([smhdw]))?$")
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
DEFAULT_RANGE = timedelta(hours=24)


def duration_s(text: str) -> int:
    """Seconds in ``15m``, ``2h``, ``7d``, ``1w``."""
    match = _DURATION_RE.match(text.strip().lower())
    if not match:
        raise QueryError(f"not a duration: {text!r}; write e.g. 30s, 15m, 2h, 7d, 1w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str, now: datetime) -> datetime:
    """ISO 8601 (a date, or a date and time; UTC when no offset), ``now``, ``now-15m`` or ``15m``
    (meaning 15 minutes ago)."""
    value = text.strip()
    lowered = value.lower()
    match = _RELATIVE_RE.match(lowered)
    if match:
        if not match.group(1):
            return now
        delta = timedelta(seconds=int(match.group(2)) * _UNITS[match.group(3)])
        return now - delta if match.group(1) == "-" else now + delta
    if _DURATION_RE.match(lowered):
        return now - timedelta(seconds=duration_s(lowered))
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise QueryError(
            f"not a time: {text!r}; use ISO 8601 (2025-02-15T12:00:00Z) or a relative time (now-15m)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def resolve_range(
    from_: str | None, to: str | None, now: datetime, default: timedelta = DEFAULT_RANGE
) -> tuple[int, int]:
    """``[start_us, end_us)``; ``to`` defaults to now and ``from`` to ``default`` before ``to``."""
    end = parse_time(to, now) if to else now
    start = parse_time(from_, now) if from_ else end - default
    if start >= end:
        raise QueryError("'from' must be before 'to'")
    # `to` is inclusive for a person ("up to 12:00:00"): the slice ends a microsecond after it.
    return micros(start), micros(end) + 1


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _any_of(field: str, values: list[str]) -> Node | None:
    if not values:
        return None
    terms = tuple(Term(field, v) for v in dict.fromkeys(values))
    return terms[0] if len(terms) == 1 else Or(terms)


@dataclass(frozen=True)
class Filters:
    """The request's ``q`` and the structured filters, as one AST."""

    q: str = ""
    service: tuple[str, ...] = ()
    level: tuple[str, ...] = ()
    host: tuple[str, ...] = ()
    trace_id: tuple[str, ...] = ()

    def ast(self) -> Node:
        parts: list[Node] = [parse(self.q)]
        for field, values in (
            ("service", [v.lower() for v in _split(list(self.service))]),
            ("host", [v.lower() for v in _split(list(self.host))]),
            ("trace_id", _split(list(self.trace_id))),
        ):
            node = _any_of(field, values)
            if node is not None:
                parts.append(node)
        if self.level:
            levels: list[str] = []
            for spec in self.level:
                levels.extend(lv.value for lv in levels_from(spec))
            parts.append(_any_of("level", levels) or Or(()))
        return and_all(*parts)

    def fingerprint(self) -> str:
        """A short hash that ties a cursor to the query it came from."""
        data = orjson.dumps([self.q, self.service, self.level, self.host, self.trace_id])
        return hashlib.blake2b(data, digest_size=6).hexdigest()


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts, and the range and query it belongs to."""

    after: Position
    order: str
    start_us: int
    end_us: int
    fingerprint: str

    def encode(self) -> str:
        data = {
            "v": 1,
            "t": self.after.ts_us,
            "id": self.after.log_id,
            "o": self.order,
            "f": self.start_us,
            "u": self.end_us,
            "h": self.fingerprint,
        }
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = orjson.loads(raw)
            if data.get("v") != 1 or data["o"] not in ("asc", "desc"):
                raise ValueError
            return cls(
                Position(int(data["t"]), str(data["id"])),
                str(data["o"]),
                int(data["f"]),
                int(data["u"]),
                str(data["h"]),
            )
        except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise QueryError("the cursor is not one this API returned") from None
