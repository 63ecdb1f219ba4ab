"""Strata's query language: the ``q`` of a search, a tail subscription or an alert rule.

``parse(q)`` turns the text into a small AST; ``matches(ast, record)`` evaluates it in Python. Each
storage tier compiles the same AST into its own query (OpenSearch DSL, CQL, DuckDB SQL) with the
user's text only ever passed as data, so ``matches`` is the reference every tier is tested against.

Grammar (operators are upper case; lower-case ``and``/``or``/``not`` are plain words)::

    query   := or_expr?
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= not_expr (["AND"] not_expr)*        -- juxtaposition means AND
    not_expr:= "NOT" not_expr | primary
    primary := "(" or_expr ")" | term
    term    := word | "quoted phrase" | word* | *
             | field ":" (word | "quoted phrase" | word* | *)
             | field (">=" | ">" | "<=" | "<") level       -- field is ``level``

Meaning:

- a bare word or ``"quoted phrase"`` searches ``message`` as OpenSearch's standard analyzer
  does: the text is split into words (Unicode word rules, lower-cased) and the message must contain
  those words next to each other, in that order. ``pay*`` matches a message with a word starting
  with ``pay``. ``*`` alone matches everything.
- ``field:value`` is an exact, case-sensitive match on a keyword field (``service``, ``host``,
  ``level``, ``trace_id``, ...; ``tags`` matches one of the tags). ``service`` and ``host`` values
  are lower-cased and ``level`` values upper-cased, as the pipeline normalizes them.
  ``field:pre*`` is a prefix match, ``field:*`` means the field is present.
- ``attributes.req_id:abc`` matches an attribute; a field name that is not a record field is an
  attribute too (``req_id:abc``).
- ``message:...`` is the same as the bare form.
- ``level>=WARN`` (or ``level:>=WARN``) is every level at least as severe as WARN.
- a backslash escapes the next character in an unquoted word (``a\\:b``, ``50\\%``, ``\\*``), and
  ``\\"`` or ``\\\\`` inside quotes.

Example::

    >>> ast = parse('payment AND (timeout OR "connection reset") NOT service:billing')
    >>> matches(ast, record)
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Generic, Protocol, TypeAlias, TypeVar

from core.records.normalize import normalize_level
from schemas.record import FIELDS_BY_NAME, Kind, Level, Record, micros

K = TypeVar("K")

MAX_QUERY_CHARS = 4096
MAX_TERMS = 256
MAX_DEPTH = 32

LEVEL_ORDER: tuple[Level, ...] = (
    Level.TRACE,
    Level.DEBUG,
    Level.INFO,
    Level.WARN,
    Level.ERROR,
    Level.FATAL,
)

# Fields a `field:value` term may name, with the kinds a term can compare. Timestamps are
# selected with from/to, `masked` is a count map: neither is a term.
_QUERYABLE_KINDS = {Kind.ID, Kind.KEYWORD, Kind.TEXT, Kind.STRING_LIST}
TEXT_FIELD = "message"
ATTRIBUTES = "attributes"
_LOWERED_FIELDS = {"service", "host"}
_FIELD_NAME_RE = re.compile(r"^[A-Za-z_@][\w.@-]*$")
_COMPARISON_RE = re.compile(r"^([A-Za-z_][\w.]*):?(>=|<=|>|<)(.+)$", re.S)


class QueryError(ValueError):
    """A query that cannot be parsed, with the position and a message a user can act on."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        super().__init__(message if position is None else f"{message} (at character {position + 1})")


# -- AST ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchAll:
    """No condition: every record."""


@dataclass(frozen=True, slots=True)
class Text:
    """The message contains these words next to each other (a word is a one-word phrase)."""

    words: tuple[str, ...]  # lower-cased, as :func:`words` splits them
    raw: str


@dataclass(frozen=True, slots=True)
class TextPrefix:
    """The message has a word starting with ``prefix`` (lower-cased)."""

    prefix: str


@dataclass(frozen=True, slots=True)
class Term:
    """``field`` equals ``value`` exactly (for ``tags``: one of the tags does)."""

    field: str  # a record field name, or "attributes.<key>"
    value: str


@dataclass(frozen=True, slots=True)
class Prefix:
    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Exists:
    field: str


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node: TypeAlias = MatchAll | Text | TextPrefix | Term | Prefix | Exists | And | Or | Not
Leaf: TypeAlias = Text | TextPrefix | Term | Prefix | Exists


