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
