"""`strata job submit | list | savepoint | cancel` against a real Flink session cluster.

The test starts its own standalone cluster from PyFlink's distribution (one JobManager, one
TaskManager, as separate processes with their own configuration, plugins folder and free ports),
so what runs there is exactly what a user's cluster would run: the job graph, the connector jars
and Strata's Python packages all arrive through the submission, S3 through the cluster's plugin.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.s3.client import s3_client
from core.records.pipeline import RecordPipeline
from infra.settings import Settings
from jobs.cluster import FlinkRest, all_running, ended, flink_home
from schemas.envelope import RawEnvelope
from schemas.record import Record
from tests.integration.ingest_support import Run, isolated_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str  # host:port of the REST API
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _ready: bool = False

    def ready(self, timeout_s: float = 120) -> Cluster:
        """Wait until the TaskManager's slots are registered (once; the fixture starts the
        processes without waiting, so the tests' setup and submissions overlap their start)."""
        if not self._ready:
            _wait_for_slots(self, self.procs, timeout_s)
            self._ready = True
        return self

    def logs(self) -> str:
        """The end of each process's log, for a failure message."""
        out = []
        for path in sorted(self.log_dir.glob("*")):
            if path.suffix in (".log", ".console") and path.is_file():
                out.append(
                    f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:])
                )
        return "\n".join(out)