def attribute_key(field: str) -> str | None:
    """``"req_id"`` for ``"attributes.req_id"``, None for a record field."""
    return field[len(ATTRIBUTES) + 1 :] if field.startswith(ATTRIBUTES + ".") else None


# -- words, as OpenSearch's standard analyzer splits them ------------------------------------------
#
# Lucene's StandardTokenizer follows Unicode word segmentation (UAX #29). The rules below are the
# ones that matter for log lines: letters and digits join, `_` joins anything, `.` `'` `’` join two
# letters (db.example.com, can't) or two digits (3.14), `:` joins two letters (foo:bar), `,` `;`
# join two digits (1,000); ideographs and hiragana are one word each; words over 255 characters
# are cut. Lower-casing is per code point, as Lucene's LowerCaseFilter does.

_MID_LETTER = frozenset(":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a")
_MID_NUM_LET = frozenset(".'\u2018\u2019\u2024\ufe52\uff07\uff0e")
_MID_NUM = frozenset(",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b")
_EXTEND_NUM_LET = frozenset("_\u203f\u2040\u2054\ufe33\ufe34\ufe4d\ufe4e\ufe4f\uff3f")
_MAX_WORD = 255

_LETTER, _DIGIT, _JOIN, _IDEO, _EXTEND, _OTHER, _KATA = range(7)
_WORDISH = (_LETTER, _DIGIT, _KATA, _JOIN)


def _is_ideographic(cp: int) -> bool:
    return (
        0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x3FFFF
        or 0x3040 <= cp <= 0x309F  # hiragana
        or 0x3005 <= cp <= 0x3007
    )


def _is_katakana(cp: int) -> bool:
    return (
        0x30A0 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0x32D0 <= cp <= 0x3357 or 0xFF66 <= cp <= 0xFF9D
    )


def _is_emoji(cp: int) -> bool:
    return 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF


def _char_class(ch: str) -> int:
    if ch in _EXTEND_NUM_LET:
        return _JOIN
    cp = ord(ch)
    cat = unicodedata.category(ch)
    if cat == "Nd":
        return _DIGIT
    if cat[0] == "L" or cat == "Nl":
        if _is_ideographic(cp):
            return _IDEO
        return _KATA if _is_katakana(cp) else _LETTER
    if cat in ("Mn", "Mc", "Me", "Cf"):
        return _EXTEND
    if _is_emoji(cp):
        return _IDEO  # Lucene 9 keeps each emoji as a word of its own
    return _OTHER


def _joins(left: int, right: int) -> bool:
    if left in (_LETTER, _DIGIT) and right in (_LETTER, _DIGIT):
        return True
    if left == _KATA and right == _KATA:
        return True
    if right == _JOIN:
        return left in _WORDISH
    return left == _JOIN and right in (_LETTER, _DIGIT, _KATA)


