"""Fetch artifacts from Maven Central through the ``mvn`` client, so its usual configuration applies.

A small pom is generated per bundle and ``dependency:copy-dependencies`` copies the artifacts (with
their runtime dependencies when asked) into a folder; a marker file records what was fetched, so a
second call is free.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape


class FetchError(RuntimeError):
    """An artifact could not be fetched; the message names it."""


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str
    type: str = "jar"
    classifier: str = ""
    transitive: bool = True
    exclusions: tuple[str, ...] = field(default=())  # "group:artifact" pairs

    @property
    def coords(self) -> str:
        parts = [self.group, self.artifact, self.version, self.type]
        if self.classifier:
            parts.append(self.classifier)
        return ":".join(parts)

    def to_pom(self) -> str:
        excl = list(self.exclusions)
        if not self.transitive:
            excl = ["*:*"]
        exclusions = "".join(
            "<exclusion><groupId>{}</groupId><artifactId>{}</artifactId></exclusion>".format(
                *(escape(p) for p in e.split(":", 1))
            )
            for e in excl
        )
        classifier = f"<classifier>{escape(self.classifier)}</classifier>" if self.classifier else ""
        return (
            f"<dependency><groupId>{escape(self.group)}</groupId>"
            f"<artifactId>{escape(self.artifact)}</artifactId><version>{escape(self.version)}</version>"
            f"<type>{escape(self.type)}</type>{classifier}"
            f"<exclusions>{exclusions}</exclusions></dependency>"
        )


def _pom(artifacts: list[Artifact]) -> str:
    deps = "".join(a.to_pom() for a in artifacts)
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>dev.strata</groupId><artifactId>strata-fetch</artifactId><version>0</version>"
        "<packaging>pom</packaging>"
        f"<dependencies>{deps}</dependencies></project>"
    )


def fetch(artifacts: list[Artifact], dest: Path, *, include_scope: str = "runtime") -> list[Path]:
    """Copy ``artifacts`` (and their dependencies, unless not transitive) into ``dest``.

    Idempotent: a marker keyed on the artifact list makes a warm second call free.
    Raises :class:`FetchError` naming the artifacts when ``mvn`` fails (registry unreachable,
    unknown version).
    """
    dest = dest.resolve()
    pom = _pom(artifacts)
    digest = hashlib.sha256(pom.encode()).hexdigest()[:16]
    marker = dest / f".fetched-{digest}"
    if marker.exists():
        return sorted(p for p in dest.iterdir() if not p.name.startswith("."))
    if shutil.which("mvn") is None:
        raise FetchError("the Maven client `mvn` is not installed (apt-get install maven)")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strata-mvn-") as tmp:
        (Path(tmp) / "pom.xml").write_text(pom)
        cmd = [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(Path(tmp) / "pom.xml"),
            "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
            f"-DoutputDirectory={dest}",
            f"-DincludeScope={include_scope}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        names = ", ".join(a.coords for a in artifacts)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise FetchError(f"could not fetch {names} from Maven Central (is the registry reachable?):\n{tail}")
    marker.write_text("\n".join(a.coords for a in artifacts) + "\n")
    return sorted(p for p in dest.iterdir() if not p.name.startswith("."))
