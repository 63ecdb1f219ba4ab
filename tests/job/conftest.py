"""Job tests run PyFlink's Python workers inside the test process ("loopback"), and a worker writes
its own settings into ``os.environ`` (``PYFLINK_GATEWAY_DISABLED`` among them). Each module gets
the environment back as it found it, so a later test that starts a job process is not told it
is a worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from infra.settings import Settings


@pytest.fixture(scope="module", autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _job_jars(settings: Settings) -> None:
    """The jobs read their jars from the folders the stack fills; a changed Java source is rebuilt."""
    from infra.stack.flink_jars import ensure_job_jars

    ensure_job_jars(settings)
