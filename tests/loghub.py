"""Accuracy of the record pipeline on the Loghub 2k samples (header fields and pattern grouping).

    python -m tests.loghub            # prints the per-system table (markdown)

The samples are read from ``<repo>/../shared/datasets/loghub-2k`` or ``$STRATA_DATASETS/loghub-2k``
and never copied into the repository (their licence asks for a citation of the Loghub paper).

Grouping accuracy is Loghub's: a line counts as correct when the set of lines sharing its
predicted pattern is exactly the set sharing its ground-truth ``EventId``. The prediction is the
``pattern_id`` each line's cluster has once the whole sample has streamed through one
:class:`RecordPipeline` with the default configuration.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.records.config import PipelineConfig
from core.records.normalize import normalize_level
from core.records.pipeline import RecordPipeline
from schemas.record import Record
from schemas.rejection import Rejected

REPO_ROOT = Path(__file__).resolve().parents[1]


def datasets_dir() -> Path:
    root = os.environ.get("STRATA_DATASETS")
    base = Path(root) if root else REPO_ROOT.parent / "shared" / "datasets"
    return base / "loghub-2k"


Row = dict[str, str]


def _ts(fmt: str, cut: int = 0) -> Callable[[Record], str]:
    def render(r: Record) -> str:
        text = r.timestamp.strftime(fmt)
        return text[:-cut] if cut else text

    return render


def _syslog_ts(r: Record) -> str:
    return f"{r.timestamp:%b} {r.timestamp.day} {r.timestamp:%H:%M:%S}"


@dataclass(frozen=True)
class System:
    """How one Loghub system maps to the record: its format, and each compared header field as
    (name, expected value from the CSV row, actual value from the record)."""

    fmt: str
    expected_time: Callable[[Row], str]
    actual_time: Callable[[Record], str]
    level: str | None = "Level"  # CSV column holding the level, if any
    component: str | None = "Component"
    component_field: str = "component"  # record attribute, or "service" / "host"


SYSTEMS: dict[str, System] = {
    "Android": System("android", lambda r: f"{r['Date']} {r['Time']}", _ts("%m-%d %H:%M:%S.%f", 3)),
    "Apache": System("auto", lambda r: r["Time"], _ts("%a %b %d %H:%M:%S %Y"), component=None),
    "BGL": System("bgl", lambda r: r["Time"], _ts("%Y-%m-%d-%H.%M.%S.%f")),
    "HDFS": System("hdfs", lambda r: f"{r['Date']} {r['Time']}", _ts("%y%m%d %H%M%S")),
    "Hadoop": System("hadoop", lambda r: f"{r['Date']} {r['Time']}", _ts("%Y-%m-%d %H:%M:%S,%f", 3)),
    # Loghub's "Level" column for Linux is the host name, and OpenSSH's "Component" is too.
    "Linux": System(
        "linux",
        lambda r: f"{r['Month']} {int(r['Date'])} {r['Time']}",
        _syslog_ts,
        level=None,
        component="Component",
        component_field="service",
    ),
    "OpenSSH": System(
        "openssh",
        lambda r: f"{r['Date']} {int(r['Day'])} {r['Time']}",
        _syslog_ts,
        level=None,
        component="Component",
        component_field="host",
    ),
    "OpenStack": System("openstack", lambda r: f"{r['Date']} {r['Time']}", _ts("%Y-%m-%d %H:%M:%S.%f", 3)),
    "Spark": System("spark", lambda r: f"{r['Date']} {r['Time']}", _ts("%y/%m/%d %H:%M:%S")),
    "Windows": System("windows_cbs", lambda r: f"{r['Date']} {r['Time']}", _ts("%Y-%m-%d %H:%M:%S")),
    "Zookeeper": System("zookeeper", lambda r: f"{r['Date']} {r['Time']}", _ts("%Y-%m-%d %H:%M:%S,%f", 3)),
}


@dataclass(frozen=True)
class Score:
    system: str
    lines: int
    rejected: int
    time_ok: float
    level_ok: float | None
    component_ok: float | None
    grouping: float


def grouping_accuracy(truth: list[str], predicted: list[str]) -> float:
    by_truth: dict[str, set[int]] = defaultdict(set)
    by_pred: dict[str, set[int]] = defaultdict(set)
    for i, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        by_truth[t].add(i)
        by_pred[p].add(i)
    correct = sum(1 for i, p in enumerate(predicted) if by_pred[p] == by_truth[truth[i]])
    return correct / len(truth) if truth else 0.0


def _component(system: System, row: Row, record: Record) -> tuple[str, str]:
    assert system.component is not None
    expected = row[system.component]
    if system.component_field == "service":
        return expected.lower(), record.service
    if system.component_field == "host":
        return expected.lower(), record.host
    actual = record.attributes.get("component", "")
    if ":" in expected:
        # Loghub splits Zookeeper's "QuorumPeer[myid=1]/0:0:0:...:2181:FastLeaderElection" at the
        # first colon; the class name after the last one is the component.
        expected = expected.rsplit(":", 1)[-1]
    return expected, actual


def evaluate(name: str, config: PipelineConfig | None = None, patterns: bool = True) -> Score:
    """One system's score; ``patterns=False`` gives the pipeline no hint of the format (auto
    detection and header reading only), as for a system nobody described."""
    system = SYSTEMS[name]
    folder = datasets_dir() / name
    with open(folder / f"{name}_2k.log_structured.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(folder / f"{name}_2k.log", encoding="utf-8", errors="replace", newline="") as f:
        lines = [line.rstrip("\r\n") for line in f]
    lines = [line for line in lines if line.strip()]
    assert len(lines) == len(rows), f"{name}: {len(lines)} lines but {len(rows)} rows"
    pipeline = RecordPipeline(config or PipelineConfig())
    arrival = datetime(2025, 1, 1, tzinfo=UTC)
    records: list[Record | None] = []
    for line in lines:
        service = None if system.component_field == "service" else name.lower()
        result = pipeline.process_line(
            line, tenant="loghub", service=service, received_at=arrival, fmt=system.fmt if patterns else None
        )
        records.append(None if isinstance(result, Rejected) else result)
    miner = pipeline.miner("loghub")
    time_ok = level_ok = comp_ok = 0
    truth: list[str] = []
    predicted: list[str] = []
    for i, (row, rec) in enumerate(zip(rows, records, strict=True)):
        truth.append(row["EventId"])
        if rec is None:
            predicted.append(f"rejected-{i}")
            continue
        time_ok += system.expected_time(row) == system.actual_time(rec)
        if system.level:
            level_ok += normalize_level(row[system.level]) == rec.level
        if system.component:
            expected, actual = _component(system, row, rec)
            comp_ok += expected == actual
        cluster = miner.match(rec.message)
        predicted.append(cluster.pattern_id if cluster is not None else f"unmatched-{i}")
    n = len(rows)
    return Score(
        system=name,
        lines=n,
        rejected=sum(1 for r in records if r is None),
        time_ok=time_ok / n,
        level_ok=level_ok / n if system.level else None,
        component_ok=comp_ok / n if system.component else None,
        grouping=grouping_accuracy(truth, predicted),
    )


def evaluate_all(config: PipelineConfig | None = None, patterns: bool = True) -> list[Score]:
    return [evaluate(name, config, patterns) for name in SYSTEMS if (datasets_dir() / name).is_dir()]


def markdown_table(scores: list[Score]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    out = [
        "| system | lines | rejected | time | level | component | grouping accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        out.append(
            f"| {s.system} | {s.lines} | {s.rejected} | {pct(s.time_ok)} | {pct(s.level_ok)} | "
            f"{pct(s.component_ok)} | {s.grouping:.3f} |"
        )
    if scores:
        mean = sum(s.grouping for s in scores) / len(scores)
        time_ok = sum(s.time_ok for s in scores) / len(scores)
        out.append(f"| **mean** | | | **{time_ok:.3f}** | | | **{mean:.3f}** |")
    return "\n".join(out)


if __name__ == "__main__":
    print("With the per-system patterns (`--format NAME`):\n")
    print(markdown_table(evaluate_all()))
    print("\nWithout them (auto-detection and header reading only):\n")
    print(markdown_table(evaluate_all(patterns=False)))
