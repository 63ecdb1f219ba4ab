"""Turning a request body into Kafka messages, entry by entry (pure: no I/O, unit-tested).

The API only refuses what cannot become a record at all: not JSON where JSON was promised, not an
object or a line, over the size limit, empty. Parsing a line into a record is the ingest job's work.
A refused entry is reported by its index and the rest of the batch goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.collector.encoder import EntryTooDeep, EnvelopeEncoder
from core.records.multiline import Event, MultilineJoiner
from schemas.rejection import RejectReason

# Listed in the response; past this, only the counts grow (a client sending 100k bad lines does not
# need a 10 MB answer to learn that).
MAX_LISTED_ERRORS = 1000

NOT_AN_OBJECT = "NOT_AN_OBJECT"
TOO_DEEP = "TOO_DEEP"


class PayloadError(ValueError):
    """The body as a whole is unreadable (400)."""


class TooManyEntries(ValueError):
    """The request carries more entries than one request may (413); nothing of it is sent."""

    def __init__(self, cap: int, count: int, what: str = "") -> None:
        super().__init__(
            f"a request may carry at most {cap} entries (STRATA_INGEST_MAX_ENTRIES){what}; "
            "split the batch into smaller requests"
        )
        self.cap = cap
        self.count = count  # as many as were counted before stopping (the whole array's length)


# JSON objects a request may hold per entry of the cap, counted before the body is parsed: an entry
# with its metadata is a few objects, while a gzip bomb of `[{"m":1},…]` is millions, each of which
# the parser would build (holding the interpreter lock) before the entries could be counted.
OBJECTS_PER_ENTRY = 4


def check_json_work(body: bytes, max_entries: int) -> None:
    """:class:`TooManyEntries` when ``body`` holds more than ``OBJECTS_PER_ENTRY`` times the cap in
    ``{`` characters (a bound that braces inside strings only raise), before parsing it."""
    if not max_entries or len(body) < max_entries * OBJECTS_PER_ENTRY:
        return
    objects = body.count(b"{")
    if objects > max_entries * OBJECTS_PER_ENTRY:
        raise TooManyEntries(max_entries, objects, f"; this body holds {objects} JSON objects")


@dataclass
class Outcome:
    """What one request produced: messages for Kafka and per-index refusals."""

    max_record_bytes: int
    # Entries one request may carry (0: no cap). Counting past it raises TooManyEntries, so a body
    # of a million tiny entries is refused at the cap instead of being encoded in full.
    max_entries: int = 0
    _received: int = field(default=0, repr=False)
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    # index of each message, so a caller (the _bulk route) can map acknowledgements back to items
    indexes: list[int] = field(default_factory=list)

    @property
    def received(self) -> int:
        return self._received

    @received.setter
    def received(self, value: int) -> None:
        if self.max_entries and value > self.max_entries:
            raise TooManyEntries(self.max_entries, value)
        self._received = value

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def accepted(self) -> int:
        return len(self.messages)

    def reject(self, index: int, reason: str, detail: str) -> None:
        self.rejected_by_reason[reason] += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"index": index, "reason": reason, "detail": detail})

    def too_large(self, index: int, size: int, what: str = "the line is") -> bool:
        """Whether ``size`` bytes are over the record limit; if so the item is rejected, saying so."""
        if size <= self.max_record_bytes:
            return False
        self.reject(
            index, str(RejectReason.TOO_LARGE), f"{what} {size} bytes; the limit is {self.max_record_bytes}"
        )
        return True

    def encode(self, index: int, make: Callable[[], tuple[bytes, bytes]]) -> bool:
        """Encode one entry with ``make`` and :meth:`add` it; an entry nested too deep to encode is
        refused as ``TOO_DEEP`` and the rest of the request goes on."""
        try:
            message = make()
        except EntryTooDeep as exc:
            self.reject(index, TOO_DEEP, str(exc))
            return False
        return self.add(index, message)

    def add(self, index: int, message: tuple[bytes, bytes]) -> bool:
        if self.too_large(index, len(message[1]), "the entry is, once encoded,"):
            return False
        self.messages.append(message)
        self.indexes.append(index)
        return True

    def response(self, batch_id: str) -> dict[str, Any]:
        return {
            "status": "accepted" if self.accepted else "rejected",
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "errors_truncated": self.rejected > len(self.errors),
            "batch_id": batch_id,
        }


def _str_field(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def add_item(
    out: Outcome,
    encoder: EnvelopeEncoder,
    index: int,
    item: Any,
    *,
    service: str | None,
    host: str | None = None,
) -> None:
    """One entry of a JSON batch: an object (structured) or a string (a raw line to parse)."""
    if isinstance(item, dict):
        if not item:
            out.reject(index, str(RejectReason.EMPTY), "the entry is an empty object")
            return
        own_service = _str_field(item.get("service")) or service
        own_host = _str_field(item.get("host")) or host
        out.encode(
            index,
            lambda: encoder.entry(item, service=own_service, host=own_host, entry_id=encoder.entry_id(index)),
        )
    elif isinstance(item, str):
        if not item.strip():
            out.reject(index, str(RejectReason.EMPTY), "the line is empty")
            return
        out.add(index, encoder.line(item, service=service, host=host, entry_id=encoder.entry_id(index)))
    else:
        out.reject(
            index, NOT_AN_OBJECT, f"an entry must be a JSON object or a string, not {type(item).__name__}"
        )


def decode_json_batch(
    body: bytes,
    encoder: EnvelopeEncoder,
    *,
    max_record_bytes: int,
    default_service: str | None,
    default_host: str | None = None,
    content_type: str = "application/json",
    max_entries: int = 0,
) -> Outcome:
    """Decode ``/v1/logs/ingest`` bodies: ``{"service", "logs": [...]}``, a JSON array, one object,
    NDJSON (one entry per line; the index is the line number) or ``text/plain`` raw lines.
    More than ``max_entries`` entries (0: no cap) raise :class:`TooManyEntries`.
    """
    out = Outcome(max_record_bytes=max_record_bytes, max_entries=max_entries)
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "text/plain":
        check_json_work(body, max_entries)
    if kind == "text/plain":
        decode_lines(body, out, encoder, service=default_service, host=default_host)
        return out
    if "ndjson" in kind or "jsonl" in kind or "json-seq" in kind:
        decode_ndjson(body, out, encoder, service=default_service, host=default_host)
        return out
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if body.count(b"\n") >= 1 and body.lstrip()[:1] == b"{":
            # NDJSON sent as application/json (common with shell tools): accept it.
            decode_ndjson(body, out, encoder, service=default_service, host=default_host)
            return out
        raise PayloadError(f"the body is not valid JSON: {exc}") from exc
    if isinstance(doc, dict) and "logs" in doc:
        logs = doc["logs"]
        if not isinstance(logs, list):
            raise PayloadError("'logs' must be an array of entries")
        service = _str_field(doc.get("service")) or default_service
        host = _str_field(doc.get("host")) or default_host
        out.received = len(logs)
        for index, item in enumerate(logs):
            add_item(out, encoder, index, item, service=service, host=host)
    elif isinstance(doc, list):
        out.received = len(doc)
        for index, item in enumerate(doc):
            add_item(out, encoder, index, item, service=default_service, host=default_host)
    elif isinstance(doc, dict):
        out.received = 1
        add_item(out, encoder, 0, doc, service=default_service, host=default_host)
    else:
        raise PayloadError('expected {"service": …, "logs": […]}, a JSON array of entries, or NDJSON')
    return out


def decode_ndjson(
    body: bytes, out: Outcome, encoder: EnvelopeEncoder, *, service: str | None, host: str | None
) -> None:
    """One entry per line. Entries whose message continues the one before (a stack trace a
    container runtime wrote one line per entry, as Docker's json-file does) join that entry."""
    joiner = _EntryJoiner(out, encoder, service, host)
    for index, line in enumerate(body.split(b"\n")):
        if not line.strip():
            continue
        # Checked before parsing, so a huge line is refused without building it in memory first.
        if len(line) > out.max_record_bytes:
            joiner.flush()  # nothing joins across a refused line
            out.received += 1
            out.too_large(index, len(line))
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            joiner.flush()
            out.received += 1
            out.reject(index, str(RejectReason.MALFORMED_JSON), f"line {index} is not JSON: {exc}")
            continue
        joiner.push(index, item)
    joiner.flush()


# Where NDJSON entries carry their text: Strata's and most loggers' "message", Docker's "log".
_MESSAGE_KEYS = ("message", "log", "msg")


class _EntryJoiner:
    """Joins consecutive NDJSON entries into one when each later entry's message continues the
    first's (:class:`MultilineJoiner`'s rules); the joined entry keeps the first's other fields."""

    def __init__(self, out: Outcome, encoder: EnvelopeEncoder, service: str | None, host: str | None) -> None:
        self.out, self.encoder, self.service, self.host = out, encoder, service, host
        self.joiner = MultilineJoiner(max_bytes=max(out.max_record_bytes // 2, 1024))
        self.waiting: list[tuple[int, dict[str, Any], str]] = []  # (index, entry, its message key)

    def push(self, index: int, item: Any) -> None:
        key = _message_key(item)
        if key is None:  # not a joinable entry: what waits goes first, in order
            self.flush()
            self.out.received += 1
            add_item(self.out, self.encoder, index, item, service=self.service, host=self.host)
            return
        self.waiting.append((index, item, key))
        self._emit(self.joiner.push(item[key].rstrip("\n")))

    def flush(self) -> None:
        self._emit(self.joiner.flush())

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            taken, self.waiting = self.waiting[: event.lines], self.waiting[event.lines :]
            index, first, key = taken[0]
            entry = first if event.lines == 1 else {**first, key: event.text}
            if "multiline_split" in event.tags:
                entry = {**entry, "multiline_split": "true"}
            self.out.received += 1
            add_item(self.out, self.encoder, index, entry, service=self.service, host=self.host)


def _message_key(item: Any) -> str | None:
    if isinstance(item, dict):
        for key in _MESSAGE_KEYS:
            if isinstance(item.get(key), str):
                return key
    return None


def decode_lines(
    body: bytes, out: Outcome, encoder: EnvelopeEncoder, *, service: str | None, host: str | None
) -> None:
    """Raw text lines, continuation lines (stack traces, tracebacks) joined to the event they
    continue; an event's index is the number of its first line."""
    joiner = MultilineJoiner(max_bytes=max(out.max_record_bytes // 2, 1024))
    first = 0
    for line in body.split(b"\n"):
        # surrogateescape keeps invalid UTF-8 byte for byte through the join.
        for event in joiner.push(line.rstrip(b"\r").decode("utf-8", "surrogateescape")):
            _add_line(out, encoder, first, event, service, host)
            first += event.lines
    for event in joiner.flush():
        _add_line(out, encoder, first, event, service, host)


def _add_line(
    out: Outcome, encoder: EnvelopeEncoder, index: int, event: Event, service: str | None, host: str | None
) -> None:
    if not event.text.strip():
        return
    line = event.text.encode("utf-8", "surrogateescape")
    out.received += 1
    if out.too_large(index, len(line)):
        return
    # A split event says so on both parts (records carry it as an attribute).
    attributes = {"multiline_split": "true"} if "multiline_split" in event.tags else None
    out.add(
        index,
        encoder.line(
            line, service=service, host=host, attributes=attributes, entry_id=encoder.entry_id(index)
        ),
    )
