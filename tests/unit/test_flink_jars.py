"""The Flink jar set: what is asked of Maven, how a failure is named, and the warm path (no network)."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import pytest

from infra.settings import REPO_ROOT, Settings
from infra.stack import flink_jars
from jobs import flink
from jobs.flink import FlinkSetupError

pytestmark = pytest.mark.unit


def test_versions_come_from_settings() -> None:
    settings = Settings(flink_kafka_connector_version="9.9.9-1.20", flink_parquet_version="1.20.7")
    coords = {f"{a.group}:{a.artifact}": a.version for a in flink_jars.lib_artifacts(settings)}
    assert coords["org.apache.flink:flink-connector-kafka"] == "9.9.9-1.20"
    assert coords["org.apache.flink:flink-parquet"] == "1.20.7"
    assert coords["org.apache.hadoop:hadoop-common"] == settings.hadoop_version
    (s3,) = flink_jars.plugin_artifacts(settings)[flink_jars.S3_PLUGIN]
    assert (s3.artifact, s3.version) == ("flink-s3-fs-hadoop", settings.flink_s3_fs_version)


def test_failure_names_the_artifact_maven_could_not_resolve() -> None:
    arts = flink_jars.lib_artifacts(Settings())
    message = (
        f"could not fetch {', '.join(a.coords for a in arts)} from Maven Central:\n"
        "[ERROR] Failed to execute goal on project strata-fetch: Could not resolve dependencies for "
        "project dev.strata:strata-fetch:pom:0: org.apache.flink:flink-parquet:jar:1.20.9 was not found"
    )
    assert flink_jars._failed_artifact(message, arts) == "org.apache.flink:flink-parquet:jar:1.20.9"


def test_warm_folder_is_returned_without_fetching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path)
    lib = settings.flink_lib_dir
    (lib / "plugins" / "s3-fs-hadoop").mkdir(parents=True)
    for name in ("b.jar", "a.jar", "plugins/s3-fs-hadoop/flink-s3-fs-hadoop.jar"):
        (lib / name).write_bytes(b"PK")
    (lib / f"{flink_jars._MANIFEST_PREFIX}{flink_jars._digest(settings)}").write_text("a.jar\nb.jar\n")

    def no_fetch(*_: object, **__: object) -> None:
        raise AssertionError("a warm folder must not call Maven")

    monkeypatch.setattr(flink_jars, "fetch", no_fetch)
    assert flink_jars.ensure_flink_jars(settings) == [lib / "a.jar", lib / "b.jar"]


def test_a_job_reads_the_jars_where_the_settings_put_them(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    lib = settings.flink_lib_dir
    (lib / "plugins" / "s3-fs-hadoop").mkdir(parents=True)
    for name in ("b.jar", "a.jar", "plugins/s3-fs-hadoop/flink-s3-fs-hadoop.jar"):
        (lib / name).write_bytes(b"PK")
    with pytest.raises(FlinkSetupError, match="strata stack up"):
        flink.flink_jar_urls(settings)
    own = tmp_path / flink.STRATA_JAR_SUBDIR / flink.STRATA_JAR_NAME.format(digest="0123")
    own.parent.mkdir()
    own.write_bytes(b"PK")
    urls = flink.flink_jar_urls(settings)
    # Only top-level jars go on the classpath: a plugin there would defeat its own class loader.
    # Strata's own jar (compiled from connectors/*/java) comes last.
    assert urls == [(lib / "a.jar").resolve().as_uri(), (lib / "b.jar").resolve().as_uri(), own.as_uri()]
    assert flink.job_process_env(settings, {})["FLINK_PLUGINS_DIR"] == str((lib / "plugins").resolve())


def _warm_lib(settings: Settings) -> None:
    lib = settings.flink_lib_dir
    lib.mkdir(parents=True)
    (lib / f"{flink_jars._MANIFEST_PREFIX}{flink_jars._digest(settings)}").write_text("")


def test_strata_jar_is_compiled_once_from_the_java_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "home")
    _warm_lib(settings)
    src = tmp_path / "java" / "dev" / "example"
    src.mkdir(parents=True)
    (src / "Hello.java").write_text(
        "package dev.example; public class Hello { public int n() { return 1; } }"
    )
    monkeypatch.setattr(flink, "JAVA_SOURCE_ROOTS", (tmp_path / "java",))
    jar = flink_jars.strata_jar(settings)
    assert "dev/example/Hello.class" in zipfile.ZipFile(jar).namelist()
    inode = jar.stat().st_ino
    assert flink_jars.strata_jar(settings) == jar and jar.stat().st_ino == inode  # cached, not rebuilt
    (src / "Hello.java").write_text(
        "package dev.example; public class Hello { public int n() { return 2; } }"
    )
    rebuilt = flink_jars.strata_jar(settings)
    assert rebuilt != jar and rebuilt.exists()  # a changed source, a new jar
    # The old one stays while another checkout sharing the home may run it; a stale one goes.
    assert jar.exists()
    week_ago = time.time() - flink_jars.STALE_STRATA_JAR_S - 60
    os.utime(jar, (week_ago, week_ago))
    (src / "Hello.java").write_text(
        "package dev.example; public class Hello { public int n() { return 3; } }"
    )
    newest = flink_jars.strata_jar(settings)
    assert newest.exists() and rebuilt.exists() and not jar.exists()


def test_a_job_takes_the_jar_of_its_own_sources_over_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two checkouts sharing one home: each job runs the jar built from its own sources."""
    settings = Settings(home=tmp_path / "home")
    _warm_lib(settings)
    with zipfile.ZipFile(settings.flink_lib_dir / "a.jar", "w") as connector:
        connector.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    src = tmp_path / "java"
    src.mkdir()
    (src / "Mine.java").write_text("public class Mine {}")
    monkeypatch.setattr(flink, "JAVA_SOURCE_ROOTS", (src,))
    mine = flink_jars.strata_jar(settings)
    theirs = mine.with_name(flink.STRATA_JAR_NAME.format(digest="f" * 16))
    theirs.write_bytes(b"PK")  # built later by another checkout
    later = mine.stat().st_mtime + 60
    os.utime(theirs, (later, later))
    assert flink.job_jars(settings)[-1] == mine


def test_a_java_compile_error_is_reported_with_javac_s_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "home")
    _warm_lib(settings)
    src = tmp_path / "java"
    src.mkdir()
    (src / "Broken.java").write_text("public class Broken { int x = ; }")
    monkeypatch.setattr(flink, "JAVA_SOURCE_ROOTS", (src,))
    with pytest.raises(flink_jars.FlinkJarsError, match=r"javac failed:[\s\S]*Broken\.java"):
        flink_jars.strata_jar(settings)


def test_every_connector_s_java_folder_is_compiled() -> None:
    """A connector's Java classes are found by the job only if their folder is a source root."""
    roots = set(flink.JAVA_SOURCE_ROOTS)
    folders = {p for p in (REPO_ROOT / "connectors").glob("*/java") if p.is_dir()}
    folders.add(REPO_ROOT / "connectors" / "java")  # the classes several sinks share
    assert folders and folders <= roots
    sources = {p.name for p in flink.java_sources()}
    assert {"BatchedCassandraSink.java", "OpensearchIndexSink.java", "TrustedCa.java"} <= sources
