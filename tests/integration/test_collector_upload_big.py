"""A large upload goes through with bounded memory: the API's peak resident size stays far below
the file's size."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.collector_support import REPO, free_port, kafka_topic, require_stack, tenant_with_key
from tests.support.server import answers_health

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINES = 1_500_000  # ~400 MB of text once decompressed


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def test_a_large_file_streams_with_bounded_memory(tmp_path):
    settings = require_stack()
    path = tmp_path / "big.log.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        chunk = []
        for i in range(LINES):
            chunk.append(
                f"2025-02-15 12:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d} INFO [batch-service] processed "
                f"item {i} of order {i * 7919 % 1000003} for customer {i % 50021} in {i % 997} ms "
                f"status=ok region=eu-west-1 node=worker-{i % 17} attempt={i % 3} queue=high "
                f"payload_bytes={i * 31 % 65536}\n".encode()
            )
            if len(chunk) == 10_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))
    port = free_port()
    with kafka_topic(settings) as topic, tenant_with_key(settings, rate=0) as (_, key):
        env = {**os.environ, "STRATA_RAW_TOPIC": topic, "STRATA_API_PORT": str(port)}
        server = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--log-level", "warning"], cwd=REPO, env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            assert answers_health(url, server), "the API did not start"
            baseline = peak_rss_mb(server.pid)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as http:
                with open(path, "rb") as upload:
                    job = http.post(
                        "/v1/logs/upload", files={"file": ("big.log.gz", upload)}, data={"service": "batch"}
                    ).json()
                deadline = time.monotonic() + 600
                while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
                    time.sleep(1)
                    job = http.get(job["status_url"]).json()
            peak = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    assert (job["state"], job["lines"], job["accepted"], job["rejected"]) == ("done", LINES, LINES, 0), job
    text_mb = LINES * 200 / 1e6
    print(f"baseline {baseline:.0f} MiB, peak {peak:.0f} MiB for ~{text_mb:.0f} MB of lines")
    assert peak - baseline < 150, f"peak RSS grew by {peak - baseline:.0f} MiB for a {text_mb:.0f} MB file"