def _lower(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else low[0]


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``, as the standard analyzer makes them.

    >>> words("Payment FAILED for db.example.com: can't connect (3.14s)")
    ['payment', 'failed', 'for', 'db.example.com', "can't", 'connect', '3.14s']
    """
    out: list[str] = []
    classes = [_char_class(c) for c in text]
    n = len(text)
    i = 0
    while i < n:
        cls = classes[i]
        skip = 1
        if text[i] == "\u200d" and i + 1 < n and _is_emoji(ord(text[i + 1])):
            cls, skip = _IDEO, 2  # a zero-width joiner starts the emoji sequence it precedes
        if cls == _IDEO:
            j = i + skip
            while j < n and classes[j] == _EXTEND:
                j += 1
            out.append("".join(_lower(c) for c in text[i:j]))
            i = j
            continue
        if cls not in _WORDISH:
            i += 1
            continue
        buf = [_lower(text[i])]
        has_word_char = cls != _JOIN
        last = cls  # the class of the last word character, skipping extend marks
        i += 1
        while i < n:
            c = classes[i]
            if c == _EXTEND:
                buf.append(text[i])
                i += 1
                continue
            if _joins(last, c):
                buf.append(_lower(text[i]))
                has_word_char = has_word_char or c != _JOIN
                last = c
                i += 1
                continue
            # a middle character joins only when the same kind stands on both sides
            ch = text[i]
            j = i + 1
            while j < n and classes[j] == _EXTEND:
                j += 1
            nxt = classes[j] if j < n else _OTHER
            if last == _LETTER and nxt == _LETTER and (ch in _MID_LETTER or ch in _MID_NUM_LET):
                buf.append(ch)
                i += 1
                continue
            if last == _DIGIT and nxt == _DIGIT and (ch in _MID_NUM or ch in _MID_NUM_LET):
                buf.append(ch)
                i += 1
                continue
            break
        if not has_word_char:
            continue  # a run of underscores alone is no word
        token = "".join(buf)
        for k in range(0, len(token), _MAX_WORD):
            out.append(token[k : k + _MAX_WORD])
    return out


def lower_prefix(text: str) -> str:
    """How a ``pay*`` prefix is compared with lower-cased words."""
    return "".join(_lower(c) for c in text)


# -- lexer -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "(" ")" "AND" "OR" "NOT" "TERM"
    pos: int
    field: str | None = None
    value: str = ""
    quoted: bool = False
    star: bool = False  # an unescaped trailing `*`
    op: str | None = None  # a comparison operator


def _read_quoted(q: str, i: int) -> tuple[str, int]:
    """The text of the quoted string starting at ``q[i] == '"'`` and the index after it."""
    start = i
    i += 1
    buf: list[str] = []
    while i < len(q):
        ch = q[i]
        if ch == "\\" and i + 1 < len(q):
            buf.append(q[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(buf), i + 1
        buf.append(ch)
        i += 1
    raise QueryError("unterminated quote", start)


def _read_bare(q: str, i: int) -> tuple[str, bool, int, list[int]]:
    """An unquoted word: (text, ends with an unescaped `*`, next index, positions of unescaped `:`)."""
    buf: list[str] = []
    colons: list[int] = []
    star = False
    while i < len(q):
        ch = q[i]
        if ch.isspace() or ch in '()"':
            break
        if ch == "\\" and i + 1 < len(q):
            buf.append(q[i + 1])
            star = False
            i += 2
            continue
        if ch == ":":
            colons.append(len(buf))
        star = ch == "*"
        buf.append(ch)
        i += 1
    return "".join(buf), star, i, colons


def _lex(q: str) -> Iterator[_Tok]:
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            yield _Tok(ch, i)
            i += 1
            continue
        if ch == '"':
            text, i = _read_quoted(q, i)
            yield _Tok("TERM", i, value=text, quoted=True)
            continue
        start = i
        text, star, i, colons = _read_bare(q, i)
        if text in ("AND", "OR", "NOT") and q[start:i] == text:
            yield _Tok(text, start)
            continue
        comparison = _COMPARISON_RE.match(q[start:i])
        if comparison and comparison.group(1) in FIELDS_BY_NAME:
            yield _Tok(
                "TERM", start, field=comparison.group(1), value=comparison.group(3), op=comparison.group(2)
            )
            continue
        if colons and colons[0] > 0 and _FIELD_NAME_RE.match(text[: colons[0]]):
            field, value = text[: colons[0]], text[colons[0] + 1 :]
            if not value:
                if i < n and q[i] == '"':
                    value, i = _read_quoted(q, i)
                    yield _Tok("TERM", start, field=field, value=value, quoted=True)
                    continue
                raise QueryError(f"missing value after {field + ':'!r}", start)
            star = star and value.endswith("*")
            yield _Tok("TERM", start, field=field, value=value[:-1] if star else value, star=star)
            continue
        yield _Tok("TERM", start, value=text[:-1] if star else text, star=star)


# -- parser ----------------------------------------------------------------------------------------


def query_level(value: str) -> Level:
    """``Level`` for a user's spelling (``warn``, ``Warning``, ``ERR``...), or QueryError.

    The same spellings the record pipeline understands in logs, so a filter finds what was stored.
    """
    level = normalize_level(value)
    if level is None:
        raise QueryError(f"unknown level {value!r}; use one of {', '.join(lv.value for lv in LEVEL_ORDER)}")
    return level


def levels_from(spec: str) -> tuple[Level, ...]:
    """The levels a filter names: ``ERROR``, ``WARN,ERROR``, ``>=WARN``, ``>INFO``, ``<=DEBUG``."""
    spec = spec.strip()
    for op in (">=", "<=", ">", "<"):
        if spec.startswith(op):
            return _level_range(op, spec[len(op) :])
    if spec.endswith("+"):  # "WARN+" reads well on a command line
        return _level_range(">=", spec[:-1])
    out: list[Level] = []
    for part in spec.split(","):
        if part.strip():
            level = query_level(part)
            if level not in out:
                out.append(level)
    if not out:
        raise QueryError("an empty level filter")
    return tuple(out)


def _level_range(op: str, value: str) -> tuple[Level, ...]:
    pivot = LEVEL_ORDER.index(query_level(value))
    picks = {
        ">=": LEVEL_ORDER[pivot:],
        ">": LEVEL_ORDER[pivot + 1 :],
        "<=": LEVEL_ORDER[: pivot + 1],
        "<": LEVEL_ORDER[:pivot],
    }[op]
    return tuple(picks)


def _resolve_field(name: str, pos: int) -> str:
    if name.startswith(ATTRIBUTES + "."):
        if len(name) == len(ATTRIBUTES) + 1:
            raise QueryError("an attribute needs a name: attributes.<name>:value", pos)
        return name
    spec = FIELDS_BY_NAME.get(name)
    if spec is None:
        return f"{ATTRIBUTES}.{name}"
    if spec.kind not in _QUERYABLE_KINDS:
        hint = "use from/to for time ranges" if spec.kind is Kind.TIMESTAMP else "it cannot be searched"
        raise QueryError(f"field {name!r} is not a term field: {hint}", pos)
    return name


def _term_node(tok: _Tok) -> Node | None:
    """The leaf for a TERM token; None for a term with no words at all (ignored, like ``-``)."""
    if tok.op is not None:
        field = tok.field or ""
        if field != "level":
            raise QueryError(f"comparisons work on level only, not {field!r}", tok.pos)
        levels = _level_range(tok.op, tok.value)
        if not levels:
            return Or(())
        return (
            Or(tuple(Term("level", lv.value) for lv in levels))
            if len(levels) > 1
            else Term("level", levels[0].value)
        )
    if tok.field is None or tok.field == TEXT_FIELD:
        if tok.star and not tok.value:
            return MatchAll() if tok.field is None else Exists(TEXT_FIELD)
        if tok.star:
            prefix = lower_prefix(tok.value)
            return TextPrefix(prefix)
        found = tuple(words(tok.value))
        return Text(found, tok.value) if found else None
    field = _resolve_field(tok.field, tok.pos)
    value = tok.value
    if field in _LOWERED_FIELDS:
        value = value.lower()
    if tok.star and not value:
        return Exists(field)
    if field == "level":
        if tok.star:
            raise QueryError("level takes a name (level:ERROR) or a comparison (level>=WARN)", tok.pos)
        return Term(field, query_level(value).value)
    return Prefix(field, value) if tok.star else Term(field, value)


_Build: TypeAlias = "Node | _AndBuild | _OrBuild | _NotBuild | None"


class _Parser:
    def __init__(self, q: str) -> None:
        self.toks = list(_lex(q))
        self.i = 0
        self.terms = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Node:
        if not self.toks:
            return MatchAll()
        node = self.or_expr(0)
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"unexpected {tok.kind if tok.kind != 'TERM' else repr(tok.value)}", tok.pos)
        return _simplify(node) or MatchAll()

    def or_expr(self, depth: int) -> _Build:
        parts = [self.and_expr(depth)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            parts.append(self.and_expr(depth))
        return parts[0] if len(parts) == 1 else _OrBuild(tuple(parts))

    def and_expr(self, depth: int) -> _Build:
        parts = [self.not_expr(depth)]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.i += 1
            parts.append(self.not_expr(depth))
        return parts[0] if len(parts) == 1 else _AndBuild(tuple(parts))

    def not_expr(self, depth: int) -> _Build:
        tok = self.peek()
        if tok is not None and tok.kind == "NOT":
            if depth >= MAX_DEPTH:
                raise QueryError(f"the query nests deeper than {MAX_DEPTH} levels", tok.pos)
            self.i += 1
            child = self.not_expr(depth + 1)
            return None if child is None else _NotBuild(child)
        return self.primary(depth)

    def primary(self, depth: int) -> _Build:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1]
            raise QueryError(f"the query ends after {last.kind}; a term is missing", last.pos)
        if tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise QueryError(f"the query nests deeper than {MAX_DEPTH} levels", tok.pos)
            self.i += 1
            if (nxt := self.peek()) is not None and nxt.kind == ")":
                raise QueryError("empty parentheses", tok.pos)
            node = self.or_expr(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                raise QueryError("unclosed parenthesis", tok.pos)
            self.i += 1
            return node
        if tok.kind == "TERM":
            self.i += 1
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise QueryError(f"the query has more than {MAX_TERMS} terms", tok.pos)
            return _term_node(tok)
        raise QueryError(f"unexpected {tok.kind}; a term or '(' should come here", tok.pos)


# While parsing, an operand may be None (a term without words); the builders keep them until
# `_simplify` drops them, so "a AND -" is "a" and "NOT -" is nothing at all.
@dataclass(frozen=True, slots=True)
class _AndBuild:
    parts: tuple[_Build, ...]


@dataclass(frozen=True, slots=True)
class _OrBuild:
    parts: tuple[_Build, ...]


@dataclass(frozen=True, slots=True)
class _NotBuild:
    child: _Build


def _simplify(node: object) -> Node | None:
    if node is None:
        return None
    if isinstance(node, _AndBuild | _OrBuild):
        kids: list[Node] = []
        real = False  # an operand that is a condition, even one flattened away below
        for part in node.parts:
            kid = _simplify(part)
            if kid is None:
                continue
            real = True
            same = And if isinstance(node, _AndBuild) else Or
            if isinstance(kid, same):
                kids.extend(kid.children)
            else:
                kids.append(kid)
        if isinstance(node, _AndBuild):
            kids = [k for k in kids if not isinstance(k, MatchAll)]
            if not kids:
                return MatchAll() if real else None
            return kids[0] if len(kids) == 1 else And(tuple(kids))
        if any(isinstance(k, MatchAll) for k in kids):
            return MatchAll()
        if not kids:
            # no operand at all is no condition; operands that all match nothing match nothing
            return Or(()) if real else None
        return kids[0] if len(kids) == 1 else Or(tuple(kids))
    if isinstance(node, _NotBuild):
        kid = _simplify(node.child)
        if kid is None:
            return None
        if isinstance(kid, Not):
            return kid.child
        return Not(kid)
    assert isinstance(node, MatchAll | Text | TextPrefix | Term | Prefix | Exists | And | Or | Not)
    return node


def parse(q: str | None) -> Node:
    """The AST of ``q``; ``MatchAll()`` for an empty query. Raises :class:`QueryError`.

    >>> parse('service:api "time out"')
    And(children=(Term(field='service', value='api'), Text(words=('time', 'out'), raw='time out')))
    """
    if q is None:
        return MatchAll()
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in q:
        raise QueryError("the query contains a NUL character")
    return _Parser(q).parse()


def and_all(*nodes: Node) -> Node:
    """The conjunction of ``nodes``, flattened, without MatchAll."""
    kids: list[Node] = []
    for node in nodes:
        if isinstance(node, MatchAll):
            continue
        kids.extend(node.children if isinstance(node, And) else (node,))
    if not kids:
        return MatchAll()
    return kids[0] if len(kids) == 1 else And(tuple(kids))


# -- evaluation ------------------------------------------------------------------------------------


def field_value(record: Record, field: str) -> str | list[str] | None:
    """The value a term on ``field`` is compared with."""
    key = attribute_key(field)
    if key is not None:
        return record.attributes.get(key)
    value = getattr(record, field)
    if value is None or isinstance(value, list):
        return value
    return str(value)


def _contains_run(haystack: list[str], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    first = needle[0]
    return any(
        haystack[i] == first and tuple(haystack[i : i + n]) == needle for i in range(len(haystack) - n + 1)
    )


class _Evaluator:
    """Evaluates one AST against one record; the message's words are split once, when needed."""

    __slots__ = ("_words", "record")

    def __init__(self, record: Record) -> None:
        self.record = record
        self._words: list[str] | None = None

    def message_words(self) -> list[str]:
        if self._words is None:
            self._words = words(self.record.message)
        return self._words

    def eval(self, node: Node) -> bool:
        if isinstance(node, And):
            return all(self.eval(c) for c in node.children)
        if isinstance(node, Or):
            return any(self.eval(c) for c in node.children)
        if isinstance(node, Not):
            return not self.eval(node.child)
        if isinstance(node, MatchAll):
            return True
        if isinstance(node, Text):
            return _contains_run(self.message_words(), node.words)
        if isinstance(node, TextPrefix):
            return any(w.startswith(node.prefix) for w in self.message_words())
        value = field_value(self.record, node.field)
        if isinstance(node, Exists):
            return value is not None and (not isinstance(value, list) or bool(value))
        if value is None:
            return False
        if isinstance(node, Term):
            return node.value in value if isinstance(value, list) else value == node.value
        if isinstance(node, Prefix):
            if isinstance(value, list):
                return any(v.startswith(node.value) for v in value)
            return value.startswith(node.value)
        raise TypeError(f"not a query node: {node!r}")


def matches(ast: Node, record: Record) -> bool:
    """Whether ``record`` satisfies the query ``ast`` (from :func:`parse`)."""
    return _Evaluator(record).eval(ast)


def leaves(node: Node) -> Iterator[Leaf]:
    """Every leaf condition of ``node``."""
    if isinstance(node, And | Or):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, Not):
        yield from leaves(node.child)
    elif not isinstance(node, MatchAll):
        yield node


