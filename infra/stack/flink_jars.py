"""The connector jars every Strata job loads, fetched once into ``settings.flink_lib_dir``.

Layout of the folder::

    flink-lib/*.jar                                   connectors, formats and their dependencies
    flink-lib/plugins/s3-fs-hadoop/flink-s3-fs-hadoop-<v>.jar   the S3 filesystem, as a Flink plugin

This is the development stack's side: it downloads and builds. A job only reads the folder
(:func:`jobs.flink.job_jars`), so on a real cluster the jars come from wherever its configuration
names them, and nothing here is needed.

:func:`ensure_job_jars` is what ``strata stack up``, ``strata job run`` and the test set-up call.

Why the registry's thin connector jars and not the ``flink-sql-connector-*`` uber jars: the
Maven mirror these machines reach does not serve the uber jars for Flink 1.20 (nor
flink-sql-parquet 1.20, nor a Cassandra connector newer than 3.0.0-1.16), so the thin jars
are fetched with their runtime dependencies, resolved together so each library appears once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from infra.settings import Settings
from infra.stack.maven import Artifact, FetchError, fetch
from jobs import flink
from jobs.flink import PLUGINS_SUBDIR, S3_PLUGIN, STRATA_JAR_NAME

_MANIFEST_PREFIX = ".strata-jars-"

# Logging comes from PyFlink's own lib/ (log4j 2 + the SLF4J binding); a second copy inside
# pipeline.jars only produces "multiple bindings" noise, since Flink loads these parent-first.
_LOGGING = ("org.slf4j:slf4j-api", "org.apache.logging.log4j:log4j-api", "org.apache.logging.log4j:log4j-jul")


# Versions of transitive dependencies that Maven would otherwise resolve wrongly (see below).
JACKSON_VERSION = "2.17.0"


class FlinkJarsError(RuntimeError):
    """A jar could not be fetched or loaded; the message names it."""


def lib_artifacts(settings: Settings) -> list[Artifact]:
    """The jars that go on a job's classpath (``pipeline.jars``), with their dependencies."""
    hadoop = settings.hadoop_version
    return [
        Artifact(
            "org.apache.flink",
            "flink-connector-kafka",
            settings.flink_kafka_connector_version,
            exclusions=_LOGGING,
        ),
        Artifact(
            "org.apache.flink",
            "flink-connector-opensearch2",
            settings.flink_opensearch_connector_version,
            exclusions=_LOGGING,
        ),
        # OpenSearch 2.13's x-content needs Jackson 2.16+ (StreamWriteConstraints), but Maven's
        # nearest-wins picks the Kafka connector's 2.15; direct entries outrank both.
        *(
            Artifact("com.fasterxml.jackson.core", name, JACKSON_VERSION, transitive=False)
            for name in ("jackson-core", "jackson-databind", "jackson-annotations")
        ),
        *(
            Artifact("com.fasterxml.jackson.datatype", name, JACKSON_VERSION, transitive=False)
            for name in ("jackson-datatype-jdk8", "jackson-datatype-jsr310")
        ),
        # The Cassandra connector jar shades its DataStax driver, so it needs nothing else.
        Artifact(
            "org.apache.flink",
            "flink-connector-cassandra_2.12",
            settings.flink_cassandra_connector_version,
            exclusions=_LOGGING,
        ),
        Artifact("org.apache.flink", "flink-parquet", settings.flink_parquet_version, exclusions=_LOGGING),
        # Parquet's writer is built on Hadoop's Configuration and mapreduce output classes, but
        # never on Hadoop's filesystems (Flink hands it a stream), so only the classes it touches
        # are fetched, not Hadoop's hundred-odd transitive jars.
        Artifact("org.apache.hadoop", "hadoop-common", hadoop, transitive=False),
        Artifact("org.apache.hadoop", "hadoop-mapreduce-client-core", hadoop, transitive=False),
        Artifact(
            "org.apache.hadoop.thirdparty",
            "hadoop-shaded-guava",
            settings.hadoop_shaded_guava_version,
            transitive=False,
        ),
        Artifact("com.fasterxml.woodstox", "woodstox-core", "5.4.0", transitive=False),
        Artifact("org.codehaus.woodstox", "stax2-api", "4.2.1", transitive=False),
    ]


def plugin_artifacts(settings: Settings) -> dict[str, list[Artifact]]:
    """Flink plugins by folder name: each gets its own class loader, so they cannot go in lib."""
    return {
        S3_PLUGIN: [
            Artifact("org.apache.flink", "flink-s3-fs-hadoop", settings.flink_s3_fs_version, transitive=False)
        ]
    }


def _digest(settings: Settings) -> str:
    coords = [a.coords + "|" + ",".join(a.exclusions) + f"|{a.transitive}" for a in lib_artifacts(settings)]
    for name, arts in sorted(plugin_artifacts(settings).items()):
        coords += [f"{name}/{a.coords}" for a in arts]
    return hashlib.sha256("\n".join(coords).encode()).hexdigest()[:16]


