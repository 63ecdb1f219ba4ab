"""Collector throughput: accepted records per second and request latency over loopback.

Starts ``strata serve`` against the local stack (a topic of its own, removed afterwards), then
posts batches of 500 ~300-byte records from a lean asyncio HTTP/1.1 client on keep-alive
connections, so the client's CPU stays small next to the server's on a two-core machine.

    .venv/bin/python tests/bench/bench_collector.py --seconds 20 --concurrency 8 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.collector_support import (  # noqa: E402
    free_port,
    kafka_topic,
    require_stack,
    tenant_with_key,
)
from tests.support.server import answers_health  # noqa: E402


def make_body(records: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    logs = []
    for i in range(records):
        words = " ".join("".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(3, 9))) for _ in range(14))
        logs.append(
            {
                "timestamp": f"2025-02-15T12:{i % 60:02d}:{rnd.randint(0, 59):02d}.{i % 1000:03d}Z",
                "level": rnd.choice(["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"]),
                "message": f"request {rnd.randint(1, 10**9)} {words}",
                "traceId": f"{rnd.getrandbits(128):032x}",
                "metadata": {
                    "userId": str(rnd.randint(1, 10**6)),
                    "region": "eu-west-1",
                    "latencyMs": i % 700,
                },
            }
        )
    return orjson.dumps({"service": f"bench-{seed % 8}", "logs": logs})


async def worker(
    host: str, port: int, requests: list[bytes], deadline: float, latencies: list[float], counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    while time.perf_counter() < deadline:
        request = requests[i % len(requests)]
        i += 1
        started = time.perf_counter()
        writer.write(request)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if b" 202 " not in status_line:
            raise RuntimeError(f"unexpected answer {status_line!r}: {body[:300]!r}")
        counts.append(orjson.loads(body)["accepted"])
    writer.close()


async def load(
    host: str, port: int, key: str, args: argparse.Namespace
) -> tuple[list[float], list[int], float]:
    requests = []
    for seed in range(8):
        body = make_body(args.records, seed)
        head = (
            f"POST /v1/logs/ingest HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(head + body)
    sizes = [len(r) for r in requests]
    print(
        f"request bodies ~{statistics.mean(sizes) / 1024:.0f} KiB, "
        f"~{statistics.mean(sizes) / args.records:.0f} bytes per record",
        flush=True,
    )
    # Warm up (connections, producer metadata, caches) before measuring.
    warm: list[float] = []
    await asyncio.gather(*(worker(host, port, requests, time.perf_counter() + 2, warm, []) for _ in range(2)))
    latencies: list[float] = []
    counts: list[int] = []
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(
        *(worker(host, port, requests, deadline, latencies, counts) for _ in range(args.concurrency))
    )
    return latencies, counts, time.perf_counter() - started


def messages_in(servers: str, topic: str) -> int:
    """Sum of the topic's partition end offsets: what Kafka really holds, to check the answers."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": servers, "group.id": "bench-check"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        )
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()
    settings = require_stack()
    port = free_port()
    with kafka_topic(settings) as topic, tenant_with_key(settings, rate=0) as (_, key):
        env = {**os.environ, "STRATA_RAW_TOPIC": topic, "STRATA_API_PORT": str(port)}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infra.cli",
                "serve",
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
        )
        try:
            if not answers_health(f"http://127.0.0.1:{port}", server):
                raise RuntimeError("the API did not start")
            cpu_before = os.times()
            latencies, counts, elapsed = asyncio.run(load("127.0.0.1", port, key, args))
            cpu_after = os.times()
        finally:
            server.terminate()
            server.wait(timeout=30)
        in_kafka = messages_in(settings.kafka_servers, topic)
    latencies.sort()
    accepted = sum(counts)
    if in_kafka < accepted:
        print(f"ERROR: {accepted} answered as accepted but only {in_kafka} in Kafka")
        return 1
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    client_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    print(
        f"batches of {args.records}, {args.concurrency} connections, {args.workers} API worker(s), "
        f"{elapsed:.1f} s: {accepted / elapsed:,.0f} accepted records/s "
        f"({len(latencies) / elapsed:.0f} requests/s), latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
        f"bench client CPU {client_cpu / elapsed * 100:.0f}% of one core; "
        f"{in_kafka:,} messages in the topic (warm-up included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
