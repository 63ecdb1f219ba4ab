"""Integration tests run against the real local stack (`strata stack up`, which `make test` runs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from infra.settings import Settings
from infra.stack.services import Service, all_services

if TYPE_CHECKING:
    from tests.integration.collector_support import ApiServer


def _service(settings: Settings, name: str) -> Service:
    return next(s for s in all_services(settings) if s.name == name)


@pytest.fixture(scope="session")
def require(settings: Settings):  # type: ignore[no-untyped-def]
    """``require("kafka", "opensearch")`` fails the test with the reason when a service is down."""
    checked: dict[str, str | None] = {}

    def need(*names: str) -> None:
        for name in names:
            if name not in checked:
                checked[name] = _service(settings, name).check()
            if checked[name] is not None:
                pytest.fail(f"{name} is not available ({checked[name]}); run `strata stack up` first")

    return need


@pytest.fixture(scope="session", autouse=True)
def _job_jars(settings: Settings) -> None:
    """The jobs read their jars from the folders the stack fills; a changed Java source is rebuilt."""
    from infra.stack.flink_jars import ensure_job_jars

    ensure_job_jars(settings)


# The API fixtures load the application only in the modules that ask for them.
@pytest.fixture(scope="module")
def stack() -> Settings:
    """The settings, once PostgreSQL and Kafka answer and the database is migrated. The alerts
    tests' receivers listen on loopback, which channels may reach only when allowed."""
    from tests.integration.collector_support import require_stack

    return require_stack().model_copy(update={"alerts_allowed_hosts": "127.0.0.1"})


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[ApiServer]:
    """The real application in this process, one per test module."""
    from tests.integration.collector_support import ApiServer

    with ApiServer(stack) as server:
        yield server
