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


def postgres_retriable(exc: BaseException) -> bool:
    """True while PostgreSQL is starting: the connection is refused (no SQLSTATE) or the server
    answers "the database system is starting up" (57P03). A wrong password is not retried."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) in (None, "57P03")
