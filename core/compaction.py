"""Compaction of the archive's closed hours: which files a reader sees, which hours to merge, and
what a run may delete. Pure planning; the S3 side lives in :mod:`connectors.s3.compaction`.

The ingest job adds a small Parquet file to every open hour at every checkpoint of every subtask.
Once an hour is closed (it ended more than a grace ago) its files are merged into a *group* of at
most a few files, sorted by service then timestamp. Every file of a group carries the same
:class:`GroupMeta` in its Parquet key-value metadata: the group's id, the names of all its files,
and the names of the files it replaces. The swap is then safe for readers without any rename
(S3 has none):

- a group is *complete* when every file it names is present; a complete group hides the files it
  replaces, an incomplete one (a run that died while writing it) is itself hidden;
- the replaced files are deleted only after the group is complete, and only ``delete_after_s``
  later, so a reader that listed the hour just before the swap still finds what it listed;
- a run that dies anywhere leaves either the old files visible (group incomplete) or the new ones
  (group complete); the next run deletes what is left over and finishes the work.

    visible(files, metas)            # the names a reader of one hour reads
    plan_hour(files, metas, ...)     # what to merge, into how many files, or None
    cleanup(files, metas, ...)       # what a run deletes now
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

# Compacted files still start with "part-", so every glob that finds the ingest job's files
# (``part-*``, ``*.parquet``) finds them too.
COMPACTED_PREFIX = "part-compacted-"
_OUTPUT_RE = re.compile(r"^part-compacted-([0-9a-f]{32})-(\d+)-of-(\d+)\.parquet$")
META_KEY = "strata.compaction"
# An hour is merged into at most this many files, however large it is.
MAX_OUTPUT_FILES = 4


class CompactionError(ValueError):
    """Metadata of a compacted file that cannot be read; the message says which."""


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One object of an hour's folder, as a listing shows it."""

    name: str  # the file name within tenant=…/dt=…/hour=…/
    size: int
    modified: datetime


