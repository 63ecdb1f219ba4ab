"""Compaction of the archive on S3: each closed tenant-hour's small part files merged into a few
large ones, and the file lists readers use so that no record is read twice or missed meanwhile.

The planning (which files a reader sees, what to merge, what to delete) is :mod:`core.compaction`;
this module lists, reads, writes and deletes objects. A merged hour is sorted by service, then
timestamp, deduplicated by ``log_id`` and written by polars' Parquet writer, which writes column
statistics and page indexes (pyarrow 11, PyFlink's pin, writes no page index).

    compactor = ArchiveCompactor.from_settings(settings)
    report = compactor.run()            # merge every closed hour, delete what is replaced
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from core.compaction import (
    META_KEY,
    ArchiveFile,
    CompactionError,
    GroupMeta,
    HourPlan,
    cleanup,
    groups_present,
    hour_closed,
    needs_metadata,
    output_name,
    plan_hour,
    summary_name,
    summary_prefix,
    visible,
)
from schemas.projections import ARCHIVE_PARTITIONS, archive_arrow_schema

if TYPE_CHECKING:
    import polars as pl

    from infra.settings import Settings

log = logging.getLogger("strata.compaction")

HourKey = tuple[str, str, str]  # tenant, dt, hour
_FETCH_THREADS = 8
# Rows sorted by these, so each file and row group covers few services and a narrow time span.
SORT_KEYS = ("service", "timestamp", "log_id")


def file_schema() -> pa.Schema:
    """The schema of the archive's files as the ingest job writes them: the record's fields less
    the path partitions, every one nullable (Flink's Parquet writer marks them all optional)."""
    out = []
    for f in archive_arrow_schema():
        if f.name in ARCHIVE_PARTITIONS:
            continue
        t = f.type
        if pa.types.is_list(t):
            t = pa.list_(pa.field("element", t.value_type))
        out.append(pa.field(f.name, t, nullable=True))
    return pa.schema(out)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones (files of older versions) null."""
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def not_found(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: DuckDB re-raises errors of an Arrow stream as its own)
    says an S3 object does not exist."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FileNotFoundError):
            return True
        response = getattr(seen, "response", None)  # botocore's ClientError
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        text = str(seen)
        if code in ("404", "NoSuchKey", "NotFound") or "NoSuchKey" in text or "(404)" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def read_group_meta(fs: pafs.FileSystem, path: str) -> GroupMeta:
    """The compaction metadata in the footer of the compacted file at ``path`` (ranged reads)."""
    with fs.open_input_file(path) as f:
        kv = pq.read_metadata(f).metadata or {}
    raw = kv.get(META_KEY.encode())
    if raw is None:
        raise CompactionError(f"{path} is named as a compacted file but has no {META_KEY} metadata")
    return GroupMeta.from_json(raw)


def metas_for(fs: pafs.FileSystem, directory: str, names: Iterable[str]) -> dict[str, GroupMeta]:
    """The metadata of every compaction group in one hour's folder, read from one file each."""
    out = {}
    for group, files in groups_present(names).items():
        try:
            out[group] = read_group_meta(fs, f"{directory}/{sorted(files)[0]}")
        except Exception as exc:
            if not not_found(exc):
                raise
            # deleted since the listing: a newer group replaced it, and without its metadata
            # the group counts as incomplete, so it is not read
            continue
    return out


def visible_paths(fs: pafs.FileSystem, paths: Iterable[str]) -> list[str]:
    """Of these file paths (``…/hour=HH/name``), the ones a reader reads: each record once, however
    far a compaction of their hours has gone. Reads a footer only for an hour in the middle of
    a swap or with part files newer than its compaction."""
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        directory, _, name = path.rpartition("/")
        by_dir.setdefault(directory, []).append(name)
    out = []
    for directory, names in by_dir.items():
        metas = metas_for(fs, directory, names) if needs_metadata(names) else {}
        out += [f"{directory}/{n}" for n in visible(names, metas)]
    return sorted(out)


def merge_rows(table: pa.Table) -> pl.DataFrame:
    """One hour's rows, each ``log_id`` once (its first copy), sorted by :data:`SORT_KEYS`."""
    import polars as pl

    loaded = pl.from_arrow(table)
    assert isinstance(loaded, pl.DataFrame)
    return loaded.unique(subset=["log_id"], keep="first", maintain_order=True).sort(list(SORT_KEYS))


def encode_group(frame: pl.DataFrame, meta: GroupMeta, row_group_rows: int) -> list[bytes]:
    """The files of group ``meta``: ``frame``'s rows cut in order into ``len(meta.outputs)`` even
    slices, each zstd Parquet with column statistics, page indexes (polars writes both) and the
    group's metadata. Row groups of ``row_group_rows`` let engines split and skip within a file."""
    n = len(meta.outputs)
    per_file = -(-frame.height // n) if frame.height else 0
    out = []
    for k in range(n):
        buf = io.BytesIO()
        frame.slice(k * per_file, per_file).write_parquet(
            buf,
            compression="zstd",
            statistics=True,
            row_group_size=row_group_rows,
            metadata={META_KEY: meta.to_json()},
        )
        out.append(buf.getvalue())
    return out


def hour_summary(frame: pl.DataFrame, meta: GroupMeta) -> tuple[str, bytes]:
    """The summary object of group ``meta`` (see :data:`core.compaction.SUMMARY_SUFFIX`): its name,
    which carries the record count a reader needs, and its counts by service and level."""
    import polars as pl

    counts = frame.group_by(["service", "level"]).agg(pl.len().alias("records")).sort(["service", "level"])
    body = {"group": meta.group, "records": frame.height, "by_service_level": counts.rows()}
    return summary_name(meta.group, frame.height), orjson.dumps(body)


@dataclass
class HourResult:
    """One merged hour, as the log and ``strata archive compact`` report it."""

    tenant: str
    dt: str
    hour: str
    files_in: int
    files_out: int
    bytes_in: int
    bytes_out: int = 0
    records_in: int = 0
    records_out: int = 0
    cpu_s: float = 0.0

    def line(self) -> str:
        return (
            f"tenant={self.tenant} dt={self.dt} hour={self.hour}: {self.files_in} files "
            f"({self.bytes_in:,} B, {self.records_in:,} records) -> {self.files_out} files "
            f"({self.bytes_out:,} B, {self.records_out:,} records)"
        )


@dataclass
class CompactionReport:
    hours: list[HourResult] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # keys deleted (replaced, or left by a crash)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False


class ArchiveCompactor:
    """Compacts ``s3://<bucket>/<prefix>/tenant=…/dt=…/hour=…/``.

    Only one run at a time may act on an archive (the caller holds the compaction lock): a run
    treats a group it finds incomplete as left by a run that died, and deletes it.
    ``after_step`` is called with the name of each step done (tests end a run there, as a kill
    would, by raising something that is not an ``Exception``).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        *,
        grace_s: float = 3600.0,
        target_bytes: int = 128 << 20,
        row_group_rows: int = 122_880,
        delete_after_s: float = 60.0,
        after_step: Callable[[str], None] | None = None,
    ) -> None:
        from connectors.s3.archive import Boto3Handler

        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.grace_s = grace_s
        self.target_bytes = target_bytes
        self.row_group_rows = row_group_rows
        self.delete_after_s = delete_after_s
        self.after_step = after_step
        self.fs = pafs.PyFileSystem(Boto3Handler(client))
        self.schema = file_schema()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ArchiveCompactor:
        from connectors.s3.client import s3_client

        return cls(
            s3_client(settings),
            settings.s3_bucket,
            settings.archive_prefix,
            grace_s=settings.archive_compact_grace_s,
            target_bytes=settings.archive_compact_target_bytes,
            row_group_rows=settings.archive_compact_row_group_rows,
            delete_after_s=settings.archive_compact_delete_after_s,
            **kwargs,
        )

    def _step(self, name: str) -> None:
        if self.after_step is not None:
            self.after_step(name)

    def _dir(self, key: HourKey) -> str:
        tenant, dt, hour = key
        return f"{self.prefix}/tenant={tenant}/dt={dt}/hour={hour}"

    # -- listing ---------------------------------------------------------------------------------

    def hours(self, tenant: str | None = None) -> dict[HourKey, list[ArchiveFile]]:
        """Every hour folder under the prefix (one tenant's with ``tenant``) with its files."""
        root = f"{self.prefix}/" if tenant is None else f"{self.prefix}/tenant={tenant}/"
        out: dict[HourKey, list[ArchiveFile]] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=root):
            for obj in page.get("Contents", []):
                parts = obj["Key"][len(self.prefix) + 1 :].split("/")
                if len(parts) != 4:
                    continue
                values = dict(p.split("=", 1) for p in parts[:3] if "=" in p)
                if set(values) != {"tenant", "dt", "hour"}:
                    continue
                key = (values["tenant"], values["dt"], values["hour"])
                out.setdefault(key, []).append(ArchiveFile(parts[3], int(obj["Size"]), obj["LastModified"]))
        return out

    def _metas(self, key: HourKey, files: list[ArchiveFile]) -> dict[str, GroupMeta]:
        return metas_for(self.fs, f"{self.bucket}/{self._dir(key)}", [f.name for f in files])

    # -- a run -----------------------------------------------------------------------------------

    def run(
        self, *, tenant: str | None = None, dry_run: bool = False, now: datetime | None = None
    ) -> CompactionReport:
        """Merge every closed hour that has part files, then delete what the groups replace.

        The files a new group replaces are deleted ``delete_after_s`` after it is complete, by this
        run (it waits) or, if it dies first, by the next one.
        """
        report = CompactionReport(dry_run=dry_run)
        now = now or datetime.now(UTC)
        written: list[HourKey] = []
        for key, files in sorted(self.hours(tenant).items()):
            try:
                names = [f.name for f in files]
                if not needs_metadata(names) and groups_present(names):
                    continue  # one complete group and nothing else: compacted, nothing to delete
                metas = self._metas(key, files) if groups_present(names) else {}
                doomed = cleanup(files, metas, now, delete_after_s=self.delete_after_s)
                if doomed and not dry_run:
                    self._delete(key, doomed)
                    self._step("cleaned")
                report.deleted += [f"{self._dir(key)}/{n}" for n in doomed]
                gone = set(doomed)
                files = [f for f in files if f.name not in gone]
                metas = {g: m for g, m in metas.items() if not set(m.outputs) & gone}
                if not hour_closed(key[1], key[2], now, self.grace_s):
                    continue
                plan = plan_hour(files, metas, target_bytes=self.target_bytes)
                if plan is None:
                    continue
                if dry_run:
                    report.hours.append(HourResult(*key, len(plan.inputs), plan.outputs, plan.input_bytes))
                    continue
                result = self._merge(key, plan)
                report.hours.append(result)
                written.append(key)
                log.info("compacted %s", result.line())
            except Exception as exc:
                report.errors.append(f"{self._dir(key)}: {type(exc).__name__}: {exc}")
                log.exception("compaction of %s failed; the next run tries again", self._dir(key))
        if written and not dry_run:
            self._finish(written, report)
        return report

    def _finish(self, written: list[HourKey], report: CompactionReport) -> None:
        """Wait out the grace readers get, then delete what the new groups replace."""
        time.sleep(max(self.delete_after_s, 0.0))
        later = datetime.now(UTC) + timedelta(seconds=1)  # S3 modification times are whole seconds
        for key in written:
            files = self.hours_of(key)
            metas = self._metas(key, files)
            doomed = cleanup(files, metas, later, delete_after_s=self.delete_after_s)
            self._delete(key, doomed)
            report.deleted += [f"{self._dir(key)}/{n}" for n in doomed]
        self._step("deleted")

    def hours_of(self, key: HourKey) -> list[ArchiveFile]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._dir(key) + "/"
        ):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[1]
                out.append(ArchiveFile(name, int(obj["Size"]), obj["LastModified"]))
        return out

    def _delete(self, key: HourKey, names: list[str]) -> None:
        keys = [f"{self._dir(key)}/{n}" for n in names]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        for k in keys:
            log.info("compaction deleted %s", k)

    def _fetch(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def _merge(self, key: HourKey, plan: HourPlan) -> HourResult:
        """Read the plan's inputs, write its group (file by file), and say what it did."""
        started = time.process_time()
        directory = self._dir(key)
        with ThreadPoolExecutor(max_workers=_FETCH_THREADS, thread_name_prefix="compact-fetch") as pool:
            blobs = list(pool.map(self._fetch, [f"{directory}/{n}" for n in plan.inputs]))
        tables = [conform(pq.read_table(pa.BufferReader(b)), self.schema) for b in blobs]
        table = pa.concat_tables(tables) if tables else self.schema.empty_table()
        records_in = table.num_rows
        frame = merge_rows(table)
        n = plan.outputs
        group = uuid.uuid4().hex
        names = tuple(output_name(group, k, n) for k in range(1, n + 1))
        meta = GroupMeta(group, names, plan.replaces, frame.height)
        encoded = encode_group(frame, meta, self.row_group_rows)
        bytes_out = 0
        cpu_s = time.process_time() - started
        self._step("merged")
        for name, data in zip(names, encoded, strict=True):
            self.client.put_object(Bucket=self.bucket, Key=f"{directory}/{name}", Body=data)
            bytes_out += len(data)
            self._step("wrote-output")
        # after the group is complete: a summary never names a group a reader might not see
        name, body = hour_summary(frame, meta)
        tenant, dt, hour = key
        summary_key = f"{summary_prefix(self.prefix)}/tenant={tenant}/dt={dt}/hour={hour}/{name}"
        self.client.put_object(Bucket=self.bucket, Key=summary_key, Body=body)
        self._step("written")
        return HourResult(
            *key,
            files_in=len(plan.inputs),
            files_out=n,
            bytes_in=plan.input_bytes,
            bytes_out=bytes_out,
            records_in=records_in,
            records_out=frame.height,
            cpu_s=cpu_s,
        )


# Any constant works; it only has to be the same for every process that compacts this archive.
_COMPACT_LOCK_ID = 0x57C0AC7


class CompactionBusy(RuntimeError):
    """Another process is compacting the archive now."""


def compact(settings: Settings, *, tenant: str | None = None, dry_run: bool = False) -> CompactionReport:
    """One run over the archive of ``settings``, under the PostgreSQL advisory lock every Strata
    process takes to compact (API workers, replicas, ``strata archive compact``): a run deletes
    the incomplete groups it finds, which is right only if no other run is writing one.
    :class:`CompactionBusy` when another process holds the lock."""
    import psycopg

    compactor = ArchiveCompactor.from_settings(settings)
    if dry_run:
        return compactor.run(tenant=tenant, dry_run=True)
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_COMPACT_LOCK_ID,)).fetchone()
        if not row or not row[0]:
            raise CompactionBusy("another process is compacting the archive; try again later")
        try:
            return compactor.run(tenant=tenant)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_COMPACT_LOCK_ID,))


async def scheduled(settings: Settings, stop: Any) -> None:
    """Compact every ``archive_compact_interval_s`` in a worker thread, one process at a time."""
    import asyncio

    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), settings.archive_compact_interval_s)
            return
        except TimeoutError:
            pass
        try:
            report = await asyncio.to_thread(compact, settings)
        except CompactionBusy:
            continue
        except Exception:
            log.exception(
                "archive compaction failed; it runs again in %s s", settings.archive_compact_interval_s
            )
            continue
        records = sum(h.records_out for h in report.hours)
        log.info(
            "archive compaction: %d hours, %d files in, %d out, %d records, %d files deleted",
            len(report.hours),
            sum(h.files_in for h in report.hours),
            sum(h.files_out for h in report.hours),
            records,
            len(report.deleted),
        )
        for error in report.errors:
            log.error("archive compaction: %s", error)
