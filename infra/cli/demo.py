"""``strata demo``: send a realistic mix of logs through the API and the ingest job, then count each tier.

It starts the API, makes a ``demo`` tenant and key, sends a realistic mix (generated services'
logs from now and from 20 days ago, plus the Loghub samples when ``../shared/datasets`` is there,
whose old timestamps send them to the cold tier only), runs the ingest job over what is waiting in
``raw_logs``, and prints the counts per tier with the commands to look at them.

The terminal shows one progress line per phase; the API's and the Flink job's own logs go to files
under ``<STRATA_HOME>/logs/demo/``, whose paths it prints. The key it prints can both send and
search, so the ``strata search`` line of the summary and the ``/ui`` page work as printed.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

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


# What the demo's key may do: send the logs, then search them (the summary's command and /ui).
KEY_SCOPES = "ingest,search"


def create_key(tenant: str = TENANT) -> str:
    """A new key of ``tenant`` (created when missing) that can send and search."""
    created = _cli("tenant", "create", tenant, "--scopes", KEY_SCOPES)
    if created.returncode != 0:
        created = _cli("tenant", "key-create", tenant, "--name", "demo", "--scopes", KEY_SCOPES)
    if created.returncode != 0:
        raise SystemExit(f"strata demo: could not create a key for tenant {tenant}: {created.stderr}")
    return str(orjson.loads(created.stdout)["key"])


def progress_line(
    step: int,
    steps: int,
    title: str,
    *,
    done: int | None = None,
    total: int | None = None,
    unit: str = "",
    elapsed_s: float = 0.0,
    finished: bool = False,
    width: int = 24,
) -> str:
    """One phase's line: its number, a bar when the total is known, and the time so far.

    >>> progress_line(2, 4, "sending logs", done=1500, total=6000, unit="lines", elapsed_s=3.2)
    '[2/4] sending logs            [######..................]  1,500/6,000 lines   3 s'
    >>> progress_line(3, 4, "ingest job", elapsed_s=42, finished=True)
    '[3/4] ingest job              done in 42 s'
    """
    head = f"[{step}/{steps}] {title:<22}"
    if finished:
        counted = f" ({done:,} {unit})" if done is not None and unit else ""
        return f"{head}  done in {elapsed_s:.0f} s{counted}"
    if done is not None and total:
        filled = min(width, width * done // total)
        bar = "#" * filled + "." * (width - filled)
        return f"{head}  [{bar}]  {done:,}/{total:,} {unit}  {elapsed_s:>2.0f} s"
    return f"{head}  {elapsed_s:>3.0f} s"


class Progress:
    """Prints the phases of the demo: on a terminal one line per phase redrawn in place, elsewhere
    (a pipe, CI) only the finished line, so a log of the demo stays a handful of lines."""

    def __init__(self, steps: int, out: TextIO | None = None) -> None:
        self.steps = steps
        self.step = 0
        self.out = out or sys.stdout
        self.live = self.out.isatty()

    @contextmanager
    def phase(self, title: str, unit: str = "") -> Iterator[Callable[[int, int | None], None]]:
        """``with progress.phase("sending logs", "lines") as update: update(done, total)``."""
        self.step += 1
        started = time.monotonic()
        last = {"done": None, "shown": 0.0}

        def update(done: int, total: int | None = None) -> None:
            last["done"] = done if total is not None else None
            now = time.monotonic()
            if self.live and now - float(last["shown"] or 0) >= 0.2:
                last["shown"] = now
                line = progress_line(
                    self.step, self.steps, title, done=done if total else None, total=total,
                    unit=unit, elapsed_s=now - started,
                )  # fmt: skip
                self.out.write("\r\x1b[K" + line)
                self.out.flush()

        if self.live:
            self.out.write(progress_line(self.step, self.steps, title))
            self.out.flush()
        try:
            yield update
        except BaseException:
            if self.live:
                self.out.write("\n")  # keep the phase's line; the error follows below it
            raise
        done = last["done"]
        line = progress_line(
            self.step, self.steps, title, done=done if isinstance(done, int) else None, unit=unit,
            elapsed_s=time.monotonic() - started, finished=True,
        )  # fmt: skip
        self.out.write(("\r\x1b[K" if self.live else "") + line + "\n")
        self.out.flush()


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


def planned_batches(lines: int, datasets: Path | None) -> list[tuple[str, str, list[str]]]:
    """Every (service, format, lines) request the demo sends, at most 500 lines each."""
    by_source: list[tuple[str, str, list[str]]] = []
    generated: dict[str, list[str]] = {}
    for service, line in generated_lines(lines, datetime.now(UTC)):
        generated.setdefault(service, []).append(line)
    by_source += [(service, "auto", svc_lines) for service, svc_lines in generated.items()]
    if datasets is not None and datasets.is_dir():
        for system, fmt in LOGHUB_FORMATS.items():
            path = datasets / system / f"{system}_2k.log"
            if path.exists():
                by_source.append((system.lower(), fmt, path.read_text(errors="replace").splitlines()))
    return [
        (service, fmt, svc_lines[i : i + 500])
        for service, fmt, svc_lines in by_source
        for i in range(0, len(svc_lines), 500)
    ]


def send_all(
    url: str,
    key: str,
    lines: int,
    datasets: Path | None,
    update: Callable[[int, int | None], None] = lambda done, total: None,
) -> dict[str, int]:
    import httpx

    sent: dict[str, int] = {}
    batches = planned_batches(lines, datasets)
    total = sum(len(b) for _, _, b in batches)
    done = 0
    with httpx.Client(timeout=60) as client:
        for service, fmt, batch in batches:
            sent[service] = sent.get(service, 0) + _post(client, url, key, service, fmt, batch)
            done += len(batch)
            update(done, total)
    return sent


def tier_counts(settings: Settings) -> dict[str, int]:
    """What the demo tenant has in each tier (and the dead letters of the raw topic)."""
    from cassandra.cluster import Cluster

    from connectors.cassandra.connection import cluster_options
    from connectors.opensearch.connection import open_client

    counts: dict[str, int] = {}
    client = open_client(settings)
    pattern = f"{settings.opensearch_index_prefix}-*"
    client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    counts["hot (OpenSearch)"] = int(
        client.count(index=pattern, body={"query": {"term": {"tenant": TENANT}}}, allow_no_indices=True)[
            "count"
        ]
    )
    cluster = Cluster(
        settings.cassandra_contact_points, port=settings.cassandra_port, **cluster_options(settings)
    )
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


def summary(settings: Settings, key: str, counts: dict[str, int], api_url: str, logs: dict[str, Path]) -> str:
    """What the demo prints at the end: the counts, and commands that work when pasted as printed."""
    os_url = f"{settings.opensearch_endpoint}/{settings.opensearch_index_prefix}-*"
    archive = f"s3://{settings.s3_bucket}/{settings.archive_prefix}/tenant={TENANT}/"
    search = shlex.join(
        [".venv/bin/strata", "search", "payment", "--service", "payment-service", "--since", "2h",
         "--url", api_url, "--api-key", key]
    )  # fmt: skip
    lines = [f"\nrecords of tenant {TENANT!r} per tier:"]
    lines += [f"  {tier:<22} {n:>7}" for tier, n in counts.items()]
    lines += [
        "",
        f"Hot holds the last {settings.hot_days} days, warm the last {settings.warm_days}, cold "
        "everything (the Loghub samples are years old, so they are in cold only).",
        "",
        f"Your key (tenant {TENANT!r}, scopes {KEY_SCOPES}; shown once): {key}",
        "",
        "Look at them:",
        "  .venv/bin/strata serve          # in a shell of its own, then:",
        f"  {search}",
        f"  {api_url}/ui                   # the search page: paste the key above",
        f"  curl '{os_url}/_search?q=tenant:{TENANT}'",
        f"  DuckDB or Athena over {archive} (Hive partitions)",
        "  keep the job running on new logs: .venv/bin/strata job run ingest",
        "",
        "Logs of this run:",
        *(f"  {name:<12} {path}" for name, path in logs.items()),
    ]
    return "\n".join(lines)


def _wait_for_api(url: str, api: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit(f"strata demo: the API exited at start; see {log}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"strata demo: the API did not start within 60 s; see {log}")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    datasets = args.datasets or (REPO_ROOT.parent / "shared" / "datasets" / "loghub-2k")
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = settings.log_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {"API": log_dir / "api.log", "ingest job": log_dir / "ingest-job.log"}
    for path in logs.values():
        path.write_bytes(b"")
    print(f"strata demo: logs of the API and the Flink job go to {log_dir}/")
    progress = Progress(steps=4)
    api: subprocess.Popen[bytes] | None = None
    try:
        with progress.phase("starting the API"):
            key = create_key()
            with open(logs["API"], "ab") as api_log:
                api = subprocess.Popen(
                    [sys.executable, "-m", "infra.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                    stdout=api_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _wait_for_api(url, api, logs["API"])
        with progress.phase(f"sending logs to {url}", "lines") as update:
            sent = send_all(url, key, args.lines, datasets if datasets.is_dir() else None, update)
    finally:
        if api is not None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(timeout=30)
    for service, n in sorted(sent.items()):
        print(f"      {service:<16} {n:>6} lines accepted (acknowledged by Kafka)")
    with progress.phase("ingest job (bounded)") as update, open(logs["ingest job"], "ab") as job_log:
        job = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "job", "run", "ingest", "--bounded"],
            stdout=job_log,
            stderr=subprocess.STDOUT,
        )
        while job.poll() is None:
            update(0, None)
            time.sleep(0.5)
    if job.returncode != 0:
        tail = logs["ingest job"].read_text(errors="replace").splitlines()[-15:]
        print("\n".join(["strata demo: the ingest job failed; its last lines:", *tail]), file=sys.stderr)
        print(f"the whole log: {logs['ingest job']}", file=sys.stderr)
        return job.returncode
    with progress.phase("counting each tier"):
        counts = tier_counts(settings)
    print(summary(settings, key, counts, f"http://127.0.0.1:{settings.api_port}", logs))
    return 0
