"""Connections to PostgreSQL: one async pool per process, opened once."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


def async_pool(dsn: str, *, min_size: int = 1, max_size: int = 8) -> AsyncConnectionPool:
    """An unopened pool; ``await pool.open()`` (or ``async with``) before use.

    Connections are checked on checkout, so a PostgreSQL restart costs one failed check, not errors.
    """
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True},
        name="strata",
    )


# What libpq says while the server is not up yet. A connection error carries no SQLSTATE, so the
# message is all there is to tell "not yet" from "wrong" (a bad password is never retried).
_NOT_READY = (
    "connection refused",
    "the database system is starting up",
    "the database system is not yet accepting connections",
    "timeout expired",
    "no such file or directory",  # the Unix socket is not there yet
    "server closed the connection unexpectedly",
)


def postgres_retriable(exc: BaseException) -> bool:
    """True while PostgreSQL is starting: the connection is refused or times out, or the server
    answers "the database system is starting up" (57P03). Authentication errors are not retried."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    if getattr(exc, "sqlstate", None) == "57P03":
        return True
    text = str(exc).lower()
    return "password authentication failed" not in text and any(m in text for m in _NOT_READY)
