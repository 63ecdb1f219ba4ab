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
