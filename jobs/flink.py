"""Everything a Strata job needs from Flink before its graph is built: configuration, jars, S3.

``flink-conf.yaml`` at the repository root holds the runtime settings; endpoints and folders come
from :mod:`infra.settings`. Both jobs (ingest, alerts) start from :func:`stream_environment`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.settings import REPO_ROOT, Settings

if TYPE_CHECKING:  # pyflink is heavy; only job processes load it
    from pyflink.common import Configuration

FLINK_CONF = REPO_ROOT / "flink-conf.yaml"

# Where the jobs' jars lie (``settings.flink_lib_dir``)::
#
#     flink-lib/*.jar                                   connectors, formats and their dependencies
#     flink-lib/plugins/s3-fs-hadoop/*.jar              the S3 filesystem, as a Flink plugin
#     <home>/flink-strata/strata-flink-<digest>.jar     Strata's own Java classes
#
# A job only reads these folders; the development stack (``strata stack up``) fills them, and on
# a real cluster they are wherever its settings point.
PLUGINS_SUBDIR = "plugins"
S3_PLUGIN = "s3-fs-hadoop"
STRATA_JAR_SUBDIR = "flink-strata"
STRATA_JAR_NAME = "strata-flink-{digest}.jar"


class FlinkSetupError(RuntimeError):
    """A jar the job needs is not where the settings say; the message says how to get it."""


def plugins_dir(settings: Settings) -> Path:
    return settings.flink_lib_dir / PLUGINS_SUBDIR


# Strata's own Java classes (Flink functions the connectors do not offer) live beside the connector
# they extend; connectors/java holds what several of them share (TrustedCa). infra.stack compiles
# them into one jar named by the digest below.
JAVA_SOURCE_ROOTS = tuple(
    REPO_ROOT / "connectors" / name for name in ("java", "cassandra/java", "opensearch/java", "s3/java")
)


def java_sources() -> list[Path]:
    return sorted(p for root in JAVA_SOURCE_ROOTS for p in root.rglob("*.java"))


def strata_jar_path(settings: Settings) -> Path:
    """Where the jar of these Java sources (and the Flink they compile against) is, built or not:
    its name carries their digest."""
    import hashlib

    import pyflink

    pyflink_lib = Path(pyflink.__file__).resolve().parent / "lib"
    digest = hashlib.sha256()
    for path in java_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    connectors = sorted(p for p in settings.flink_lib_dir.glob("*.jar") if p.is_file())
    for jar in sorted(pyflink_lib.glob("*.jar")) + connectors:
        digest.update(jar.name.encode())
    return settings.home / STRATA_JAR_SUBDIR / STRATA_JAR_NAME.format(digest=digest.hexdigest()[:16])


def job_jars(settings: Settings) -> list[Path]:
    """The connector jars and Strata's own jar, as the settings place them: the jar built from
    these sources when it is there (another checkout sharing the home may have built a newer one
    from its own), else the newest (a jar put there without its sources)."""
    connectors = sorted(p for p in settings.flink_lib_dir.glob("*.jar") if p.is_file())
    own = sorted(
        (settings.home / STRATA_JAR_SUBDIR).glob(STRATA_JAR_NAME.format(digest="*")),
        key=lambda p: p.stat().st_mtime,
    )
    if not connectors or not own:
        missing = settings.flink_lib_dir if not connectors else settings.home / STRATA_JAR_SUBDIR
        raise FlinkSetupError(
            f"no Flink jars in {missing}: `strata stack up` fetches and builds them "
            "(or set STRATA_FLINK_LIB_DIR and STRATA_HOME to where they are)"
        )
    mine = strata_jar_path(settings)
    return [*connectors, mine if mine in own else own[-1]]


def flink_jar_urls(settings: Settings) -> list[str]:
    """``file://`` URLs of the connector jars and Strata's own, for ``pipeline.jars`` or
    ``env.add_jars``."""
    return [p.resolve().as_uri() for p in job_jars(settings)]


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
    import sys

    # PyFlink's local JVM logs into one shared file by default; each job run gets its own folder.
    log_dir = settings.log_dir / "flink" / f"{job}-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FLINK_LOG_DIR", str(log_dir))
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

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


def s3_options(settings: Settings) -> dict[str, str]:
    """Flink options that point the S3 filesystem plugin (``s3a://``) at ``settings``' S3 server."""
    return {
        "s3.endpoint": settings.s3_endpoint_url,
        "s3.path.style.access": "true",
        "s3.access-key": settings.s3_access_key,
        "s3.secret-key": settings.s3_secret_key,
        # Without a region the AWS SDK asks the instance metadata service, which hangs off-cloud.
        "s3.endpoint.region": settings.s3_region,
        # After each upload S3A deletes the parent "dir/" marker keys. s3proxy's filesystem backend
        # maps such a key to a real folder and answers 500 while it holds files, so S3A retries
        # for minutes and the FileSink commit hangs. Keeping markers is also AWS's advice.
        "s3.directory.marker.retention": "keep",
        # S3A speaks TLS by the endpoint's scheme; its certificate is checked against the JVM's
        # trust store (JAVA_TOOL_OPTIONS=-Djavax.net.ssl.trustStore=… for a private CA: docs/stack.md).
        "s3.connection.ssl.enabled": str(settings.s3_endpoint_url.startswith("https://")).lower(),
    }


def job_process_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a process that runs a PyFlink job (local mode) or ``flink run``.

    ``FLINK_PLUGINS_DIR`` is where Flink looks for plugins. PyFlink overwrites it with its own
    (empty) ``plugins`` folder unless ``FLINK_HOME`` is set, so both are set.
    """
    import pyflink  # local: importing the package is cheap, but only job processes need it

    env = dict(os.environ if base is None else base)
    env.setdefault("FLINK_HOME", str(Path(pyflink.__file__).resolve().parent))
    env["FLINK_PLUGINS_DIR"] = str(plugins_dir(settings).resolve())
    return env


def enable_filesystems(settings: Settings, config: Configuration | None = None) -> None:
    """Load Flink's filesystem plugins (S3) into this process's JVM, configured from ``config``.

    Needed in local mode only: a Flink cluster's processes do this at start from their own
    ``plugins/`` folder and config, but PyFlink's MiniCluster never does, so ``s3a://`` would not
    resolve. Call it after the execution environment exists and before ``execute``. The
    filesystem registry is JVM-wide: the last call's options win.
    """
    from pyflink.java_gateway import get_gateway

    jvm: Any = get_gateway().jvm
    j_config = jvm.org.apache.flink.configuration.Configuration()
    if config is not None:
        j_config.addAll(config._j_configuration)
    for key, value in s3_options(settings).items():
        if not j_config.containsKey(key):
            j_config.setString(key, value)
    root = jvm.java.io.File(str(plugins_dir(settings).resolve())).toPath()
    descriptors = jvm.org.apache.flink.core.plugin.DirectoryBasedPluginFinder(root).findPlugins()
    parent_first = jvm.org.apache.flink.configuration.CoreOptions.getPluginParentFirstLoaderPatterns(j_config)
    manager = jvm.org.apache.flink.core.plugin.DefaultPluginManager(descriptors, parent_first)
    jvm.org.apache.flink.core.fs.FileSystem.initialize(j_config, manager)
