"""Everything a Strata job needs from Flink before its graph is built: configuration, jars, S3.

``flink-conf.yaml`` at the repository root holds the runtime settings; endpoints and folders come
from :mod:`infra.settings`. Both jobs (ingest, alerts) start from :func:`stream_environment`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.settings import REPO_ROOT, Settings

FLINK_CONF = REPO_ROOT / "flink-conf.yaml"


def read_flink_conf(path: Path = FLINK_CONF) -> dict[str, str]:
    """The flat ``key: value`` lines of a Flink configuration file (the legacy format 1.20 reads)."""
    conf: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{path}: not a `key: value` line: {raw!r}")
        conf[key.strip()] = value.strip()
    return conf


def checkpoint_root(settings: Settings, job: str) -> Path:
    """Checkpoints of one job instance: ``job`` names the job and its consumer group, so two
    instances (a test's and a user's) never resume from each other's state."""
    return settings.home / "checkpoints" / job


def latest_checkpoint(settings: Settings, job: str) -> Path | None:
    """The newest completed checkpoint of ``job`` (a ``chk-N`` folder with ``_metadata``), if any."""
    root = checkpoint_root(settings, job)
    done = [m.parent for m in root.glob("*/chk-*/_metadata")]
    if not done:
        return None
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))


def job_configuration(
    settings: Settings, job: str, *, parallelism: int | None = None, restore: Path | None = None
) -> dict[str, str]:
    conf = read_flink_conf()
    conf["state.checkpoints.dir"] = checkpoint_root(settings, job).resolve().as_uri()
    conf["pipeline.name"] = f"strata-{job}"
    conf["parallelism.default"] = str(parallelism or settings.job_parallelism)
    if restore is not None:
        conf["execution.savepoint.path"] = restore.resolve().as_uri()
    return conf


def stream_environment(
    settings: Settings, job: str, *, parallelism: int | None = None, restore: Path | None = None
) -> tuple[Any, Any]:
    """A (StreamExecutionEnvironment, StreamTableEnvironment) pair configured for ``job``."""
    import os
    import sys

    # PyFlink's local JVM logs into one shared file by default; each job run gets its own folder.
    log_dir = settings.log_dir / "flink" / f"{job}-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FLINK_LOG_DIR", str(log_dir))
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    from infra.stack.flink_jars import enable_filesystems, flink_jar_urls

    config = Configuration()
    for key, value in job_configuration(settings, job, parallelism=parallelism, restore=restore).items():
        config.set_string(key, value)
    config.set_string("pipeline.jars", ";".join(flink_jar_urls(settings)))
    # In local mode PyFlink runs every Python worker inside this client process ("loopback"), so
    # all subtasks of a Python operator take turns on one interpreter lock. One worker process per
    # subtask (what a cluster does) lets them run on both cores. Workers are started with this
    # interpreter, the one that has Strata and pyflink.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    config.set_string("python.executable", sys.executable)
    # S3A deletes "directory marker" objects after each commit on a background pool; in local mode
    # that wait never returned. S3 has no directories, so markers are simply kept (Hadoop >= 3.3.1).
    config.set_string("s3.directory.marker.retention", "keep")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    enable_filesystems(settings, config)
    return env, t_env
