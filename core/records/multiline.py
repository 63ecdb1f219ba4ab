"""Multi-line events: a stack trace, a panic dump or a wrapped message is one record, not one per line.

    joiner = MultilineJoiner()
    for line in lines:
        for event in joiner.push(line):
            handle(event.text, event.tags)
    for event in joiner.flush():          # end of input; a live stream calls poll(now) instead
        handle(event.text, event.tags)

A line continues the event before it when it is indented, starts with ``Caused by:``,
``Suppressed:``, ``... N more`` or ``--- End of ... ---`` (Java, .NET), or belongs to a block
that runs until its own end: Python's ``Traceback (most recent call last):`` up to and including
its exception line (chained tracebacks too), and Go's ``goroutine N [running]:`` dump. Everything
else starts a new event.

Bounded as Filebeat's ``multiline.max_lines`` and Fluent Bit's multiline parsers are: an event that
reaches ``max_lines`` or ``max_bytes`` is emitted and the lines after it start a new one; both parts
carry the tag ``multiline_split``, so nothing is dropped and the cut is visible. A stream that goes
quiet emits its pending event after ``flush_after`` seconds (:meth:`MultilineJoiner.poll`).

Pure logic: no I/O, no clock of its own (callers pass ``now``), so it serves ``strata parse``,
``strata send`` and the collector alike and is tested in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MORE = re.compile(r"\.\.\. \d{1,9} (?:more|common frames omitted)")
_PY_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_GOROUTINE = re.compile(r"goroutine \d{1,12} \[[^\]]{1,200}\]:")
# A Go stack frame's function line: "main.main()", "net/http.(*conn).serve(0xc000)".
_GO_FRAME = re.compile(r"[\w./*()\-\[\]]{1,512}\(.{0,2048}\)")


@dataclass
class Event:
    """One event's text (its lines joined with ``\\n``), how many lines it holds, and its tags."""

    text: str
    lines: int = 1
    tags: list[str] = field(default_factory=list)


_NONE, _PYTHON, _GO = 0, 1, 2
# First characters of every line that can continue an event or open a block (cheap pre-checks):
# whitespace, "Caused by:", "Suppressed:", "--- End of", "---> ", "... N more", "During handling",
# "The above exception", "Traceback", "goroutine", and "" (an empty line).
_CONTINUATION_FIRST = frozenset((" ", "\t", "C", "S", "-", ".", "D", "T", "g", "", "\r", "\f", "\v"))
_BLOCK_FIRST = frozenset((" ", "\t", "T", "g", "p"))


class MultilineJoiner:
    """Joins continuation lines to the event they belong to; see the module docstring."""

    def __init__(self, max_lines: int = 500, max_bytes: int = 64 * 1024, flush_after: float = 2.0) -> None:
        if max_lines < 1 or max_bytes < 1:
            raise ValueError("max_lines and max_bytes must be positive")
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.flush_after = flush_after
        self._lines: list[str] = []
        self._bytes = 0
        self._split = False  # the pending event continues one that was cut at a bound
        self._block = _NONE
        self._after_exception = False  # the pending event ends with a Python exception line
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    def push(self, line: str, now: float = 0.0) -> list[Event]:
        """Add one line (without its newline); returns the events it completed (usually 0 or 1)."""
        out: list[Event] = []
        if self._block == _NONE and not self._after_exception and not line.strip():
            # A blank line between events joins neither: it is passed on as it came.
            if self._lines:
                out.append(self._emit())
            out.append(Event(line))
        elif self._lines and self._continues(line):
            size = len(line) + 1
            if len(self._lines) >= self.max_lines or self._bytes + size > self.max_bytes:
                out.append(self._emit(split_after=True))
            self._lines.append(line)
            self._bytes += size
        else:
            if self._lines:
                out.append(self._emit())
            self._block = _NONE
            self._lines = [line]
            self._bytes = len(line)
            self._enter_block(line)
        self._last = now
        return out

    def poll(self, now: float) -> list[Event]:
        """The pending event if no line came for ``flush_after`` seconds (live streams)."""
        if self._lines and now - self._last >= self.flush_after:
            return [self._emit()]
        return []

    def flush(self) -> list[Event]:
        """The pending event, at the end of the input."""
        return [self._emit()] if self._lines else []

    # -- rules -----------------------------------------------------------------------------

    def _enter_block(self, line: str) -> None:
        if line[:1] not in _BLOCK_FIRST:
            return
        stripped = line.strip()
        if stripped == "Traceback (most recent call last):":
            self._block = _PYTHON
        elif _GOROUTINE.match(stripped) or stripped.startswith("panic: "):
            self._block = _GO

    def _continues(self, line: str) -> bool:
        block = self._block
        if block == _PYTHON:
            if not line.strip() or line[:1] in (" ", "\t"):
                return True
            if line.startswith(_PY_CHAIN) or line.startswith("Traceback (most recent call last):"):
                return True
            # The exception line ("ValueError: bad") closes the traceback and belongs to it;
            # after it only a chained traceback continues the event.
            self._block = _NONE
            self._after_exception = True
            return True
        if block == _GO:
            stripped = line.strip()
            if (
                not stripped
                or line[:1] in (" ", "\t")
                or _GOROUTINE.match(stripped)
                or stripped.startswith(("created by ", "exit status ", "[signal ", "panic: "))
                or _GO_FRAME.fullmatch(stripped)
            ):
                return True
            self._block = _NONE
            return False
        c = line[:1]
        if c not in _CONTINUATION_FIRST:
            return False  # the common case: a line starting like a new event
        if not line.strip():
            # Only after a Python exception line: a chained traceback may follow the blank line.
            return self._after_exception
        if c in (" ", "\t"):
            return bool(line.strip())
        if line.startswith(("Caused by:", "Suppressed:", "--- End of ", "---> ")):
            return True
        if c == "." and _MORE.match(line):
            return True
        if line.startswith(_PY_CHAIN) and getattr(self, "_after_exception", False):
            self._block = _PYTHON
            return True
        if line.startswith("Traceback (most recent call last):"):
            # A traceback printed right after a log line ("ERROR failed\nTraceback ...") is its detail.
            self._block = _PYTHON
            return True
        stripped = line.strip()
        if _GOROUTINE.match(stripped):
            self._block = _GO
            return True
        return False

    def _emit(self, split_after: bool = False) -> Event:
        tags: list[str] = []
        if self._split or split_after:
            tags.append("multiline_split")
        if len(self._lines) > 1:
            tags.append("multiline")
        lines = self._lines
        event = Event(lines[0] if len(lines) == 1 else "\n".join(lines), len(lines), tags)
        self._lines = []
        self._bytes = 0
        self._split = split_after
        self._after_exception = False
        if not split_after:
            self._block = _NONE
        return event