@pytest.fixture(scope="module")
def worker_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python for the TaskManager's workers with this venv's packages (PyFlink, orjson, …) but
    without Strata, so the job only runs if its code arrives with the submission.

    A new venv whose ``.pth`` line puts this venv's site-packages on its path: a path line does
    not run the ``.pth`` files in that folder, the editable install's finder among them.
    """
    import sysconfig

    folder = tmp_path_factory.mktemp("worker-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    Path(site, "strata-venv-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = "import pyflink, orjson, pydantic_settings, importlib.util as u; print(u.find_spec('jobs'))"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, cwd=folder)
    assert out.stdout.strip() == "None", out.stdout + out.stderr  # PyFlink is there, Strata is not
    return str(python)


def _cluster_config(settings: Settings, folder: Path, rest_port: int, python: str) -> dict[str, str]:
    """PyFlink's default configuration (Java 17 module flags included), with this cluster's ports,
    memory, S3 keys and Python."""
    from ruamel.yaml import YAML

    from jobs.flink import s3_options

    def flat(prefix: str, value: object) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from flat(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            yield prefix, str(value)

    base = YAML(typ="safe").load((flink_home() / "conf" / "config.yaml").read_text())
    conf = dict(flat("", base))
    conf.update(
        {
            "jobmanager.rpc.address": "localhost",
            "jobmanager.rpc.port": str(_free_port()),
            "rest.port": str(rest_port),
            "rest.address": "localhost",
            "rest.bind-address": "localhost",
            "jobmanager.memory.process.size": "768m",
            "taskmanager.memory.process.size": "1536m",
            "taskmanager.numberOfTaskSlots": "4",
            "env.pid.dir": str(folder / "run"),
            "io.tmp.dirs": str(folder / "tmp"),
            "python.executable": python,
            **s3_options(settings),
        }
    )
    return conf


@pytest.fixture(scope="module")
def cluster(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, worker_python: str
) -> Iterator[Cluster]:
    """A standalone session cluster: jobmanager.sh and taskmanager.sh in the foreground, each in
    its own session so the finally can stop it with everything it started; call ``ready()``."""
    from infra.stack.flink_jars import ensure_flink_jars
    from jobs.flink import plugins_dir

    ensure_flink_jars(settings)
    folder = tmp_path_factory.mktemp("flink-cluster")
    conf_dir, log_dir = folder / "conf", folder / "log"
    for d in (conf_dir, log_dir, folder / "run", folder / "tmp"):
        d.mkdir()
    home = flink_home()
    for f in (home / "conf").glob("log4j*.properties"):
        shutil.copy(f, conf_dir)
    rest_port = _free_port()
    conf = _cluster_config(settings, folder, rest_port, worker_python)
    (conf_dir / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in conf.items()))
    env = {
        **os.environ,
        "FLINK_HOME": str(home),
        "FLINK_CONF_DIR": str(conf_dir),
        "FLINK_LOG_DIR": str(log_dir),
        "FLINK_PID_DIR": str(folder / "run"),
        "FLINK_PLUGINS_DIR": str(plugins_dir(settings).resolve()),
    }
    c = Cluster(f"localhost:{rest_port}", log_dir)
    procs = c.procs
    try:
        for script, name in (("jobmanager.sh", "jobmanager"), ("taskmanager.sh", "taskmanager")):
            with (log_dir / f"{name}.console").open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        ["bash", str(home / "bin" / script), "start-foreground"],
                        env=env,
                        # Not the checkout: Python workers start here, and `-m` would import from it.
                        cwd=folder,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield c
    finally:
        for p in procs:
            with_group(p, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with_group(p, signal.SIGKILL)
                p.wait(timeout=10)


def with_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal a process and everything it started (JVM, Python workers): its own session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _wait_for_slots(c: Cluster, procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"Flink process exited early: {dead}\n{c.logs()}")
        try:
            overview = httpx.get(f"http://{c.address}/overview", timeout=2).json()
            if overview.get("slots-total", 0) >= 4:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    pytest.fail(f"the Flink cluster did not offer its slots within {timeout_s:.0f} s\n{c.logs()}")


# -- what the job reads and writes ------------------------------------------------------------


@pytest.fixture(scope="module")
def names(
    settings: Settings, require: Callable[..., None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """Topics, index prefix, table and archive prefix of this module only; removed afterwards."""
    import uuid

    from jobs.ingest.job import IngestOptions, prepare_tiers

    require("kafka", "opensearch", "cassandra", "s3")
    name = f"cluster_{uuid.uuid4().hex[:10]}"
    with isolated_run(settings, name, tmp_path_factory.mktemp("ingest-logs")) as run:
        try:
            # Made once here: the two submissions below start together and would race to create them.
            prepare_tiers(run.settings, IngestOptions.from_settings(run.settings))
            yield run
        finally:
            # The unbounded submission's, under its own group (see ``live``).
            shutil.rmtree(f"{run.checkpoints}_live", ignore_errors=True)


def _produce(s: Settings, lines: list[str]) -> dict[str, Record]:
    """Send ``lines`` to the raw topic; the records the job must store, by log_id."""
    from kafka import KafkaProducer

    now = datetime.now(UTC)
    messages = [RawEnvelope(tenant="acme", received_at=now, line=line).encode() for line in lines]
    producer = KafkaProducer(bootstrap_servers=s.kafka_servers, acks="all", linger_ms=5)
    for m in messages:
        producer.send(s.raw_topic, value=m, key=b"acme/checkout")
    producer.flush()
    producer.close()
    pipeline = RecordPipeline()
    records = [pipeline.process(m) for m in messages]
    return {r.log_id: r for r in records if isinstance(r, Record)}


def _lines(tag: str, n: int) -> list[str]:
    now = datetime.now(UTC)
    return [
        f"{now - timedelta(seconds=i):%Y-%m-%d %H:%M:%S.%f} ERROR [checkout] {tag} order {i} failed"
        for i in range(n)
    ]


def _hot_ids(s: Settings) -> set[str]:
    from opensearchpy import OpenSearch

    client = OpenSearch(s.opensearch_endpoint)
    pattern = f"{s.opensearch_index_prefix}-*"
    if not client.indices.exists(index=pattern):
        return set()
    client.indices.refresh(index=pattern)
    hits = client.search(index=pattern, body={"size": 1000, "_source": False})["hits"]["hits"]
    return {h["_id"] for h in hits}


def strata(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "job", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the tests --------------------------------------------------------------------------------


@dataclass
class Live:
    """An unbounded submission running in the background."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def job_id(self, timeout_s: float) -> str:
        code = self.proc.wait(timeout=timeout_s)
        assert code == 0, self.err.read_text()[-4000:]
        return self.out.read_text().strip()


@pytest.fixture(scope="module")
def live(
    cluster: Cluster, names: Run, worker_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """`strata job submit ingest` without --bounded, started at once: it compiles the job while the
    cluster starts and the bounded test submits its own (the client retries the REST address for a
    minute, and compiling takes longer than the JobManager needs to start)."""
    folder = tmp_path_factory.mktemp("live")
    env = {**names.env, "STRATA_INGEST_GROUP": f"{names.settings.ingest_group}_live"}
    out, err = folder / "stdout", folder / "stderr"
    command = [sys.executable, "-m", "infra.cli", "job", "submit", "ingest", "--jobmanager", cluster.address]
    command += ["--from", "earliest", "--parallelism", "1", "--python", worker_python]
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=o, stderr=e, start_new_session=True
        )
    try:
        yield Live(env, proc, out, err)
    finally:
        if proc.poll() is None:
            with_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.usefixtures("live")  # submitted alongside, see the fixture
