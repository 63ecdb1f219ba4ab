"""Strata's jobs on a real Flink cluster: submission with ``flink run`` and the JobManager's REST API.

Submitting runs PyFlink's own ``bin/flink run`` in detached mode. Its Python driver process
imports the job's entry module (``jobs.ingest.main``), builds the graph on this machine and ships
it, with the connector jars (``pipeline.jars``, uploaded to the cluster's blob server) and Strata's
Python packages (``-pyfs``, a zip added to the Python workers' path), to the JobManager::

    package = package_zip(tmp / "strata.zip")
    command = flink_run_command(settings, "ingest", jobmanager="flink:8081", package=package)
    job_id = submit(command, submit_environment(settings))
    FlinkRest("flink:8081").savepoint(job_id, "s3://strata-archive/savepoints")

Listing, cancelling and savepoints only need the REST API (``httpx``), no JVM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from infra.settings import REPO_ROOT, Settings

# What the jobs import, shipped with every submission so a cluster's Python workers load this
# checkout's code, not whatever version is installed there. Of infra/ only the settings: the
# local stack and the command line stay behind.
PACKAGES = ("core", "jobs", "schemas", "connectors", "infra/__init__.py", "infra/settings.py")
PACKAGE_ZIP = "strata.zip"

# Entry modules run by `flink run -pym`, per job.
ENTRY_MODULES = {"ingest": "jobs.ingest.main"}

TERMINAL_STATES = frozenset({"FINISHED", "FAILED", "CANCELED", "SUSPENDED"})

_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")


class ClusterError(RuntimeError):
    """The cluster refused or could not be reached; the message says what to do."""


def rest_url(address: str) -> str:
    """``host:port`` or a URL → the JobManager's REST base URL."""
    address = address.strip().rstrip("/")
    return address if "://" in address else f"http://{address}"


def host_port(address: str) -> str:
    """``http://host:port`` or ``host:port`` → ``host:port``, as ``flink run -m`` wants it."""
    return address.strip().rstrip("/").split("://", 1)[-1]