def conjuncts(node: Node) -> tuple[Node, ...]:
    """The top-level AND parts of ``node`` (itself when it is not an AND)."""
    if isinstance(node, MatchAll):
        return ()
    return node.children if isinstance(node, And) else (node,)


# -- what one storage tier is asked ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """A record's place in a result: timestamp (µs) then log_id, both in the result's direction."""

    ts_us: int
    log_id: str


@dataclass(frozen=True, slots=True)
class TierQuery:
    """One tier's share of a search: a tenant, a condition and a time slice ``[start_us, end_us)``.

    ``order`` is ``"desc"`` (newest first: timestamp then log_id descending) or ``"asc"``; ``after``
    is the last record of the previous page, which this page starts strictly after.
    """

    tenant: str
    ast: Node
    start_us: int
    end_us: int
    order: str = "desc"
    limit: int = 100
    after: Position | None = None

    def admits(self, ts_us: int, log_id: str) -> bool:
        """Whether a record at (ts_us, log_id) is inside the slice and past ``after``."""
        if not self.start_us <= ts_us < self.end_us:
            return False
        if self.after is None:
            return True
        key, cur = (ts_us, log_id), (self.after.ts_us, self.after.log_id)
        return key < cur if self.order == "desc" else key > cur


@dataclass(slots=True)
class TierPage:
    """What a tier found: up to ``limit`` records in order, and how many match in all."""

    records: list[Record]
    total: int | None  # None: the tier could not say
    total_exact: bool
    notes: list[str]