def test_bounded_submission_runs_on_the_cluster_and_fills_the_tiers(
    cluster: Cluster, names: Run, worker_python: str
) -> None:
    s = names.settings
    expected = _produce(s, _lines("bounded", 40))
    assert len(expected) == 40

    submitted = strata(
        names.env,
        "submit",
        "ingest",
        "--jobmanager",
        cluster.address,
        "--from",
        "earliest",
        "--bounded",
        "--parallelism",
        "1",
        "--python",
        worker_python,
        # The final checkpoint commits the Parquet files; no need to wait the usual 10 s for it.
        "-D",
        "execution.checkpointing.interval=2s",
    )
    assert submitted.returncode == 0, submitted.stderr[-4000:] + cluster.logs()
    job_id = submitted.stdout.strip()
    assert len(job_id) == 32
    cluster.ready()

    listed = strata(names.env, "list", "--jobmanager", cluster.address, timeout=30)
    assert listed.returncode == 0, listed.stderr
    (line,) = [ln for ln in listed.stdout.splitlines() if ln.startswith(job_id)]
    assert f"strata-ingest ({s.ingest_group})" in line

    with FlinkRest(cluster.address) as rest:
        details = rest.wait(job_id, ended, timeout_s=150, poll_s=1)
    assert details["state"] == "FINISHED", cluster.logs()

    # Hot: OpenSearch holds each record once, by log_id.
    assert _hot_ids(s) == set(expected)
    # Warm: Cassandra, through the connector jar shipped with the job.
    from cassandra.cluster import Cluster as CassandraCluster

    cassandra = CassandraCluster(s.cassandra_contact_points, port=s.cassandra_port)
    rows = cassandra.connect(s.cassandra_keyspace).execute(f"SELECT log_id FROM {s.cassandra_table}")
    assert {r.log_id for r in rows} == set(expected)
    cassandra.shutdown()
    # Cold: Parquet on S3, written through the cluster's own s3-fs-hadoop plugin.
    client = s3_client(s)
    listing = client.list_objects_v2(Bucket=s.s3_bucket, Prefix=s.archive_prefix + "/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    assert any(k.startswith(f"{s.archive_prefix}/tenant=acme/") and "/part-" in k for k in keys), keys


def test_running_submission_takes_a_savepoint_and_cancels(
    cluster: Cluster, names: Run, live: Live, tmp_path: Path
) -> None:
    s = names.settings
    job_id = live.job_id(timeout_s=180)
    cluster.ready()

    with FlinkRest(cluster.address) as rest:
        rest.wait(job_id, all_running, timeout_s=90, poll_s=1)
        # It streams: lines sent now reach OpenSearch while the job runs.
        fresh = _produce(s, _lines("live", 10))
        deadline = time.monotonic() + 60
        while not set(fresh) <= _hot_ids(s):
            assert time.monotonic() < deadline, f"live records never reached OpenSearch\n{cluster.logs()}"
            time.sleep(1)

        saved = strata(
            live.env,
            "savepoint",
            job_id,
            "--jobmanager",
            cluster.address,
            "--dir",
            tmp_path.as_uri(),
            timeout=150,
        )
        assert saved.returncode == 0, saved.stderr + cluster.logs()
        location = Path(saved.stdout.strip().removeprefix("file:"))
        assert location.parent == tmp_path and (location / "_metadata").is_file()

        # Cancel with a last savepoint, the upgrade path: its result is read after the job is gone.
        # (Plain `cancel`, one PATCH, is covered against the REST contract in the unit tests.)
        final = tmp_path / "final"
        cancelled = strata(
            live.env,
            "cancel",
            job_id,
            "--savepoint",
            "--dir",
            final.as_uri(),
            "--jobmanager",
            cluster.address,
        )
        assert cancelled.returncode == 0, cancelled.stderr + cluster.logs()
        assert (Path(cancelled.stdout.strip().removeprefix("file:")) / "_metadata").is_file()
        assert rest.wait(job_id, ended, timeout_s=60)["state"] == "CANCELED"

    listed = strata(live.env, "list", "--jobmanager", cluster.address, "--json", timeout=30)
    states = {j["id"]: j["state"] for j in map(json.loads, listed.stdout.splitlines())}
    assert states[job_id] == "CANCELED"
