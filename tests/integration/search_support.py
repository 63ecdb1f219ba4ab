"""Test data for the search tests: records spread over 90 days, loaded into an index prefix, a
keyspace and an S3 prefix of the test's own, as the ingest job lays them out (hot while younger than
``hot_days``, warm with the TTL left of ``warm_days``, every record cold), and the brute-force
answer every search is compared with."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cassandra.cluster import Cluster
from opensearchpy import OpenSearch, helpers

from connectors.s3.archive import s3_filesystem
from core.query import Node, matches
from infra.settings import Settings
from schemas.projections import opensearch_index_name, opensearch_index_template, to_opensearch_doc
from schemas.record import Level, Record, micros
from tests.support.tiers import create_warm_tables, write_archive_file, write_warm

DAY = timedelta(days=1)
SERVICES = ["payment-service", "checkout", "auth", "inventory", "mailer"]
HOSTS = ["web-1", "web-2", "db-1", "worker-7"]
LEVEL_WEIGHTS = [
    (Level.TRACE, 2),
    (Level.DEBUG, 10),
    (Level.INFO, 50),
    (Level.WARN, 15),
    (Level.ERROR, 18),
    (Level.FATAL, 5),
]
MESSAGES = [
    "Payment failed: timeout after {n} ms",
    "payment accepted for order A-{n}",
    "connection reset by peer db.example.com:{n}",
    "Connection refused while calling inventory",
    "user {n} logged in from 10.0.0.{n}",
    "GET /api/v1/pay?id={n} 200",
    "cache miss for key user:{n}",
    "timeout waiting for lock {n}",
    "Retrying request (attempt {n}) can't reach upstream",
    "disk usage at {n}% on /var/lib",
    'quoted "payment timeout" inside {n}',
    "SELECT * FROM users WHERE id = {n}; -- not an injection",
    "Über-service ärger {n} 日本",
]


def make_id(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(32))


def make_records(tenant: str, count: int, now: datetime, rng: random.Random, days: int = 90) -> list[Record]:
    """``count`` records over the last ``days`` days, in a few hours of each day (fewer archive files),
    with bursts that share one timestamp (ties at page boundaries) and a few at the tier edges."""
    levels = [lv for lv, w in LEVEL_WEIGHTS for _ in range(w)]
    out: list[Record] = []
    edges = [
        now - timedelta(days=14) + timedelta(minutes=20),
        now - timedelta(days=14) - timedelta(minutes=20),
        now - timedelta(days=45) + timedelta(minutes=20),
        now - timedelta(days=45) - timedelta(minutes=20),
    ]
    while len(out) < count:
        if len(out) < 40:
            ts = edges[len(out) % len(edges)] - timedelta(seconds=len(out))
        else:
            day = rng.randrange(days)
            hour = rng.choice([1, 9, 13, 22])
            ts = (now - day * DAY).replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
            ts = ts.replace(microsecond=rng.randrange(1_000_000))
            if ts > now:
                ts -= DAY
        burst = 4 if rng.random() < 0.05 else 1
        n = rng.randrange(1, 5000)
        service = rng.choice(SERVICES)
        host = rng.choice(HOSTS)
        for _ in range(burst):
            attrs = {"req_id": f"r-{rng.randrange(100)}", "region_code": rng.choice(["eu", "us"])}
            if rng.random() < 0.3:
                attrs["http.status"] = rng.choice(["200", "503", "404"])
            out.append(
                Record(
                    log_id=make_id(rng),
                    tenant=tenant,
                    timestamp=ts,
                    ingested_at=ts + timedelta(seconds=1),
                    level=rng.choice(levels),
                    service=service,
                    host=host,
                    environment=rng.choice(["prod", "staging", None]),
                    region=rng.choice(["eu-west-1", None]),
                    message=rng.choice(MESSAGES).format(n=n),
                    trace_id=make_id(rng) if rng.random() < 0.4 else None,
                    span_id=None,
                    attributes=attrs,
                    tags=["truncated"] if rng.random() < 0.1 else [],
                    source_format="json",
                    pattern_id=None,
                    pattern=None,
                    masked={},
                )
            )
    return out[:count]


@dataclass
class Loaded:
    settings: Settings
    records: list[Record]
    now: datetime

    def expected(
        self, tenant: str, ast: Node, start_us: int, end_us: int, order: str = "desc"
    ) -> list[Record]:
        """The brute-force answer: every record of the tenant in the range that ``matches``."""
        found = [
            r
            for r in self.records
            if r.tenant == tenant and start_us <= micros(r.timestamp) < end_us and matches(ast, r)
        ]
        found.sort(key=lambda r: (micros(r.timestamp), r.log_id), reverse=order == "desc")
        return found


@contextmanager
def loaded_tiers(base: Settings, records: list[Record], now: datetime) -> Iterator[Loaded]:
    """Loads ``records`` into a new index prefix, keyspace and S3 prefix; removes them afterwards."""
    tag = uuid.uuid4().hex[:10]
    settings = base.model_copy(
        update={
            "opensearch_index_prefix": f"strata-test-search-{tag}",
            "cassandra_keyspace": f"strata_test_search_{tag}",
            "archive_prefix": f"test-search-{tag}/logs",
        }
    )
    os_client = OpenSearch(settings.opensearch_endpoint, timeout=60)
    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    session = cluster.connect()
    fs = s3_filesystem(
        settings.s3_endpoint_url, settings.s3_access_key, settings.s3_secret_key, settings.s3_region
    )
    root = f"{settings.s3_bucket}/{settings.archive_prefix}"
    try:
        _load(settings, os_client, session, fs, root, records, now)
        yield Loaded(settings, records, now)
    finally:
        with contextlib.suppress(Exception):
            os_client.indices.delete(index=f"{settings.opensearch_index_prefix}-*")
        with contextlib.suppress(Exception):
            os_client.indices.delete_index_template(name=settings.opensearch_index_prefix)
        with contextlib.suppress(Exception):
            session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
        with contextlib.suppress(Exception):
            fs.delete_dir(f"{settings.s3_bucket}/{settings.archive_prefix.split('/')[0]}")
        cluster.shutdown()


def _load(
    settings: Settings, os_client: OpenSearch, session, fs, root: str, records: list[Record], now: datetime
) -> None:  # type: ignore[no-untyped-def]
    now_us = micros(now)
    hot_us, warm_us = settings.hot_days * 86_400_000_000, settings.warm_days * 86_400_000_000
    prefix = settings.opensearch_index_prefix
    os_client.indices.put_index_template(name=prefix, body=opensearch_index_template(prefix))
    actions = [
        {"_index": opensearch_index_name(prefix, r), "_id": r.log_id, "_source": to_opensearch_doc(r)}
        for r in records
        if now_us - micros(r.timestamp) < hot_us
    ]
    helpers.bulk(os_client, actions, chunk_size=2000, refresh="wait_for")
    os_client.indices.refresh(index=f"{prefix}-*")

    create_warm_tables(session, settings.cassandra_keyspace, settings.cassandra_table)
    # Each row with the TTL left of its warm_days, as the ingest job writes it.
    write_warm(
        session,
        settings.cassandra_keyspace,
        settings.cassandra_table,
        records,
        ttl_s=lambda r: int((warm_us - (now_us - micros(r.timestamp))) // 1_000_000),
    )

    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.tenant, f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}")].append(r)
    for (tenant, dt, hour), group in groups.items():
        # No file suffix, as the ingest job names them.
        write_archive_file(fs, f"{root}/tenant={tenant}/dt={dt}/hour={hour}/part-{uuid.uuid4()}-0-0", group)


def now_utc() -> datetime:
    return datetime.now(UTC)