@dataclass
class TierCounts(Generic[K]):
    """What a tier counted for an aggregation: the counts, whether they are complete, and notes."""

    counts: Counter[K]
    complete: bool = True
    notes: list[str] = _field(default_factory=list)


class TierReader(Protocol):
    """What the search engine asks of each tier; every tier answers the same calls the same way."""

    def search(self, q: TierQuery) -> TierPage: ...

    def histogram(self, q: TierQuery, interval_us: int) -> TierCounts[tuple[int, str]]:
        """Counts per (bucket start µs, level); buckets are epoch-aligned multiples of the interval."""
        ...

    def top(self, q: TierQuery, field: str, size: int) -> TierCounts[str]:
        """Counts of ``field``'s values; at least the ``size`` most frequent when not all."""
        ...

    def get(self, tenant: str, log_ids: Sequence[str], start_us: int, end_us: int) -> list[Record]:
        """The tenant's records among ``log_ids`` whose time is within ``[start_us, end_us)``."""
        ...


def order_key(record: Record) -> tuple[int, str]:
    return micros(record.timestamp), record.log_id


__all__ = [
    "LEVEL_ORDER",
    "And",
    "Exists",
    "Leaf",
    "MatchAll",
    "Node",
    "Not",
    "Or",
    "Position",
    "Prefix",
    "QueryError",
    "Term",
    "Text",
    "TextPrefix",
    "TierCounts",
    "TierPage",
    "TierQuery",
    "TierReader",
    "and_all",
    "attribute_key",
    "conjuncts",
    "field_value",
    "leaves",
    "levels_from",
    "lower_prefix",
    "matches",
    "order_key",
    "parse",
    "query_level",
    "words",
]