def flink_home() -> Path:
    """The Flink distribution PyFlink ships (``bin/flink``, ``lib``, ``opt``, ``conf``)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


# Cluster-wide settings in flink-conf.yaml that mean nothing to a single job.
_CLUSTER_ONLY_PREFIXES = ("taskmanager.", "jobmanager.")


def submit_configuration(
    settings: Settings, job: str, *, parallelism: int | None = None, checkpoints: str | None = None
) -> dict[str, str]:
    """The job's Flink settings (flink-conf.yaml and Strata's per-job keys) as ``-D`` options.

    ``checkpoints`` (a URI every TaskManager can write, e.g. ``s3://bucket/checkpoints``) replaces
    the default under ``settings.home``, which only a cluster on this machine can reach.
    """
    from jobs.flink import job_configuration

    conf = job_configuration(settings, job, parallelism=parallelism)
    if checkpoints:
        conf["state.checkpoints.dir"] = checkpoints.rstrip("/") + "/" + job
    return {k: v for k, v in conf.items() if not k.startswith(_CLUSTER_ONLY_PREFIXES)}


def package_zip(dest: Path, *, root: Path = REPO_ROOT, packages: Sequence[str] = PACKAGES) -> Path:
    """Strata's Python packages in one zip for ``-pyfs``, at ``dest``.

    A zip, not the package folders: Flink extracts a zip and puts its root on the workers' path,
    so ``import jobs`` works, whereas a folder is put on the path itself (``jobs/`` would hold
    top-level modules ``ingest``, ``records`` …).
    """
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in packages:
            top = root / package
            for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(root).as_posix())
    return dest


def flink_run_command(
    settings: Settings,
    job: str,
    *,
    jobmanager: str,
    package: Path,
    program_args: Sequence[str] = (),
    parallelism: int | None = None,
    checkpoints: str | None = None,
    restore: str | None = None,
    python: str | None = None,
    checkpoint_name: str | None = None,
    flink_options: Mapping[str, str] | None = None,
) -> list[str]:
    """The ``bin/flink run`` command line that submits ``job`` detached to ``jobmanager``, with
    ``package`` (:func:`package_zip`) as its Python files.

    ``python`` is the interpreter the cluster's TaskManagers start Python workers with (it needs
    PyFlink and Strata's dependencies); by default this one, right for a cluster on this machine.
    ``checkpoint_name`` names the job's checkpoint folder (the ingest job keys it by consumer group).
    ``flink_options`` override flink-conf.yaml for this job.
    """
    home = flink_home()
    conf = submit_configuration(
        settings, checkpoint_name or job, parallelism=parallelism, checkpoints=checkpoints
    )
    conf.update(flink_options or {})
    command = ["bash", str(home / "bin" / "flink"), "run", "--detached", "-m", host_port(jobmanager)]
    if parallelism:
        command += ["-p", str(parallelism)]
    if restore:
        command += ["--fromSavepoint", restore]
    for key, value in conf.items():
        command += ["-D", f"{key}={value}"]
    command += [
        "-pyclientexec",
        sys.executable,
        "-pyexec",
        python or sys.executable,
        "-pyfs",
        str(package),
        "-pym",
        ENTRY_MODULES[job],
    ]
    # The job's own arguments follow the module; Flink's parser matches long options by prefix
    # (`--from` would be read as `--fromSavepoint`), so the entry modules avoid such names.
    return [*command, *program_args]


def submit_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of ``flink run``: Strata's settings travel to the job's driver process as is,
    ``STRATA_HOME`` made absolute so the driver finds the connector jars from any folder. The
    client logs to ``<STRATA_HOME>/logs/flink/submit-<pid>/``."""
    from jobs.flink import job_process_env

    env = job_process_env(settings, base)
    env["STRATA_HOME"] = str(settings.home.resolve())
    # The client's log has a fixed name; a folder per submission keeps two from sharing it.
    log_dir = settings.log_dir / "flink" / f"submit-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    env["FLINK_LOG_DIR"] = str(log_dir.resolve())
    return env


def submit(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout_s: float = 600.0,
    echo: TextIO | None = None,
) -> str:
    """Run ``flink run --detached``; return the JobID it reports. Its output is echoed to ``echo``.

    Raises :class:`ClusterError` with the end of the output when the submission fails or no
    JobID appears within ``timeout_s``.
    """
    proc = subprocess.Popen(
        list(command),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def kill() -> None:
        # The client and the Python driver it started share their own session: one signal.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    lines: list[str] = []
    job_id = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo is not None:
                echo.write(line)
                echo.flush()
            found = _JOB_ID.search(line)
            if found:
                job_id = found.group(1)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            kill()
            proc.wait()
    if code != 0 or job_id is None:
        tail = "".join(lines[-40:])
        reason = f"exit code {code}" if code else "no JobID in its output"
        if code == -9:
            reason = f"no answer within {timeout_s:.0f} s"
        where = f" (client log in {env['FLINK_LOG_DIR']})" if env.get("FLINK_LOG_DIR") else ""
        raise ClusterError(f"flink run failed ({reason}){where}:\n{tail}")
    return job_id


# -- the REST API ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSummary:
    """One line of ``GET /jobs/overview``."""

    id: str
    name: str
    state: str
    start_ms: int
    duration_ms: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSummary:
        return cls(
            id=data["jid"],
            name=data["name"],
            state=data["state"],
            start_ms=int(data.get("start-time", -1)),
            duration_ms=int(data.get("duration", -1)),
        )


class FlinkRest:
    """A JobManager's REST API: jobs, cancel, savepoints. Errors become :class:`ClusterError`."""

    def __init__(self, address: str, *, timeout_s: float = 10.0, transport: Any = None) -> None:
        self.base = rest_url(address)
        self._client = httpx.Client(base_url=self.base, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FlinkRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, *, job_id: str | None = None, **kw: Any) -> Any:
        try:
            response = self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ClusterError(
                f"no Flink JobManager answers at {self.base} ({exc}); is the cluster up, "
                "and is --jobmanager (or STRATA_FLINK_JOBMANAGER) its REST address?"
            ) from exc
        if response.status_code == 404 and job_id is not None:
            raise ClusterError(f"the JobManager at {self.base} has no job {job_id}")
        if response.status_code >= 400:
            try:
                errors = response.json().get("errors", [])
            except ValueError:
                errors = [response.text]
            first = str(errors[0]).strip().splitlines()[0] if errors else response.reason_phrase
            raise ClusterError(f"{method} {self.base}{path}: {response.status_code} {first}")
        return response.json() if response.content else None

    def jobs(self) -> list[JobSummary]:
        """Every job the JobManager knows (running and recently ended), newest first."""
        data = self._request("GET", "/jobs/overview")
        jobs = [JobSummary.from_json(j) for j in data.get("jobs", [])]
        return sorted(jobs, key=lambda j: j.start_ms, reverse=True)

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/:id``: state, and each vertex with its status."""
        result: dict[str, Any] = self._request("GET", f"/jobs/{job_id}", job_id=job_id)
        return result

    def cancel(self, job_id: str) -> None:
        self._request("PATCH", f"/jobs/{job_id}", job_id=job_id, params={"mode": "cancel"})

    def trigger_savepoint(self, job_id: str, target_dir: str | None, *, cancel: bool = False) -> str:
        body: dict[str, Any] = {"cancel-job": cancel}
        if target_dir:
            body["target-directory"] = target_dir
        data = self._request("POST", f"/jobs/{job_id}/savepoints", job_id=job_id, json=body)
        return str(data["request-id"])

    def savepoint_status(self, job_id: str, trigger_id: str) -> tuple[bool, str | None, str | None]:
        """(done, location, failure) of a savepoint trigger."""
        data = self._request("GET", f"/jobs/{job_id}/savepoints/{trigger_id}", job_id=job_id)
        if data["status"]["id"] != "COMPLETED":
            return False, None, None
        operation = data.get("operation") or {}
        if "failure-cause" in operation:
            cause = operation["failure-cause"]
            trace = cause.get("stack-trace") or cause.get("class") or str(cause)
            return True, None, _root_cause(str(trace))
        return True, str(operation["location"]), None

    def savepoint(
        self,
        job_id: str,
        target_dir: str | None,
        *,
        cancel: bool = False,
        timeout_s: float = 300.0,
        poll_s: float = 0.5,
    ) -> str:
        """Take a savepoint (and with ``cancel``, then cancel the job); return its location."""
        trigger = self.trigger_savepoint(job_id, target_dir, cancel=cancel)
        deadline = time.monotonic() + timeout_s
        while True:
            done, location, failure = self.savepoint_status(job_id, trigger)
            if done:
                if failure or location is None:
                    raise ClusterError(f"savepoint of {job_id} failed: {failure}")
                return location
            if time.monotonic() > deadline:
                raise ClusterError(f"savepoint of {job_id} not done after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def wait(
        self,
        job_id: str,
        until: Callable[[dict[str, Any]], bool],
        *,
        timeout_s: float,
        poll_s: float = 1.0,
    ) -> dict[str, Any]:
        """Poll ``GET /jobs/:id`` until ``until(details)``; the last details, or ClusterError."""
        deadline = time.monotonic() + timeout_s
        while True:
            details = self.job(job_id)
            if until(details):
                return details
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"job {job_id} still {details.get('state')} after {timeout_s:.0f} s on {self.base}"
                )
            time.sleep(poll_s)


def ended(details: Mapping[str, Any]) -> bool:
    return details.get("state") in TERMINAL_STATES


def all_running(details: Mapping[str, Any]) -> bool:
    """The job and every one of its tasks run: what a savepoint needs."""
    vertices = details.get("vertices", [])
    return (
        details.get("state") == "RUNNING"
        and bool(vertices)
        and all(v.get("status") == "RUNNING" for v in vertices)
    )


def _root_cause(trace: str) -> str:
    """The last ``Caused by:`` line of a Java stack trace, else its first line."""
    causes = [line.strip() for line in trace.splitlines() if line.strip().startswith("Caused by:")]
    return causes[-1] if causes else trace.strip().splitlines()[0] if trace.strip() else trace


def format_jobs(jobs: Sequence[JobSummary]) -> str:
    """A table for ``strata job list``: id, state, start (UTC), duration, name."""
    from datetime import UTC, datetime

    rows = [("JOB ID", "STATE", "STARTED (UTC)", "DURATION", "NAME")]
    for j in jobs:
        started = (
            datetime.fromtimestamp(j.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if j.start_ms > 0
            else "-"
        )
        rows.append((j.id, j.state, started, _duration(j.duration_ms), j.name))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:4])) + "  " + r[4] for r in rows
    )


def _duration(ms: int) -> str:
    if ms < 0:
        return "-"
    s = ms // 1000
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
