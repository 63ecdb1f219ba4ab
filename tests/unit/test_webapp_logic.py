"""The web app's pure logic (api/web/static), run in Node as the browser runs it: ES modules, no DOM."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

STATIC = Path(__file__).resolve().parents[2] / "api" / "web" / "static"


def run(script: str) -> Any:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the web app's modules are checked with it")
    imports = (
        f"import {{ levelList, filled }} from {json.dumps((STATIC / 'pages' / 'dashboards.js').as_uri())};\n"
        f"import {{ describe }} from {json.dumps((STATIC / 'api.js').as_uri())};\n"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", imports + f"console.log(JSON.stringify({script}));"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_minimum_or_maximum_level_becomes_the_list_the_metrics_take() -> None:
    assert run("['>=WARN', '<=info', 'ERROR', '', '>=LOUD'].map(levelList)") == [
        "WARN,ERROR,FATAL",
        "TRACE,DEBUG,INFO",
        "ERROR",
        "",
        ">=LOUD",  # left for the API to refuse by name
    ]


def test_missing_steps_count_zero() -> None:
    assert run("filled([[120, 5], [300, 2]], {from: 60, to: 360, step_s: 60})") == [
        [60, 0],
        [120, 5],
        [180, 0],
        [240, 0],
        [300, 2],
    ]


def test_every_kind_of_api_error_reads_as_one_sentence() -> None:
    assert run(
        "[describe(401, {detail: 'the API key is not valid'}),"
        " describe(400, {detail: {message: 'the query ends after (', position: 12}}),"
        " describe(422, {detail: [{loc: ['body', 'panels', 0, 'kind'], msg: 'Input should be volume'},"
        "                         {loc: ['query', 'limit'], msg: 'too big'}]}),"
        " describe(502, {})]"
    ) == [
        "the API key is not valid",
        "the query ends after (",
        "panels.0.kind: Input should be volume; query.limit: too big",
        "the API answered 502",
    ]
