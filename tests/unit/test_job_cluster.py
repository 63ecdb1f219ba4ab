"""`strata job submit | list | cancel | savepoint` without a cluster: the `flink run` command line,
the JobID it reports, and the REST calls (answered by an in-process transport)."""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.cli.main import main
from infra.settings import Settings
from jobs import cluster
from jobs.cluster import ClusterError, FlinkRest, flink_run_command, package_zip

pytestmark = pytest.mark.unit

JOB_ID = "0123456789abcdef0123456789abcdef"


def _after(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _options(command: list[str]) -> dict[str, str]:
    return dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "-D")


def test_package_holds_the_packages_at_its_root(tmp_path: Path) -> None:
    names = zipfile.ZipFile(package_zip(tmp_path / "strata.zip")).namelist()
    for module in (
        "jobs/ingest/main.py",
        "core/records/pipeline.py",
        "schemas/record.py",
        "infra/settings.py",
        "connectors/cassandra/flink_sink.py",
    ):
        assert module in names
    assert not any("__pycache__" in n or n.startswith(("tests/", "api/", ".")) for n in names)


def test_package_holds_every_module_the_entry_modules_import(tmp_path: Path) -> None:
    # The cluster's Python workers import the job from the zip alone. A fresh interpreter, so only
    # what the entry modules (and their graphs) import counts, not what other tests loaded here.
    import subprocess
    import sys

    from jobs.cluster import ENTRY_MODULES, REPO_ROOT

    imports = [m for module in ENTRY_MODULES.values() for m in (module, module.rsplit(".", 1)[0] + ".job")]
    packages = sorted({p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"})
    script = (
        "import importlib, sys\n"
        f"for m in {imports!r}: importlib.import_module(m)\n"
        "for name, m in list(sys.modules.items()):\n"
        f"    if name.split('.')[0] in {packages!r} and getattr(m, '__file__', None): print(m.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    ours = {Path(f).resolve().relative_to(REPO_ROOT).as_posix() for f in out.stdout.split()}
    names = set(zipfile.ZipFile(package_zip(tmp_path / "strata.zip")).namelist())
    assert {"jobs/ingest/job.py", "connectors/cassandra/flink_sink.py"} <= ours
    assert ours <= names, sorted(ours - names)


def _ingest_run(jobmanager: str = "h:1", package: Path = Path("p.zip"), **options: Any) -> list[str]:
    """The ingest job's ``flink run`` command under the default settings."""
    return flink_run_command(Settings(), "ingest", jobmanager=jobmanager, package=package, **options)


def test_run_command_ships_code_settings_and_arguments() -> None:
    command = _ingest_run(
        jobmanager="http://flink.internal:8081/",
        package=Path("/tmp/x/strata.zip"),
        program_args=["--start", "earliest", "--bounded"],
        parallelism=3,
        restore="s3://b/savepoints/savepoint-1",
        python="/opt/py/bin/python",
        checkpoint_name="ingest-g1",
    )
    assert command[command.index("run") + 1] == "--detached"
    assert _after(command, "-m") == "flink.internal:8081"
    assert _after(command, "-p") == "3"
    assert _after(command, "--fromSavepoint") == "s3://b/savepoints/savepoint-1"
    assert _after(command, "-pyexec") == "/opt/py/bin/python"
    assert _after(command, "-pyclientexec") == sys.executable
    assert _after(command, "-pyfs") == "/tmp/x/strata.zip"
    # The job's own arguments come last, after the entry module.
    assert command[-5:] == ["-pym", "jobs.ingest.main", "--start", "earliest", "--bounded"]
    conf = _options(command)
    assert conf["execution.checkpointing.interval"] == "10s"
    assert conf["restart-strategy.type"] == "exponential-delay"
    assert conf["parallelism.default"] == "3"
    assert conf["state.checkpoints.dir"].endswith("/checkpoints/ingest-g1")
    assert not any(k.startswith(("taskmanager.", "jobmanager.")) for k in conf)


def test_checkpoints_can_point_at_shared_storage() -> None:
    command = _ingest_run(checkpoints="s3://bucket/cp/", checkpoint_name="ingest-g")
    assert _options(command)["state.checkpoints.dir"] == "s3://bucket/cp/ingest-g"


def test_cli_submit_passes_arguments_the_entry_module_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from jobs.ingest.main import parse_args

    seen: dict[str, Any] = {}

    def fake_submit(command: list[str], env: dict[str, str], **_: Any) -> str:
        seen["command"], seen["env"] = command, env
        seen["package_existed"] = Path(command[command.index("-pyfs") + 1]).is_file()
        return JOB_ID

    monkeypatch.setattr(cluster, "submit", fake_submit)
    monkeypatch.setenv("STRATA_INGEST_GROUP", "g7")
    # get_settings() is cached per process; another test may have read it already.
    monkeypatch.setattr("infra.cli.job.get_settings", Settings)
    config = tmp_path / "records.yaml"
    config.write_text("services: {}\n")
    argv = ["job", "submit", "ingest", "--jobmanager", "jm:8081", "--from", "earliest", "--bounded"]
    assert main([*argv, "--config", str(config), "-D", "execution.checkpointing.interval=2s"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == JOB_ID
    assert "submitting strata-ingest (g7) to jm:8081" in err
    command = seen["command"]
    args = parse_args(command[command.index("jobs.ingest.main") + 1 :])
    assert (args.start, args.bounded, args.pipeline_config) == ("earliest", True, str(config))
    assert _options(command)["state.checkpoints.dir"].endswith("/checkpoints/ingest-g7")
    assert _options(command)["execution.checkpointing.interval"] == "2s"  # -D wins over flink-conf.yaml
    assert seen["env"]["STRATA_INGEST_GROUP"] == "g7" and seen["env"]["FLINK_PLUGINS_DIR"]
    assert seen["package_existed"]  # made for the submission, removed after it


@pytest.mark.parametrize(("final", "code"), [("FINISHED", 0), ("FAILED", 1)])
def test_cli_submit_wait_follows_the_job_to_its_end(
    rest: Callable[[Handler], FlinkRest],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    final: str,
    code: int,
) -> None:
    states = iter(["RUNNING", "RUNNING", final])
    rest(lambda req: httpx.Response(200, json={"jid": JOB_ID, "state": next(states)}))
    monkeypatch.setattr(cluster, "submit", lambda *a, **k: JOB_ID)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    assert main(["job", "submit", "ingest", "--jobmanager", "jm:8081", "--bounded", "--wait"]) == code
    out, err = capsys.readouterr()
    assert out.strip() == JOB_ID and f"job {JOB_ID} {final}" in err


def test_cli_submit_rejects_a_bad_start_before_running_flink(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "submit", "ingest", "--jobmanager", "jm:1", "--from", "yesterday"]) == 2
    assert "--from 'yesterday'" in capsys.readouterr().err
    assert main(["job", "submit", "ingest", "--jobmanager", "jm:1", "-D", "no-value"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_submit_reads_the_job_id_and_reports_failures() -> None:
    ok = ["sh", "-c", f"echo 'Job has been submitted with JobID {JOB_ID}'"]
    assert cluster.submit(ok, {"PATH": "/usr/bin:/bin"}) == JOB_ID
    with pytest.raises(ClusterError, match=r"exit code 3[\s\S]*Could not connect"):
        cluster.submit(["sh", "-c", "echo 'Could not connect'; exit 3"], {"PATH": "/usr/bin:/bin"})
    with pytest.raises(ClusterError, match="no answer within 1 s"):
        cluster.submit(["sleep", "30"], {"PATH": "/usr/bin:/bin"}, timeout_s=1)


# -- REST ---------------------------------------------------------------------------------------


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def rest(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Handler], FlinkRest]]:
    """A FlinkRest (also the one the CLI makes) whose requests ``handler`` answers."""
    made: list[FlinkRest] = []

    def make(handler: Handler) -> FlinkRest:
        factory = partial(FlinkRest, transport=httpx.MockTransport(handler))
        monkeypatch.setattr(cluster, "FlinkRest", factory)
        made.append(factory("jm:8081"))
        return made[-1]

    yield make
    for r in made:
        r.close()


OVERVIEW = {
    "jobs": [
        {"jid": "a" * 32, "name": "old", "state": "FINISHED", "start-time": 1_000, "duration": 61_000},
        {
            "jid": "b" * 32,
            "name": "strata-ingest (g)",
            "state": "RUNNING",
            "start-time": 2_000,
            "duration": 5,
        },
    ]
}


def test_list_newest_first(rest: Callable[[Handler], FlinkRest], capsys: pytest.CaptureFixture[str]) -> None:
    r = rest(lambda req: httpx.Response(200, json=OVERVIEW))
    assert [j.name for j in r.jobs()] == ["strata-ingest (g)", "old"]
    assert main(["job", "list", "--jobmanager", "jm:8081"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["JOB", "ID", "STATE", "STARTED", "(UTC)", "DURATION", "NAME"]
    assert lines[1].startswith("b" * 32) and lines[1].endswith("strata-ingest (g)")
    assert "1m01s" in lines[2]
    assert main(["job", "list", "--jobmanager", "jm:8081", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first == {
        "id": "b" * 32,
        "name": "strata-ingest (g)",
        "state": "RUNNING",
        "start_ms": 2000,
        "duration_ms": 5,
    }


def test_cancel_and_unknown_job(
    rest: Callable[[Handler], FlinkRest], capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((req.method, str(req.url)))
        if JOB_ID in req.url.path:
            return httpx.Response(202, json={})
        return httpx.Response(404, json={"errors": ["Job could not be found."]})

    rest(handler)
    assert main(["job", "cancel", JOB_ID, "--jobmanager", "jm:8081"]) == 0
    assert calls == [("PATCH", f"http://jm:8081/jobs/{JOB_ID}?mode=cancel")]
    assert main(["job", "cancel", "f" * 32, "--jobmanager", "jm:8081"]) == 1
    assert f"has no job {'f' * 32}" in capsys.readouterr().err


def test_savepoint_polls_until_done(
    rest: Callable[[Handler], FlinkRest],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls: Iterator[dict[str, Any]] = iter(
        [{"status": {"id": "IN_PROGRESS"}}] * 2
        + [{"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-0123-abc"}}]
    )
    bodies: list[dict[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            bodies.append(json.loads(req.content))
            return httpx.Response(202, json={"request-id": "t1"})
        assert req.url.path == f"/jobs/{JOB_ID}/savepoints/t1"
        return httpx.Response(200, json=next(polls))

    r = rest(handler)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    assert main(["job", "savepoint", JOB_ID, "--jobmanager", "jm:8081", "--dir", "file:///sp"]) == 0
    assert capsys.readouterr().out.strip() == "file:/sp/savepoint-0123-abc"
    assert bodies == [{"cancel-job": False, "target-directory": "file:///sp"}]

    trace = (
        "java.util.concurrent.CompletionException: x\n"
        "Caused by: CheckpointException: Not all required tasks are currently running."
    )
    polls = iter([{"status": {"id": "COMPLETED"}, "operation": {"failure-cause": {"stack-trace": trace}}}])
    with pytest.raises(ClusterError, match="Not all required tasks are currently running"):
        r.savepoint(JOB_ID, None, cancel=True)
    assert bodies[-1] == {"cancel-job": True}


def test_unreachable_jobmanager_says_what_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["job", "list", "--jobmanager", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "no Flink JobManager answers at http://127.0.0.1:1" in err and "STRATA_FLINK_JOBMANAGER" in err
