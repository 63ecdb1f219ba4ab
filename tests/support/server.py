"""The API run as a process of its own, as `strata serve` runs it, for tests and benchmarks."""

from __future__ import annotations

import subprocess
import time

import httpx


def answers_health(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> bool:
    """Whether the API at ``url`` answers ``/healthz`` with 200 before ``timeout_s`` have passed;
    False at once when the ``server`` process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            return False
        time.sleep(0.2)
