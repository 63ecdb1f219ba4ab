"""Hostile input: what the worst bodies get, and what one hostile tenant costs another's throughput.

Starts ``strata serve`` against the local stack (a topic of its own, removed afterwards). Tenant
``normal`` sends batches of 500 ordinary records (as bench_collector.py does) for ``--seconds``
alone, then as long again while tenant ``hostile`` sends (from a process of its own, as fast as it is
answered), ``--rounds`` times in turn so a neighbour's load on a shared machine falls on both; the worst
inputs: deep JSON, a huge line, lines made for regex backtracking, an entry with 50 000 attributes,
invalid UTF-8, timestamps in year 1 and 9999, a gzip bomb, a request over the entry cap. It prints:

- the normal tenant's accepted records/s alone and beside the hostile one, and their ratio;
- per hostile input: the API's answer, what the record pipeline (the ingest job's code) makes of
  each accepted message (a record, or a dead letter with its reason), the worst CPU per record, and
  whether every accepted message is in Kafka (nothing accepted lost);
- the largest line and the deepest JSON that became records.

    .venv/bin/python tests/bench/bench_hostile.py --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.bench_collector import make_body, worker  # noqa: E402
from tests.integration.collector_support import (  # noqa: E402
    free_port,
    kafka_topic,
    require_stack,
    tenant_with_key,
)
from tests.support.server import answers_health  # noqa: E402


def _batch(kind: str, entries: list[Any]) -> tuple[str, bytes, dict[str, str]]:
    return kind, orjson.dumps({"service": f"h-{kind}", "logs": entries}), {"Content-Type": "application/json"}


def _deep(depth: int) -> bytes:
    return (
        b'{"service": "h-deep-json", "logs": [{"message": "deep", "a": '
        + b"[" * depth
        + b"]" * depth
        + b"}]}"
    )


def hostile_inputs(max_entries: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """(kind, body, headers): each kind's service is ``h-<kind>``, so its messages can be found."""
    bomb = gzip.compress(b"[" + b'{"m":1},' * (2_000_000 - 1) + b'{"m":1}]', 9)
    inputs = [
        ("deep-json", _deep(1000), {"Content-Type": "application/json"}),  # orjson's limit is 1024
        ("deeper-json", _deep(100_000), {"Content-Type": "application/json"}),
        _batch("huge-line", [{"message": "x" * (500 * 1024)}]),
        _batch("over-record-cap", [{"message": "y" * (600 * 1024)}]),
        _batch(
            "regex-bait",
            [
                {"message": "a" * 200_000 + "@"},  # e-mail pattern without a domain
                {"message": "1" * 200_000},  # one long run of digits (cards, phones)
                {"message": "Bearer " * 30_000},
                {"message": "-----BEGIN " * 20_000},  # private keys never ended
                {"message": "key=" * 50_000 + "password=" + "=" * 50_000},
                {"message": "::" * 100_000},  # IPv6 lookalike
            ],
        ),
        _batch("many-attributes", [{"message": "wide", **{f"attr{i}": i for i in range(50_000)}}]),
        (
            "invalid-utf8",
            b"\xff\xfe bad bytes \xc3\x28 and \xed\xa0\x80 surrogates\nok line\n\x00\x00\x00",
            {"Content-Type": "text/plain"},
        ),
        _batch(
            "far-timestamps",
            [
                {"timestamp": "0001-01-01T00:00:00Z", "message": "year one"},
                {"timestamp": "9999-12-31T23:59:59Z", "message": "year 9999"},
                {"timestamp": 1e300, "message": "epoch 1e300"},
                {"timestamp": -1, "message": "before 1970"},
            ],
        ),
        ("gzip-bomb", bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        _batch("over-entry-cap", [{"m": i} for i in range(max_entries + 1)]),
    ]
    return inputs


class Hostile:
    """Sends the hostile inputs in a loop until ``seconds`` have passed; keeps each kind's answers.
    Runs in a process of its own (:func:`run_hostile`), so its client work does not slow the
    normal tenant's client."""

    def __init__(self, url: str, key: str, inputs: list[tuple[str, bytes, dict[str, str]]]) -> None:
        self.url, self.key, self.inputs = url, key, inputs
        self.answers: dict[str, Counter[str]] = defaultdict(Counter)
        self.accepted: Counter[str] = Counter()
        self.details: dict[str, str] = {}
        self.seconds: Counter[str] = Counter()  # time waiting for the answers, per kind

    def once(self, http: Any, kind: str, body: bytes, headers: dict[str, str]) -> None:
        import httpx

        path = "/v1/logs/ingest" + ("?service=h-invalid-utf8" if kind == "invalid-utf8" else "")
        started = time.perf_counter()
        try:
            answer = http.post(path, content=body, headers={**headers, "Authorization": f"Bearer {self.key}"})
        except httpx.HTTPError as exc:  # the server dropped the connection: say so, go on
            self.answers[kind][type(exc).__name__] += 1
            self.details[kind] = f"{type(exc).__name__}: {exc}"
            return
        self.seconds[kind] += time.perf_counter() - started
        self.answers[kind][str(answer.status_code)] += 1
        if answer.status_code == 202:
            data = answer.json()
            self.accepted[kind] += data["accepted"]
            reasons = Counter(e["reason"] for e in data["errors"])
            self.details[kind] = f"202: {data['accepted']} accepted" + (
                f", refused {dict(reasons)}" if reasons else ""
            )
        else:
            self.details[kind] = f"{answer.status_code}: {answer.text[:90]}"

    def run(self, go: Any, done: Any) -> None:
        """Send while ``go`` is set, until ``done`` is."""
        import httpx

        with httpx.Client(base_url=self.url, timeout=120) as http:
            while not done.is_set():
                for kind, body, headers in self.inputs:
                    while not go.is_set() and not done.is_set():
                        go.wait(0.1)
                    if done.is_set():
                        return
                    self.once(http, kind, body, headers)


def run_hostile(url: str, key: str, max_entries: int, go: Any, done: Any, results: Any) -> None:
    hostile = Hostile(url, key, hostile_inputs(max_entries))
    hostile.run(go, done)
    results.put(
        {
            "answers": {k: dict(v) for k, v in hostile.answers.items()},
            "accepted": dict(hostile.accepted),
            "details": hostile.details,
            "seconds": dict(hostile.seconds),
        }
    )


async def normal_load(port: int, key: str, seconds: float, concurrency: int) -> float:
    requests = []
    for seed in range(8):
        body = make_body(500, seed)
        head = (
            f"POST /v1/logs/ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append(head + body)
    counts: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(worker("127.0.0.1", port, requests, deadline, [], counts) for _ in range(concurrency))
    )
    return sum(counts) / (time.perf_counter() - started)


def kafka_by_service(servers: str, topic: str, tenant: str) -> dict[str, list[bytes]]:
    """Every message of ``tenant`` in the topic, by service (hostile kinds are ``h-<kind>``)."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from schemas.envelope import RawEnvelope

    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    found: dict[str, list[bytes]] = defaultdict(list)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        left = {p for p, end in ends.items() if end > 0}
        while left:
            message = consumer.poll(5)
            if message is None:
                break
            if message.error():
                continue
            if message.offset() >= ends[message.partition()] - 1:
                left.discard(message.partition())
            value = message.value() or b""
            if b'"tenant":"' + tenant.encode() + b'"' not in value[:200]:
                continue
            envelope = RawEnvelope.decode(value)
            found[envelope.service or ""].append(value)
    finally:
        consumer.close()
    return found


def pipeline_outcomes(messages: list[bytes]) -> tuple[Counter[str], float, str]:
    """What the ingest job's pipeline makes of each distinct message: outcomes, worst CPU seconds
    per message, and a note on the records (message length kept)."""
    from core.records.pipeline import RecordPipeline
    from schemas.record import Record

    pipeline = RecordPipeline()
    outcomes: Counter[str] = Counter()
    worst = 0.0
    note = ""
    for value in dict.fromkeys(messages):  # each distinct message once
        spent = time.process_time()
        result = pipeline.process(value)
        worst = max(worst, time.process_time() - spent)
        if isinstance(result, Record):
            outcomes["record"] += 1
            note = f"message kept {len(result.message.encode()):,} bytes, {len(result.attributes)} attributes"
        else:
            outcomes[f"DLQ {result.reason_code}"] += 1
    return outcomes, worst, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each phase of each round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="alone/beside pairs, alternated")
    parser.add_argument(
        "--hostile-rate",
        type=float,
        default=None,
        help="the hostile tenant's records/s (default: STRATA_INGEST_RATE_PER_S; 0: unlimited)",
    )
    args = parser.parse_args()
    settings = require_stack()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        kafka_topic(settings) as topic,
        tenant_with_key(settings, rate=0) as (_, normal_key),
        tenant_with_key(settings, rate=args.hostile_rate) as (hostile_tenant, hostile_key),
    ):
        env = {**os.environ, "STRATA_RAW_TOPIC": topic, "STRATA_API_PORT": str(port)}
        server = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--workers", "1", "--log-level", "warning"],
            cwd=REPO,
            env=env,
        )
        try:
            if not answers_health(url, server):
                raise RuntimeError("the API did not start")
            asyncio.run(normal_load(port, normal_key, 2.0, 2))  # warm-up
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            go, done, results = context.Event(), context.Event(), context.Queue()
            sender = context.Process(
                target=run_hostile,
                args=(url, hostile_key, settings.ingest_max_entries, go, done, results),
                daemon=True,
            )
            sender.start()
            # Alone and beside alternate, so a neighbour's load on the shared machine falls on both.
            rounds: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                go.clear()
                time.sleep(0.5)  # the hostile request in flight is answered
                alone = asyncio.run(normal_load(port, normal_key, args.seconds, args.concurrency))
                go.set()
                time.sleep(0.5)
                beside = asyncio.run(normal_load(port, normal_key, args.seconds, args.concurrency))
                rounds.append((alone, beside))
                print(
                    f"round: alone {alone:,.0f}/s, beside {beside:,.0f}/s ({beside / alone:.0%})", flush=True
                )
            done.set()
            go.set()
            result = results.get(timeout=600)
            sender.join(timeout=60)
        finally:
            server.terminate()
            server.wait(timeout=30)
        in_kafka = kafka_by_service(settings.kafka_servers, topic, hostile_tenant)

    alone = sum(a for a, _ in rounds) / len(rounds)
    beside = sum(b for _, b in rounds) / len(rounds)
    ratios = sorted(b / a for a, b in rounds)
    print(f"normal tenant alone: {alone:,.0f} records/s; beside the hostile tenant: {beside:,.0f} records/s")
    rate = settings.ingest_rate_per_s if args.hostile_rate is None else args.hostile_rate
    print(
        f"ratio: {beside / alone:.0%} of the means, median round {ratios[len(ratios) // 2]:.0%} "
        f"(goal >= 80%); the hostile tenant's rate: {rate:g} records/s (0: none)"
    )
    print()
    print(
        "| input | API answer (requests) | answer time | last answer"
        " | pipeline: each distinct accepted message | worst CPU/record | accepted = in Kafka |"
    )
    print("|---|---|---|---|---|---|---|")
    lost = False
    answers, accepted = result["answers"], Counter(result["accepted"])
    for kind, _, _ in hostile_inputs(settings.ingest_max_entries):
        messages = in_kafka.get(f"h-{kind}", [])
        outcomes, worst, note = pipeline_outcomes(messages) if messages else (Counter(), 0.0, "")
        whole = accepted[kind] == len(messages)
        lost |= not whole
        pipeline = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "-"
        print(
            f"| {kind} | {answers.get(kind, {})} | "
            f"{result['seconds'].get(kind, 0) / max(sum(answers.get(kind, {}).values()), 1) * 1000:.0f} ms | "
            f"{result['details'].get(kind, '-')} | {pipeline}"
            f"{'; ' + note if note else ''} | {worst * 1000:.1f} ms | "
            f"{accepted[kind]} = {len(messages)} {'yes' if whole else 'NO'} |"
        )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
