"""A Trino server for a test, started from the cached distribution (fetched from Maven Central on
first use) and stopped afterwards; and running the scripts `strata archive ddl` prints on it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.settings import Settings
from infra.stack import process
from infra.stack.process import StackError
from infra.stack.services.trino import Trino


def _wait_healthy(trino: Trino, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    reason = "not checked"
    while time.monotonic() < deadline:
        if trino.pid() is None:
            raise StackError(
                f"trino exited during start. Last lines of {trino.log_file}:\n{process.tail(trino.log_file)}"
            )
        reason = trino.check() or ""
        if not reason:
            return
        time.sleep(0.5)
    raise StackError(
        f"trino did not become healthy within {timeout:.0f}s ({reason}). "
        f"Last lines of {trino.log_file}:\n{process.tail(trino.log_file)}"
    )


@contextmanager
def trino_server(settings: Settings, timeout: float = 180.0) -> Iterator[Trino]:
    """A Trino started here, healthy, whose ``hive`` catalog reads the settings' S3 server; stopped
    on exit, so a test run leaves no JVM behind. A program already on ``trino_port`` is an error
    (Service.start says which setting moves the port): its catalog would not be this one."""
    trino = Trino(settings)
    trino.fetch()
    trino.start()
    try:
        _wait_healthy(trino, timeout)
        yield trino
    finally:
        trino.stop()


def connect(trino: Trino, **kwargs: Any) -> Any:
    """A DB-API connection to ``trino`` (the ``trino`` client package)."""
    import trino as client

    s = trino.settings
    return client.dbapi.connect(host=s.bind_host, port=s.trino_port, user="strata", **kwargs)


def run_script(cursor: Any, script: str) -> None:
    """Run ``script`` statement by statement, as Trino's CLI runs a file (``trino -f``): Trino
    takes one statement per request. SET SESSION carries over, as the client keeps the session."""
    for statement in split_statements(script):
        cursor.execute(statement)
        cursor.fetchall()


def split_statements(script: str) -> list[str]:
    """The statements of ``script``: split at semicolons that end a line, comment lines dropped."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().removesuffix(";"))
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