def _lib_jars(lib_dir: Path) -> list[Path]:
    return sorted(p for p in lib_dir.glob("*.jar") if p.is_file())


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    # `strata stack up` fetches in a thread while a test session may fetch too.
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _failed_artifact(message: str, artifacts: list[Artifact]) -> str:
    """The coordinates Maven names in its error (``group:artifact:type:version``), else the bundle's."""
    coords = re.findall(r"[\w.\-]+:[\w.\-]+:[\w.\-]+:[\w.\-]+", message)
    # Skip the generated pom and the helper's own list of what it was asked for.
    asked = {a.coords for a in artifacts}
    named = [c for c in coords if not c.startswith("dev.strata:") and c not in asked]
    return named[0] if named else ", ".join(a.coords for a in artifacts)


def _fetch_into(artifacts: list[Artifact], dest: Path) -> None:
    try:
        fetch(artifacts, dest)
    except FetchError as exc:
        raise FlinkJarsError(
            f"could not fetch Flink jar {_failed_artifact(str(exc), artifacts)}: {exc}"
        ) from exc


def ensure_flink_jars(settings: Settings) -> list[Path]:
    """Fetch the jobs' jars into ``settings.flink_lib_dir`` on first use; return the top-level jars.

    Idempotent and cheap when warm (a manifest keyed on the artifact list). A version change in
    settings rebuilds the folder from scratch, so no stale jar lingers on a classpath. Raises
    :class:`FlinkJarsError` naming the artifact Maven could not resolve.
    """
    lib_dir = settings.flink_lib_dir
    manifest = lib_dir / f"{_MANIFEST_PREFIX}{_digest(settings)}"
    if manifest.exists():
        return _lib_jars(lib_dir)
    with _locked(settings.cache_dir / "flink-jars.lock"):
        if manifest.exists():
            return _lib_jars(lib_dir)
        staging = lib_dir.with_name(lib_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        _fetch_into(lib_artifacts(settings), staging)
        for name, arts in plugin_artifacts(settings).items():
            _fetch_into(arts, staging / PLUGINS_SUBDIR / name)
        # The helper leaves its own markers; ours is the only one that should count.
        for marker in staging.rglob(".fetched-*"):
            marker.unlink()
        (staging / manifest.name).write_text("\n".join(p.name for p in _lib_jars(staging)) + "\n")
        old = lib_dir.with_name(lib_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if lib_dir.exists():
            lib_dir.rename(old)
        staging.rename(lib_dir)
        shutil.rmtree(old, ignore_errors=True)
    return _lib_jars(lib_dir)


# Another checkout sharing STRATA_HOME may still run a jar built from other sources: a jar is
# removed once it has not been built or used for this long, never because a newer one exists.
STALE_STRATA_JAR_S = 7 * 24 * 3600


def strata_jar(settings: Settings) -> Path:
    """The jar of Strata's Java classes (:data:`jobs.flink.JAVA_SOURCE_ROOTS`), built with ``javac``
    against PyFlink's Flink and the connector jars when its sources (or that Flink) changed; cached
    under ``settings.home``."""
    import pyflink

    pyflink_lib = Path(pyflink.__file__).resolve().parent / "lib"
    ensure_flink_jars(settings)
    jar_path = flink.strata_jar_path(settings)
    out_dir = jar_path.parent
    if jar_path.exists():
        os.utime(jar_path)  # in use: not stale
        return jar_path
    with _locked(settings.cache_dir / "strata-jar.lock"):
        if jar_path.exists():
            return jar_path
        staging = out_dir / "classes.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        classpath = os.pathsep.join([str(pyflink_lib / "*"), str(settings.flink_lib_dir / "*")])
        sources = flink.java_sources()
        for command in (
            ["javac", "--release", "11", "-nowarn", "-cp", classpath, "-d", str(staging), *map(str, sources)],
            ["jar", "--create", "--file", str(jar_path.with_suffix(".partial")), "-C", str(staging), "."],
        ):
            try:
                result = subprocess.run(command, capture_output=True, text=True, check=False)
            except FileNotFoundError as exc:
                raise FlinkJarsError(
                    f"{command[0]} not found: a JDK 17 is needed (infra/system-deps.sh)"
                ) from exc
            if result.returncode != 0:
                raise FlinkJarsError(f"{command[0]} failed:\n{result.stdout}{result.stderr}")
        jar_path.with_suffix(".partial").rename(jar_path)
        shutil.rmtree(staging, ignore_errors=True)
        stale_before = time.time() - STALE_STRATA_JAR_S
        for old in out_dir.glob(STRATA_JAR_NAME.format(digest="*")):
            if old != jar_path and old.stat().st_mtime < stale_before:
                old.unlink(missing_ok=True)
    return jar_path


def ensure_job_jars(settings: Settings) -> None:
    """The connector jars and Strata's own jar, fetched and built when missing or stale."""
    ensure_flink_jars(settings)
    strata_jar(settings)
