"""``strata send`` against the real API: resume without resending, spool while the API is away."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from tests.integration import collector_support as cs

pytestmark = pytest.mark.integration


def send(url: str, key: str, state_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "send",
            "--url",
            url,
            "--key",
            key,
            "--state-dir",
            str(state_dir),
            "--retry",
            "2",
            *args,
        ],
        cwd=cs.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_resume_and_spool_never_lose_or_repeat_a_line(tmp_path):
    settings = cs.require_stack()
    with cs.kafka_topic(settings) as topic, cs.tenant_with_key(settings) as (tenant_id, key):
        settings = settings.model_copy(update={"raw_topic": topic})
        log = tmp_path / "orders.log"
        log.write_text("".join(f"2025-02-15 12:00:00 INFO order {i} placed\n" for i in range(2500)))
        state = tmp_path / "state"
        with cs.ApiServer(settings) as api:
            first = send(api.url, key, state, str(log), "--service", "orders", "--batch-lines", "400")
            assert first.returncode == 0, first.stderr
            assert "100.0%" in first.stderr  # the progress line
            # A restart with nothing new sends nothing; appended lines are sent once.
            assert send(api.url, key, state, str(log), "--service", "orders").returncode == 0
            with log.open("a") as out:
                out.write("".join(f"2025-02-15 12:00:01 INFO order {i} placed\n" for i in range(2500, 2600)))
            assert send(api.url, key, state, str(log), "--service", "orders").returncode == 0
        # The API is gone: lines go to the spool, and the command says so.
        with log.open("a") as out:
            out.write("".join(f"2025-02-15 12:00:02 INFO order {i} placed\n" for i in range(2600, 3000)))
        down = send(f"http://127.0.0.1:{cs.free_port()}", key, state, str(log), "--service", "orders")
        assert down.returncode == 3 and "unreachable" in down.stderr
        assert list((state / "spool").glob("*.batch"))
        with cs.ApiServer(settings) as api:
            back = send(api.url, key, state, str(log), "--service", "orders")
            assert back.returncode == 0, back.stderr
            assert not list((state / "spool").glob("*.batch"))
            found = cs.collect_until(settings, topic, lambda got: len(got) >= 3000, timeout=60)
            # Wait a little more: a duplicate would show up now.
            found = cs.collect_until(settings, topic, lambda got: False, timeout=3)
    counts = Counter(env.line for _, env in found)
    assert len(counts) == 3000 and set(counts.values()) == {1}
    assert {env.tenant for _, env in found} == {tenant_id} and {env.service for _, env in found} == {"orders"}