@dataclass(frozen=True, slots=True)
class GroupMeta:
    """What every file of one compaction group says about the group."""

    group: str
    outputs: tuple[str, ...]
    replaces: tuple[str, ...]
    records: int = 0

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "group": self.group,
                "outputs": list(self.outputs),
                "replaces": list(self.replaces),
                "records": self.records,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> GroupMeta:
        try:
            raw = orjson.loads(text)
            return cls(
                str(raw["group"]),
                tuple(str(n) for n in raw["outputs"]),
                tuple(str(n) for n in raw["replaces"]),
                int(raw.get("records", 0)),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CompactionError(f"not compaction metadata: {text[:200]!r} ({exc})") from exc


def output_name(group: str, k: int, n: int) -> str:
    """The name of file ``k`` (1-based) of ``n`` in ``group``."""
    return f"{COMPACTED_PREFIX}{group}-{k}-of-{n}.parquet"


def parse_output(name: str) -> tuple[str, int, int] | None:
    """(group, k, n) when ``name`` is a compacted file's name, else None."""
    m = _OUTPUT_RE.match(name)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def is_data_file(name: str) -> bool:
    """Whether a reader reads this name at all: part files, not in-progress files or markers."""
    return not name.startswith((".", "_"))


def groups_present(names: Iterable[str]) -> dict[str, list[str]]:
    """The compacted files of an hour by group id."""
    out: dict[str, list[str]] = {}
    for name in names:
        parsed = parse_output(name)
        if parsed is not None:
            out.setdefault(parsed[0], []).append(name)
    return out


def needs_metadata(names: Iterable[str]) -> bool:
    """Whether a reader must read a compacted file's metadata to know what the hour holds: not
    when the hour is plain part files only, nor when it is one complete group and nothing else
    (the steady state after compaction)."""
    data = [n for n in names if is_data_file(n)]
    groups = groups_present(data)
    if not groups:
        return False
    if len(groups) > 1 or len(data) != sum(len(v) for v in groups.values()):
        return True
    (files,) = groups.values()
    parsed = parse_output(files[0])
    return parsed is None or len(files) != parsed[2]


def complete_groups(names: Iterable[str], metas: Mapping[str, GroupMeta]) -> dict[str, GroupMeta]:
    """The groups (by id) whose every file is present; ``metas`` maps group id to its metadata
    (read from any one of its files)."""
    present = set(names)
    out = {}
    for group in groups_present(present):
        meta = metas.get(group)
        if meta is not None and set(meta.outputs) <= present:
            out[group] = meta
    return out


def visible(names: Iterable[str], metas: Mapping[str, GroupMeta]) -> list[str]:
    """The files of one hour a reader reads: every data file except those a complete group
    replaces and those of an incomplete group. Each record is then read exactly once."""
    data = sorted(n for n in names if is_data_file(n))
    if not needs_metadata(data):
        return data
    complete = complete_groups(data, metas)
    hidden: set[str] = set()
    for meta in complete.values():
        hidden.update(meta.replaces)
    for group, files in groups_present(data).items():
        if group not in complete:
            hidden.update(files)
    return [n for n in data if n not in hidden]


def hour_start(dt: str, hour: str) -> datetime | None:
    """The start of partition ``dt=…/hour=…`` (UTC), or None when the names are not a date/hour."""
    try:
        return datetime.strptime(f"{dt} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None


def hour_closed(dt: str, hour: str, now: datetime, grace_s: float) -> bool:
    """Whether the hour ended more than ``grace_s`` before ``now``: the ingest job writes no more
    files into it except for late records (a later run merges those in)."""
    start = hour_start(dt, hour)
    return start is not None and start + timedelta(hours=1, seconds=grace_s) <= now


def output_count(input_bytes: int, target_bytes: int, max_files: int = MAX_OUTPUT_FILES) -> int:
    """How many files an hour of ``input_bytes`` is merged into: about ``target_bytes`` each,
    at least one, at most ``max_files``."""
    if target_bytes <= 0:
        raise ValueError("the target file size must be positive")
    return max(1, min(max_files, math.ceil(input_bytes / target_bytes)))


@dataclass(frozen=True, slots=True)
class HourPlan:
    """The merge of one hour: read ``inputs``, write ``outputs`` (``n`` files) naming ``replaces``."""

    inputs: tuple[str, ...]
    replaces: tuple[str, ...]
    input_bytes: int
    outputs: int
    stale: tuple[str, ...] = field(default=())  # files of incomplete groups, deleted first


def plan_hour(
    files: Iterable[ArchiveFile],
    metas: Mapping[str, GroupMeta],
    *,
    target_bytes: int,
    max_files: int = MAX_OUTPUT_FILES,
) -> HourPlan | None:
    """What merging this (closed) hour means, or None when there is nothing to merge: the hour is
    already compacted and no part file arrived since.

    The new group replaces every file it reads and, transitively, every file those replaced that
    is still present (awaiting deletion): otherwise deleting an old group would make its own
    sources visible again."""
    by_name = {f.name: f for f in files if is_data_file(f.name)}
    names = list(by_name)
    inputs = visible(names, metas)
    if not any(parse_output(n) is None for n in inputs):
        return None
    complete = complete_groups(names, metas)
    replaces = set(inputs)
    for meta in complete.values():
        if set(meta.outputs) & replaces:
            replaces.update(n for n in meta.replaces if n in by_name)
    stale = [n for g, fs in groups_present(names).items() if g not in complete for n in fs]
    size = sum(by_name[n].size for n in inputs)
    return HourPlan(
        tuple(inputs),
        tuple(sorted(replaces)),
        size,
        output_count(size, target_bytes, max_files),
        tuple(sorted(stale)),
    )


def cleanup(
    files: Iterable[ArchiveFile],
    metas: Mapping[str, GroupMeta],
    now: datetime,
    *,
    delete_after_s: float,
) -> list[str]:
    """What a run deletes in an hour now: files of incomplete groups (a run that died while
    writing; the caller holds the compaction lock, so no run is writing one now), and files a
    complete group replaces, once the group has been complete for ``delete_after_s``."""
    by_name = {f.name: f for f in files if is_data_file(f.name)}
    names = list(by_name)
    complete = complete_groups(names, metas)
    out: set[str] = set()
    for group, fs in groups_present(names).items():
        if group not in complete:
            out.update(fs)
    for meta in complete.values():
        done = max(by_name[n].modified for n in meta.outputs)
        if done + timedelta(seconds=delete_after_s) <= now:
            out.update(n for n in meta.replaces if n in by_name)
    return sorted(out)


# -- hour summaries --------------------------------------------------------------------------------
# Beside the archive, under ``<prefix>-summaries/tenant=…/dt=…/hour=…/``, compaction leaves one small
# object per group it writes, named ``<group>-<records>.json`` and holding the group's counts by
# service and level. A reader that sees an hour as exactly that complete group knows the hour's
# record count from a listing of the summaries, without opening a data file. They live outside the
# data prefix so that nothing reading the data (DuckDB, Trino, Athena globs) meets them.
SUMMARY_SUFFIX = "-summaries"
_SUMMARY_RE = re.compile(r"^([0-9a-f]{32})-(\d+)\.json$")


def summary_prefix(prefix: str) -> str:
    """The prefix holding the summaries of the archive under ``prefix``."""
    return prefix.strip("/") + SUMMARY_SUFFIX


def summary_name(group: str, records: int) -> str:
    return f"{group}-{records}.json"


def parse_summary(name: str) -> tuple[str, int] | None:
    """(group, records) when ``name`` is a summary's name, else None."""
    m = _SUMMARY_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def single_group(names: Iterable[str]) -> str | None:
    """The group id when the data files ``names`` are exactly one complete group, else None."""
    data = [n for n in names if is_data_file(n)]
    groups = groups_present(data)
    if len(groups) != 1 or len(data) != len(next(iter(groups.values()))):
        return None
    group, members = next(iter(groups.items()))
    parsed = parse_output(members[0])
    return group if parsed is not None and parsed[2] == len(members) else None
