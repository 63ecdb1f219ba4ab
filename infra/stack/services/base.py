"""What every local service has: where it lives, how it starts, how we know it is healthy."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from infra.settings import Settings
from infra.stack import process
from infra.stack.process import StackError


@dataclass
class Launch:
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None


@dataclass(frozen=True)
class Port:
    number: int
    setting: str  # the environment variable that moves it

    def describe(self) -> str:
        return f"port {self.number} is already taken by another program; free it or set {self.setting}"


class Service(ABC):
    """One local process of the stack. Subclasses fill in fetch, launch, check and provision."""

    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # Layout on disk ---------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def conf_dir(self) -> Path:
        return self.settings.home / "conf" / self.name

    # What subclasses provide ------------------------------------------------------------------
    # The settings naming the service's ports, in order ("kafka_port" is STRATA_KAFKA_PORT), and
    # the one naming its version.
    port_settings: tuple[str, ...] = ()
    version_setting: str = ""

    @property
    def ports(self) -> list[Port]:
        return [Port(getattr(self.settings, name), f"STRATA_{name.upper()}") for name in self.port_settings]

    @property
    @abstractmethod
    def endpoint(self) -> str: ...

    @property
    def version(self) -> str:
        return str(getattr(self.settings, self.version_setting)) if self.version_setting else ""

    def fetch(self) -> None:
        """Download and cache what the service needs (idempotent); nothing by default."""
        return None

    @abstractmethod
    def prepare(self) -> Launch:
        """Write configuration, initialise storage on first start, and return how to launch."""

    @abstractmethod
    def check(self) -> str | None:
        """A real round-trip: None when healthy, otherwise why not."""

    def provision(self) -> None:
        """Create what the pipeline needs (topics, bucket, keyspace, database); idempotent."""
        return None

    # Shared behaviour -------------------------------------------------------------------------
    def pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def start(self) -> int:
        for port in self.ports:
            if process.port_in_use(self.settings.bind_host, port.number):
                raise StackError(f"{self.name}: {port.describe()}")
        launch = self.prepare()
        return process.start(
            launch.cmd,
            log_file=self.log_file,
            pid_file=self.pid_file,
            env=launch.env,
            cwd=launch.cwd,
            user=launch.user,
        )

    def stop(self) -> bool:
        stopped = process.stop(self.pid_file)
        # A JVM's listening sockets can outlive its pid by a moment; `up` right after must not
        # mistake them for another program's.
        deadline = time.monotonic() + 10
        while (
            stopped
            and time.monotonic() < deadline
            and any(process.port_in_use(self.settings.bind_host, p.number) for p in self.ports)
        ):
            time.sleep(0.2)
        return stopped

    def purge(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.conf_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)


@lru_cache(maxsize=1)
def java_home() -> Path:
    """A Java 17 home: JAVA_HOME if it is 17, else the system's Java 17."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/jvm/*17*"))]
    java = shutil.which("java")
    if java:
        candidates.append(Path(os.path.realpath(java)).parent.parent)
    for home in candidates:
        exe = home / "bin" / "java"
        if not exe.exists():
            continue
        out = subprocess.run([str(exe), "-version"], capture_output=True, text=True).stderr
        if 'version "17' in out:
            return home
    raise StackError("Java 17 is required (apt-get install openjdk-17-jdk-headless, or set JAVA_HOME)")


def java() -> str:
    return str(java_home() / "bin" / "java")


def classpath(lib_dir: Path) -> str:
    return str(lib_dir / "*")
