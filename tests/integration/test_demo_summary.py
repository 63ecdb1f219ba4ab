"""The demo's key, sending and summary against a real API: its key sends, and the `strata search`
line it prints, pasted as it is, searches (the key has the search scope); its /ui address serves
the search page."""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid

import httpx
import psycopg
import pytest

from infra.cli import demo
from tests.integration.collector_support import REPO, ApiServer, kafka_topic, require_stack

pytestmark = pytest.mark.integration


def test_the_printed_search_line_and_page_work_with_the_printed_key(tmp_path):
    settings = require_stack()
    tenant = f"demo-{uuid.uuid4().hex[:8]}"
    try:
        first = demo.create_key(tenant)  # creates the tenant
        again = demo.create_key(tenant)  # a second run: the tenant exists, a new key
        with (
            kafka_topic(settings) as topic,
            ApiServer(settings.model_copy(update={"raw_topic": topic})) as api,
        ):
            updates: list[tuple[int, int | None]] = []
            sent = demo.send_all(
                api.url, first, 1200, None, lambda done, total: updates.append((done, total))
            )
            assert sum(sent.values()) == 1200 and updates[-1] == (1200, 1200)
            logs = {"API": tmp_path / "api.log"}
            text = demo.summary(settings, again, {"hot (OpenSearch)": 0}, api.url, logs)
            (search,) = [line.strip() for line in text.splitlines() if "strata search" in line]
            argv = shlex.split(search)
            for key in (first, again):
                pasted = [sys.executable, "-m", "infra.cli", *argv[1:]]
                pasted[pasted.index(again)] = key
                done = subprocess.run(pasted, cwd=REPO, capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, done.stderr
                assert "403" not in done.stderr
            (ui,) = [
                line.split()[0] for line in text.splitlines() if line.strip().endswith("paste the key above")
            ]
            page = httpx.get(ui, timeout=30)
            assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
