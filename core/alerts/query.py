"""The one place alert rules read the search query language (``q``).

Rules use :mod:`core.query`, the same parser and evaluator the search API and every tier are
tested against, so a rule's ``q`` means what the same ``q`` finds in a search.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.record import Record

Predicate = Callable[[Record], bool]


def compile_query(q: str | None) -> Predicate:
    """A predicate for ``q`` (everything when empty); raises ValueError with the parser's message.

    >>> compile_query('service:payment-service "card declined"')(record)
    """
    from core.query import MatchAll, matches, parse

    ast = parse(q or None)
    if isinstance(ast, MatchAll):
        return _everything
    return lambda record: matches(ast, record)


def _everything(_record: Record) -> bool:
    return True
