"""Records per second through the whole record chain on one core.

    .venv/bin/python tests/bench/bench_parse.py [--lines 50000] [--runs 5]

The input is a generated, realistic mix (JSON, logfmt, syslog 5424/3164, Apache/Nginx access,
plaintext with key=value pairs), about one line in ten carrying PII, wrapped in ``raw_logs``
envelopes exactly as the collectors write them. Each run uses a fresh pipeline, so pattern mining
starts cold every time; the figure is the median run. This measures, it does not assert.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.records.pipeline import RecordPipeline
from schemas.envelope import RawEnvelope
from tests.support.loggen import HOSTS, SERVICES, fill_message

PATHS = ["/api/v1/users", "/api/v1/orders", "/health", "/api/v1/cart", "/static/app.js", "/login"]
MESSAGES = [
    "User {uid} logged in",
    "Order {oid} created for user {uid}",
    "Payment failed for order {oid}: card declined",
    "Cache miss for key session:{uid}",
    "Slow query on table orders took {ms}ms",
    "Connection to db-{n} established",
    "Retrying request to upstream {ip} attempt {n}",
    "Job {oid} finished in {ms}ms",
    "Rate limit exceeded for tenant {uid}",
    "Inventory updated sku={oid} qty={n}",
]
PII = [
    "Password reset mail sent to {user}@example.com",
    "Charged card 4111 1111 1111 1111 for order {oid}",
    "Contact phone (555) 234-{n4} saved for user {uid}",
    "Login from 203.0.113.{n} with token=abcd{oid}",
]


def _msg(rng: random.Random) -> str:
    return fill_message(rng, MESSAGES, PII)


def generate(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    base = datetime(2025, 2, 15, 12, 0, tzinfo=UTC)
    out: list[bytes] = []
    for i in range(n):
        ts = base + timedelta(milliseconds=i * 3)
        level = rng.choice(["info", "info", "info", "warn", "error", "debug"])
        svc = rng.choice(SERVICES)
        kind = i % 5
        if kind == 0:
            line = (
                f'{{"ts":"{ts.isoformat()}","level":"{level}","msg":"{_msg(rng)}","service":"{svc}",'
                f'"req_id":"r{rng.randint(1, 10**9)}","duration_ms":{rng.randint(1, 900)},'
                f'"user":{{"id":{rng.randint(1, 9999)}}}}}'
            )
        elif kind == 1:
            line = (
                f'ts={ts.isoformat()} level={level} msg="{_msg(rng)}" service={svc} '
                f"req_id=r{rng.randint(1, 10**9)} latency={rng.randint(1, 900)}ms"
            )
        elif kind == 2:
            if rng.random() < 0.5:
                pri, pid = rng.randint(8, 191), rng.randint(100, 9999)
                line = f"<{pri}>1 {ts.isoformat()} {rng.choice(HOSTS)} {svc} {pid} - - {_msg(rng)}"
            else:
                line = f"{ts:%b %d %H:%M:%S} {rng.choice(HOSTS)} {svc}[{rng.randint(100, 9999)}]: {_msg(rng)}"
        elif kind == 3:
            status = rng.choice([200, 200, 200, 201, 302, 404, 500])
            line = (
                f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - "
                f'[{ts:%d/%b/%Y:%H:%M:%S} +0000] "{rng.choice(["GET", "POST"])} {rng.choice(PATHS)} '
                'HTTP/1.1" '
                f'{status} {rng.randint(0, 50000)} "-" "Mozilla/5.0 (X11; Linux x86_64)"'
            )
        else:
            line = (
                f"{ts:%Y-%m-%d %H:%M:%S}.{ts.microsecond // 1000:03d} {level.upper()} [{svc}] {_msg(rng)} "
                f"req_id=abc{rng.randint(1, 10**6)} latency={rng.randint(1, 5000)}ms"
            )
        env = RawEnvelope(
            tenant=f"tenant-{i % 3}",
            received_at=ts + timedelta(milliseconds=50),
            source="bench",
            host=rng.choice(HOSTS),
            line=line,
        )
        out.append(env.encode())
    return out


def run_once(envelopes: list[bytes]) -> tuple[float, float]:
    """(records per CPU second, records per wall second). CPU time is the honest "one core" figure
    on a machine shared with other work; wall time is shown beside it."""
    pipeline = RecordPipeline()
    process = pipeline.process
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for env in envelopes:
        process(env)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return len(envelopes) / cpu, len(envelopes) / wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    envelopes = generate(args.lines)
    # One untimed pass checks the input really becomes records (a benchmark of rejections is no use).
    pipeline = RecordPipeline()
    rejected = sum(1 for e in envelopes[:5000] if not pipeline.process(e))
    results = [run_once(envelopes) for _ in range(args.runs)]
    cpu_rates = [r[0] for r in results]
    wall_rates = [r[1] for r in results]
    print(f"lines per run: {args.lines}, runs: {args.runs}, rejected in check pass: {rejected}/5000")
    print("runs (records per CPU second): " + ", ".join(f"{r:,.0f}" for r in cpu_rates))
    print("runs (records per wall second): " + ", ".join(f"{r:,.0f}" for r in wall_rates))
    print(
        f"median: {statistics.median(cpu_rates):,.0f} records/s on one core "
        f"(wall clock: {statistics.median(wall_rates):,.0f} records/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
