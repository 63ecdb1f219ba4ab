"""Trino reads the archive: a single-node Trino (its Hive connector, file metastore, native S3 file
system) runs what ``strata archive ddl --engine trino`` prints against the local S3 server, and
answers with exactly the archived records.

Slow: the first run fetches the Trino distribution (about 800 MB) from Maven Central; each run starts
the server (tens of seconds)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
import pytest

from connectors.s3.archive import s3_filesystem
from infra.settings import Settings
from schemas.record import Record
from tests.integration.search_support import make_records, now_utc
from tests.integration.test_archive import write_archive
from tests.support.trino import connect, run_script, trino_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class TrinoArchive:
    records: dict[str, list[Record]]  # by tenant
    env: dict[str, str]  # what points the `strata` command at this archive
    trino: Any  # infra.stack.services.trino.Trino, running


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def trino_archive(settings: Settings, require) -> Iterator[TrinoArchive]:  # type: ignore[no-untyped-def]
    require("s3")
    tag = uuid.uuid4().hex[:10]
    root = f"test-archive-{tag}"
    # A server of its own, on a free port, whose metastore lies beside this archive: so a table a
    # previous run or another server defined can never answer in place of the one printed here.
    s = settings.model_copy(
        update={
            "archive_prefix": f"{root}/logs",
            "trino_port": _free_port(),
            "trino_metastore_dir": f"s3://{settings.s3_bucket}/{root}/trino-metastore/",
        }
    )
    now = now_utc()
    rng = random.Random(25)
    records = {
        "acme": make_records("acme", 400, now, rng, days=10),
        "beta": make_records("beta", 120, now, rng, days=3),
    }
    fs = s3_filesystem(s.s3_endpoint_url, s.s3_access_key, s.s3_secret_key, s.s3_region)
    write_archive(fs, f"{s.s3_bucket}/{s.archive_prefix}", records["acme"] + records["beta"])
    env = {
        "STRATA_ARCHIVE_PREFIX": s.archive_prefix,
        "STRATA_S3_ENDPOINT": s.s3_endpoint_url,
        "STRATA_S3_BUCKET": s.s3_bucket,
    }
    try:
        with trino_server(s) as trino:
            yield TrinoArchive(records, env, trino)
    finally:
        fs.delete_dir(f"{s.s3_bucket}/{root}")


def printed_ddl(archive: TrinoArchive, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "archive", "ddl", "--engine", "trino", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **archive.env},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_trino_runs_the_printed_ddl_and_finds_exactly_the_archived_records(
    trino_archive: TrinoArchive,
) -> None:
    cur = connect(trino_archive.trino).cursor()
    run_script(cur, printed_ddl(trino_archive, "--tenant", "acme"))

    # every tenant's records in the table, each exactly once
    cur.execute("SELECT tenant, count(*), count(DISTINCT log_id) FROM hive.strata.logs GROUP BY tenant")
    assert {t: (n, d) for t, n, d in cur.fetchall()} == {
        t: (len(rs), len(rs)) for t, rs in trino_archive.records.items()
    }

    # the tenant's view holds that tenant's records and nothing else
    acme = trino_archive.records["acme"]
    cur.execute('SELECT log_id, tenant, service, level, message FROM hive.strata."logs_acme"')
    assert sorted(cur.fetchall()) == sorted(
        [r.log_id, r.tenant, r.service, r.level.value, r.message] for r in acme
    )

    # a filter on data columns answers as Python does, and so does one on the partitions
    cur.execute(
        "SELECT count(*) FROM hive.strata.logs "
        "WHERE tenant = 'acme' AND service = 'payment-service' AND level = 'ERROR'"
    )
    assert cur.fetchall() == [
        [sum(1 for r in acme if r.service == "payment-service" and r.level.value == "ERROR")]
    ]
    cur.execute('SELECT dt, hour, count(*) FROM hive.strata."logs_acme" GROUP BY dt, hour')
    assert Counter({(dt, hour): n for dt, hour, n in cur.fetchall()}) == Counter(
        (f"{r.timestamp:%Y-%m-%d}", f"{r.timestamp:%H}") for r in acme
    )

    # a lookup by log_id: the stored record, its timestamp to the microsecond (UTC, no zone) and
    # its attributes as JSON text
    wanted = next(r for r in sorted(acme, key=lambda r: r.log_id) if "http.status" in r.attributes)
    cur.execute(
        "SELECT timestamp, host, json_extract_scalar(attributes, '$[\"http.status\"]'), attributes "
        "FROM hive.strata.logs WHERE log_id = ?",
        [wanted.log_id],
    )
    ((ts, host, status, attributes),) = cur.fetchall()
    assert ts == wanted.timestamp.astimezone(UTC).replace(tzinfo=None)
    assert (host, status) == (wanted.host, wanted.attributes["http.status"])
    assert orjson.loads(attributes) == wanted.attributes


def test_trino_table_outlives_the_script_session(trino_archive: TrinoArchive) -> None:
    """A later session (the catalog's default timestamp precision, milliseconds) reads the same
    table: the script's session setting shaped only how its own queries read."""
    run_script(connect(trino_archive.trino).cursor(), printed_ddl(trino_archive))
    cur = connect(trino_archive.trino).cursor()
    cur.execute("SELECT count(*), min(timestamp) FROM hive.strata.logs WHERE tenant = 'beta'")
    ((count, first),) = cur.fetchall()
    beta = trino_archive.records["beta"]
    assert count == len(beta)
    earliest = min(r.timestamp for r in beta).astimezone(UTC).replace(tzinfo=None)
    assert abs(first - earliest).total_seconds() < 0.001
