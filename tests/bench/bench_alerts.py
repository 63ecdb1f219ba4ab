"""Alert latency: from a record's acceptance by Kafka to the webhook call it triggered.

Starts ``strata job run alerts`` (a local Flink, parallelism 2) on a topic of its own with 100 active
rules ("ERROR count of svc-<i> per host > 4 in 1 minute"), the notifier in this process, and a
local webhook receiver. A background load of ``--rate`` records/s (INFO and WARN from the same
services, so every record is tested against its service's rule, plus ERRORs from services no rule
watches) runs throughout. Every ``--every`` seconds a trigger sends 5 ERRORs for a fresh host of
a random rule; the 5th crosses the threshold. Its latency is the webhook's arrival time minus the
moment Kafka acknowledged that 5th record. Measures, never asserts.

    .venv/bin/python tests/bench/bench_alerts.py --seconds 60 --rate 5000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from confluent_kafka import Producer

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from connectors.postgres.alerts import create_rule  # noqa: E402
from core.alerts.notify import Notifier  # noqa: E402
from core.alerts.rules import RuleSpec  # noqa: E402
from infra.settings import Settings  # noqa: E402
from schemas.envelope import RawEnvelope  # noqa: E402
from tests.integration.alerts_support import AlertsJob, WebhookReceiver, topics  # noqa: E402
from tests.integration.collector_support import require_stack, tenant_with_key  # noqa: E402

RULES = 100
THRESHOLD = 4


def envelope(tenant: str, service: str, host: str, level: str, message: str) -> bytes:
    now = datetime.now(UTC)
    return RawEnvelope(
        tenant=tenant,
        received_at=now,
        service=service,
        host=host,
        entry={"timestamp": now.isoformat(), "level": level, "message": message},
    ).encode()


class Background(threading.Thread):
    """``rate`` records/s in batches every 20 ms, paced against the clock."""

    def __init__(self, settings: Settings, topic: str, tenant: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_servers,
                "linger.ms": 5,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self.topic, self.tenant, self.rate = topic, tenant, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        rnd = random.Random(7)
        start = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.sent < due:
                i = rnd.randrange(RULES + 20)
                service = f"svc-{i}"
                level = "ERROR" if i >= RULES else rnd.choice(("INFO", "INFO", "INFO", "WARN"))
                message = f"request {rnd.randrange(10**6)} served in {rnd.randrange(900)} ms"
                value = envelope(self.tenant, service, f"bg-{rnd.randrange(20)}", level, message)
                try:
                    self.producer.produce(self.topic, value, key=f"{self.tenant}/{service}".encode())
                except BufferError:
                    self.producer.poll(0.05)
                    continue
                self.sent += 1
            self.producer.poll(0)
            time.sleep(0.02)
        self.producer.flush(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time, after warm-up")
    parser.add_argument("--rate", type=int, default=5000, help="background records per second")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between triggers")
    parser.add_argument("--warmup", type=float, default=20.0)
    args = parser.parse_args()

    settings = require_stack()
    receiver = WebhookReceiver().up()
    with (
        tenant_with_key(settings) as (tenant, _key),
        topics(settings, 4, 1) as (raw, alerts),
        tempfile.TemporaryDirectory() as tmp,
    ):

        async def make_rules() -> None:
            async with await psycopg.AsyncConnection.connect(settings.postgres_dsn, autocommit=True) as conn:
                for i in range(RULES):
                    spec = RuleSpec.model_validate(
                        {
                            "name": f"svc-{i} errors",
                            "filter": {"services": [f"svc-{i}"], "levels": ["ERROR"]},
                            "window": "1m",
                            "slide": "10s",
                            "threshold": THRESHOLD,
                            "group_by": ["host"],
                            "cooldown": 0,
                            "channels": [{"type": "webhook", "url": f"{receiver.url}/hook"}],
                        }
                    )
                    await create_rule(conn, tenant, spec)

        asyncio.run(make_rules())
        job = AlertsJob(
            settings,
            raw,
            alerts,
            Path(tmp) / "checkpoints",
            Path(tmp) / "job.log",
            STRATA_ALERTS_CHECKPOINT_S="10",
            STRATA_ALERTS_LATENESS_S="5",
        ).start()
        notifier = Notifier(settings, topic=alerts, group_id=f"bench-notify-{uuid.uuid4().hex[:8]}").start()
        background = Background(settings, raw, tenant, args.rate)
        trigger = Producer({"bootstrap.servers": settings.kafka_servers, "linger.ms": 0})
        acked: dict[str, float] = {}
        try:
            print("waiting for the job to start ...", file=sys.stderr)
            probe_host = "probe-0"
            deadline = time.monotonic() + 180
            while True:
                job.check_alive()
                for _ in range(THRESHOLD + 1):
                    trigger.produce(
                        raw,
                        envelope(tenant, "svc-0", probe_host, "ERROR", "probe"),
                        key=f"{tenant}/svc-0".encode(),
                    )
                trigger.flush(10)
                time.sleep(2)
                seen = {a["group"].get("host") for b in receiver.bodies("/hook") for a in b["alerts"]}
                if probe_host in seen:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"the job did not start: {job.log_file.read_text()[-2000:]}")
                probe_host = f"probe-{uuid.uuid4().hex[:6]}"
            background.start()
            time.sleep(args.warmup)
            rnd = random.Random(11)
            sent_bg = background.sent
            t_start = time.monotonic()
            hosts: list[str] = []
            while time.monotonic() - t_start < args.seconds:
                i = rnd.randrange(RULES)
                host = f"h-{uuid.uuid4().hex[:8]}"
                for n in range(THRESHOLD + 1):
                    last = n == THRESHOLD

                    def on_delivery(err: object, _msg: object, host: str = host, last: bool = last) -> None:
                        if err is None and last:
                            acked[host] = time.time()

                    trigger.produce(
                        raw,
                        envelope(tenant, f"svc-{i}", host, "ERROR", f"boom {n}"),
                        key=f"{tenant}/svc-{i}".encode(),
                        on_delivery=on_delivery,
                    )
                trigger.poll(0)
                hosts.append(host)
                time.sleep(args.every)
            trigger.flush(10)
            measured_rate = (background.sent - sent_bg) / (time.monotonic() - t_start)
            time.sleep(10)  # the last triggers' webhooks
        finally:
            background.stop.set()
            job.kill()
            notifier.stop()
            receiver.down()

    arrived: dict[str, float] = {}
    for at, path, body in receiver.received:
        if path == "/hook":
            for alert in body["alerts"]:
                arrived.setdefault(alert["group"].get("host", ""), at)
    latencies = sorted(arrived[h] - acked[h] for h in hosts if h in arrived and h in acked)
    missing = [h for h in hosts if h not in arrived]
    if not latencies:
        print("no trigger reached the webhook", file=sys.stderr)
        return 1
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"rules: {RULES}, background: {measured_rate:.0f} records/s, triggers: {len(hosts)}, "
        f"alerts received: {len(latencies)}, missing: {len(missing)}"
    )
    print(
        f"Kafka ack -> webhook: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
