"""Shared fixtures: settings, and a clear failure when a test needs a service that is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from infra.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names for topics, indices, keyspaces and prefixes that no other test uses."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make
