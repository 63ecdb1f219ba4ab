"""``strata demo``: send a realistic mix of logs through the API and the ingest job, then count each tier.

It starts the API, makes a ``demo`` tenant and key, sends a realistic mix (generated services'
logs from now and from 20 days ago, plus the Loghub samples when ``../shared/datasets`` is there,
whose old timestamps send them to the cold tier only), runs the ingest job over what is waiting in
``raw_logs``, and prints the counts per tier with the commands to look at them.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from infra.settings import REPO_ROOT, Settings, get_settings

TENANT = "demo"
LOGHUB_FORMATS = {
    "Android": "android", "BGL": "bgl", "HDFS": "hdfs", "Hadoop": "hadoop", "Linux": "linux",
    "OpenSSH": "openssh", "OpenStack": "openstack", "Spark": "spark", "Zookeeper": "zookeeper",
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines", type=int, default=5000, help="generated lines (besides Loghub's)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--datasets", type=Path, default=None, help="Loghub folder (default ../shared/…)")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], capture_output=True, text=True)


def _key() -> str:
    created = _cli("tenant", "create", TENANT)
    if created.returncode != 0:
        created = _cli("tenant", "key-create", TENANT, "--name", "demo")
    if created.returncode != 0:
        raise SystemExit(f"strata demo: could not create a key for tenant {TENANT}: {created.stderr}")
    return str(orjson.loads(created.stdout)["key"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generated_lines(n: int, now: datetime, seed: int = 7) -> Iterator[tuple[str, str]]:
    """(service, line) pairs in several formats, a few with PII, 10% of them 20 days old."""
    rnd = random.Random(seed)
    users = ["alice", "bob", "carol", "dave"]
    for i in range(n):
        ts = now - timedelta(seconds=rnd.randint(0, 3600))
        if i % 10 == 0:
            ts -= timedelta(days=20)
        user = rnd.choice(users)
        kind = i % 4
        if kind == 0:
            level = rnd.choice(["INFO", "INFO", "WARN", "ERROR"])
            yield (
                "payment-service",
                (
                    f"{ts:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f" {level} [payment-service] Payment {i} for "
                    f"{user}@example.com took latency={rnd.randint(5, 900)}ms req_id=r{i}"
                ),
            )
        elif kind == 1:
            entry = {
                "ts": ts.isoformat(),
                "level": rnd.choice(["info", "warning", "error"]),
                "msg": f"order {i} shipped to {user}",
                "service": "orders",
                "trace_id": f"{rnd.getrandbits(128):032x}",
            }
            yield "orders", orjson.dumps(entry).decode()
        elif kind == 2:
            yield (
                "db",
                f'ts={ts.isoformat()} level=warn msg="slow query {i}" duration={rnd.randint(100, 5000)}ms',
            )
        else:
            ip = f"10.0.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
            yield (
                "web",
                (
                    f'{ip} - - [{ts:%d/%b/%Y:%H:%M:%S +0000}] "GET /api/items/{i} HTTP/1.1" '
                    f"{rnd.choice([200, 200, 404, 500])} {rnd.randint(100, 9000)}"
                ),
            )


def _post(client: object, url: str, key: str, service: str, fmt: str, lines: list[str]) -> int:
    import httpx

    assert isinstance(client, httpx.Client)
    resp = client.post(
        f"{url}/v1/logs/ingest",
        params={"service": service, "format": fmt},
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/plain"},
        content="\n".join(lines).encode(),
    )
    resp.raise_for_status()
    return int(resp.json()["accepted"])


def send_all(url: str, key: str, lines: int, datasets: Path | None) -> dict[str, int]:
    import httpx

    sent: dict[str, int] = {}
    now = datetime.now(UTC)
    with httpx.Client(timeout=60) as client:
        batch: dict[str, list[str]] = {}
        for service, line in generated_lines(lines, now):
            batch.setdefault(service, []).append(line)
        for service, svc_lines in batch.items():
            for i in range(0, len(svc_lines), 500):
                sent[service] = sent.get(service, 0) + _post(
                    client, url, key, service, "auto", svc_lines[i : i + 500]
                )
        if datasets is not None and datasets.is_dir():
            for system, fmt in LOGHUB_FORMATS.items():
                path = datasets / system / f"{system}_2k.log"
                if not path.exists():
                    continue
                raw = path.read_text(errors="replace").splitlines()
                service = system.lower()
                for i in range(0, len(raw), 500):
                    sent[service] = sent.get(service, 0) + _post(
                        client, url, key, service, fmt, raw[i : i + 500]
                    )
    return sent


def tier_counts(settings: Settings) -> dict[str, int]:
    """What the demo tenant has in each tier (and the dead letters of the raw topic)."""
    from cassandra.cluster import Cluster
    from opensearchpy import OpenSearch

    counts: dict[str, int] = {}
    client = OpenSearch(settings.opensearch_endpoint)
    pattern = f"{settings.opensearch_index_prefix}-*"
    client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    counts["hot (OpenSearch)"] = int(
        client.count(index=pattern, body={"query": {"term": {"tenant": TENANT}}}, allow_no_indices=True)[
            "count"
        ]
    )
    cluster = Cluster(settings.cassandra_contact_points, port=settings.cassandra_port)
    try:
        session = cluster.connect(settings.cassandra_keyspace)
        table = settings.cassandra_table
        total = 0
        for day in range(settings.warm_days + 1):
            d = (datetime.now(UTC) - timedelta(days=day)).strftime("%Y-%m-%d")
            for row in session.execute(
                f"SELECT service FROM {table}_services WHERE tenant = %s AND day = %s", (TENANT, d)
            ):
                total += session.execute(
                    f"SELECT count(*) FROM {table} WHERE tenant = %s AND service = %s AND day = %s",
                    (TENANT, row.service, d),
                ).one()[0]
        counts["warm (Cassandra)"] = total
    finally:
        cluster.shutdown()
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        endpoint_override=settings.s3_endpoint_url,
        region=settings.s3_region,
    )
    base = f"{settings.s3_bucket}/{settings.archive_prefix}/tenant={TENANT}"
    try:
        counts["cold (Parquet on S3)"] = ds.dataset(base, filesystem=fs, format="parquet").count_rows()
    except (FileNotFoundError, OSError):
        counts["cold (Parquet on S3)"] = 0
    return counts


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    datasets = args.datasets or (REPO_ROOT.parent / "shared" / "datasets" / "loghub-2k")
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    key = _key()
    api = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit("strata demo: the API did not start within 60 s")
        print(f"API up at {url}; sending logs as tenant {TENANT!r}")
        sent = send_all(url, key, args.lines, datasets if datasets.is_dir() else None)
        for service, n in sorted(sent.items()):
            print(f"  {service:<16} {n:>6} lines accepted (acknowledged by Kafka)")
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=30)
    print("running the ingest job over raw_logs (bounded: it stops once it has caught up)")
    job = subprocess.run([sys.executable, "-m", "infra.cli", "job", "run", "ingest", "--bounded"])
    if job.returncode != 0:
        print("strata demo: the ingest job failed; see .strata/logs/flink/", file=sys.stderr)
        return job.returncode
    print(f"\nrecords of tenant {TENANT!r} per tier:")
    for tier, n in tier_counts(settings).items():
        print(f"  {tier:<22} {n:>7}")
    os_url = f"{settings.opensearch_endpoint}/{settings.opensearch_index_prefix}-*"
    archive = f"s3://{settings.s3_bucket}/{settings.archive_prefix}/tenant={TENANT}/"
    print(
        f"\nHot holds the last {settings.hot_days} days, warm the last {settings.warm_days}, cold "
        "everything (the Loghub samples are years old, so they are in cold only). Look at them:\n"
        "  .venv/bin/strata serve   # then, in another shell:\n"
        f"  .venv/bin/strata search 'payment' --service payment-service --since 2h --api-key {key}\n"
        f"  curl '{os_url}/_search?q=tenant:{TENANT}'\n"
        f"  DuckDB or Athena over {archive} (Hive partitions)\n"
        "  keep the job running on new logs: .venv/bin/strata job run ingest"
    )
    return 0
