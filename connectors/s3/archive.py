"""Reading the cold tier: DuckDB SQL over the Parquet archive, scanned by pyarrow from S3.

pyarrow reads S3 (through boto3, with read-ahead of whole small files): the files of a search are
listed only under the tenant's ``dt=`` (and ``hour=``) partitions of its time slice, scanned with
the time filter pushed into the Parquet reader, and handed to DuckDB as an Arrow stream. The query
AST becomes SQL with every user value a bound parameter; words are matched by the same Python
splitter as :func:`core.query.matches` (a DuckDB function), behind a cheap ``contains`` check.
For SQL of a user's own over the archive, DuckDB reads S3 itself: see :mod:`connectors.s3.sql`.

DuckDB takes Arrow data through the PyCapsule interface, which pyarrow 11 (PyFlink's pin) lacks:
:class:`ArrowStream` exports a pyarrow reader through the C stream interface it does have.
"""

from __future__ import annotations

import ctypes
import io
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from connectors.s3.compaction import not_found, visible_paths
from core.compaction import parse_summary, single_group, summary_prefix
from core.query import (
    And,
    Exists,
    MatchAll,
    Node,
    Not,
    Or,
    Prefix,
    Term,
    Text,
    TextPrefix,
    TierCounts,
    TierPage,
    TierQuery,
    attribute_key,
    conjuncts,
    leaves,
    words,
)
from schemas.projections import archive_arrow_schema, arrow_schema
from schemas.record import FIELDS, FIELDS_BY_NAME, Kind, Level, Record, from_micros, micros

_LIST_THREADS = 8
# Beyond this many days a range is listed with one recursive listing of the tenant's prefix.
_PER_DAY_LISTING_MAX = 62


# -- the Arrow C stream, as a PyCapsule DuckDB accepts ---------------------------------------------


class _CStream(ctypes.Structure):
    _fields_ = [  # the layout of struct ArrowArrayStream
        ("get_schema", ctypes.c_void_p),
        ("get_next", ctypes.c_void_p),
        ("get_last_error", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


_RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# The destructor takes the capsule as a raw pointer: as a py_object ctypes would touch the
# reference count of an object that is being freed.
_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_CAPSULE_NAME = ctypes.create_string_buffer(b"arrow_array_stream")
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _DESTRUCTOR]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]


@_DESTRUCTOR
def _release_capsule(capsule: int) -> None:
    ptr = _capsule_pointer(capsule, _CAPSULE_NAME)
    if ptr:
        stream = _CStream.from_address(ptr)
        if stream.release:  # not consumed: release it, as the PyCapsule protocol asks
            _RELEASE(stream.release)(ptr)
        _libc.free(ptr)


class ArrowStream:
    """A pyarrow ``RecordBatchReader`` as an object with ``__arrow_c_stream__`` (read once)."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader = reader

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        size = ctypes.sizeof(_CStream)
        ptr = _libc.malloc(size)
        if not ptr:
            raise MemoryError("cannot allocate an Arrow stream")
        ctypes.memset(ptr, 0, size)
        self.reader._export_to_c(ptr)
        return _capsule_new(ptr, _CAPSULE_NAME, _release_capsule)


# -- words, for DuckDB ------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _needle(raw: str) -> tuple[str, ...]:
    return tuple(words(raw))


def _udf_phrase(message: str, raw: str) -> bool:
    needle = _needle(raw)
    hay = words(message)
    n = len(needle)
    return any(tuple(hay[i : i + n]) == needle for i in range(len(hay) - n + 1))


def _udf_prefix(message: str, prefix: str) -> bool:
    return any(w.startswith(prefix) for w in words(message))


# -- SQL -------------------------------------------------------------------------------------------


def _ident(name: str) -> str:
    if name not in FIELDS_BY_NAME:
        raise ValueError(f"not a record field: {name!r}")
    return f'"{name}"'


_SIMPLE_WORD = re.compile(r"^[a-z0-9]+$")
# Which characters join two letters, or two digits, into one word (core.query.words, ASCII part).
_JOINERS = {"letter": (".:'", "a-z"), "digit": (".,;'", "0-9")}
_REGEX_SQL = 'regexp_matches(lower("message"), ?)'


def _word_regex(word: str, *, prefix: bool) -> str | None:
    """An RE2 pattern finding ``word`` (or a word starting with it) as a whole word of an ASCII
    message, lower-cased, exactly as :func:`core.query.words` splits it; None when the word is
    not plain letters and digits (the Python function then decides)."""
    if not _SIMPLE_WORD.match(word):
        return None
    first = "digit" if word[0].isdigit() else "letter"
    joiners, kind = _JOINERS[first]
    j = re.escape(joiners)
    # before: the start, a character that never joins, or a joiner not preceded by the same kind
    before = f"(?:^|[^a-z0-9_{j}]|(?:^|[^{kind}])[{j}])"
    if prefix:
        return before + word
    last = "digit" if word[-1].isdigit() else "letter"
    joiners, kind = _JOINERS[last]
    j = re.escape(joiners)
    after = f"(?:$|[^a-z0-9_{j}]|[{j}](?:$|[^{kind}]))"
    return before + word + after


def _ascii_or(*, fast_sql: str, slow_sql: str) -> str:
    """The regex on ASCII messages (most of them, and DuckDB runs it vectorised), the Python word
    splitter on the others. Params: the regex, then the slow path's."""
    return f'CASE WHEN strlen("message") = length("message") THEN {fast_sql} ELSE {slow_sql} END'


def compile_sql(node: Node, params: list[Any]) -> str:
    """A DuckDB boolean expression for ``node``; values are appended to ``params`` in order.

    Every leaf is wrapped in ``coalesce(..., false)`` so that a missing value is false, not NULL,
    and NOT of it is true, as in :func:`core.query.matches`.
    """
    if isinstance(node, MatchAll):
        return "TRUE"
    if isinstance(node, And):
        return "(" + " AND ".join(compile_sql(c, params) for c in node.children) + ")"
    if isinstance(node, Or):
        if not node.children:
            return "FALSE"
        return "(" + " OR ".join(compile_sql(c, params) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"(NOT {compile_sql(node.child, params)})"
    if isinstance(node, Text):
        fast = _word_regex(node.words[0], prefix=False) if len(node.words) == 1 else None
        params.append(node.raw)
        slow = 'strata_phrase("message", ?)'
        if fast is None:
            return f"coalesce({slow}, false)"
        params.insert(len(params) - 1, fast)
        return f"coalesce({_ascii_or(fast_sql=_REGEX_SQL, slow_sql=slow)}, false)"
    if isinstance(node, TextPrefix):
        fast = _word_regex(node.prefix, prefix=True)
        params.append(node.prefix)
        slow = 'strata_prefix("message", ?)'
        if fast is None:
            return f"coalesce({slow}, false)"
        params.insert(len(params) - 1, fast)
        return f"coalesce({_ascii_or(fast_sql=_REGEX_SQL, slow_sql=slow)}, false)"
    key = attribute_key(node.field)
    if key is not None:
        params.append(key)
        column = '"attributes"[?]'
    else:
        column = _ident(node.field)
    kind = FIELDS_BY_NAME[node.field].kind if key is None else Kind.KEYWORD
    if isinstance(node, Exists):
        if kind is Kind.STRING_LIST:
            return f"coalesce(len({column}) > 0, false)"
        return f"({column} IS NOT NULL)"
    params.append(node.value)
    if isinstance(node, Term):
        if kind is Kind.STRING_LIST:
            return f"coalesce(list_contains({column}, ?), false)"
        return f"coalesce({column} = ?, false)"
    if isinstance(node, Prefix):
        if kind is Kind.STRING_LIST:
            return f"coalesce(len(list_filter({column}, lambda x: starts_with(x, ?))) > 0, false)"
        return f"coalesce(starts_with({column}, ?), false)"
    raise TypeError(f"not a query node: {node!r}")


_TS_FIELDS = [f.name for f in FIELDS if f.kind is Kind.TIMESTAMP]
# Timestamps leave DuckDB as epoch microseconds: exact, and no time zone library in between.
_SELECT = ", ".join(
    f'epoch_us("{f.name}") AS "{f.name}"' if f.kind is Kind.TIMESTAMP else f'"{f.name}"' for f in FIELDS
)
_NAMES = [f.name for f in FIELDS]
_TS, _ID = _NAMES.index("timestamp"), _NAMES.index("log_id")


def _row_order(row: tuple[Any, ...]) -> tuple[int, str]:
    return int(row[_TS]), str(row[_ID])


# Row counts of archive files by path, read from their footers (see ColdArchive._footer_rows).
_FOOTER_ROWS: dict[str, int] = {}
_FOOTER_LOCK = threading.Lock()
_FOOTER_CACHE_MAX = 200_000
_FOOTER_THREADS = 16
# The bytes fetched from a file's end for its footer: a compacted hour's footer is a few KB.
_FOOTER_TAIL = 64 * 1024


def forget_footers() -> None:
    """Drop the remembered footer row counts (a benchmark measures a fresh process with it)."""
    with _FOOTER_LOCK:
        _FOOTER_ROWS.clear()


def _row_to_record(row: tuple[Any, ...]) -> Record:
    kwargs: dict[str, Any] = {}
    for name, value in zip(_NAMES, row, strict=False):
        spec = FIELDS_BY_NAME[name]
        if spec.kind is Kind.TIMESTAMP:
            value = from_micros(int(value))
        elif spec.kind in (Kind.STRING_MAP, Kind.COUNT_MAP):
            value = dict(value or {})
        elif spec.kind is Kind.STRING_LIST:
            value = list(value or [])
        kwargs[name] = value
    kwargs["level"] = Level(kwargs["level"])
    return Record(**kwargs)


_MAP_TYPES = {
    f.name: arrow_schema().field(f.name).type for f in FIELDS if f.kind in (Kind.STRING_MAP, Kind.COUNT_MAP)
}


def _maps_from_json(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """The archive's JSON-text map columns as Arrow maps, so queries see the record's own types."""
    names = [n for n in reader.schema.names if n in _MAP_TYPES]
    if not names:
        return reader
    schema = reader.schema
    for name in names:
        schema = schema.set(schema.get_field_index(name), pa.field(name, _MAP_TYPES[name]))

    def batches() -> Any:
        for batch in reader:
            columns = list(batch.columns)
            for name in names:
                i = batch.schema.get_field_index(name)
                values = [
                    None if v is None else list(orjson.loads(v).items()) for v in columns[i].to_pylist()
                ]
                columns[i] = pa.array(values, type=_MAP_TYPES[name])
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _columns_for(ast: Node, extra: tuple[str, ...]) -> list[str]:
    needed = {"tenant", "timestamp", *extra}
    for leaf in leaves(ast):
        if isinstance(leaf, Text | TextPrefix):
            needed.add("message")
        else:
            needed.add("attributes" if attribute_key(leaf.field) is not None else leaf.field)
    return [f.name for f in FIELDS if f.name in needed]


def _partition_span(dirs: Sequence[str]) -> tuple[int, int] | None:
    """``[start_us, end_us)`` of the partition named by ``dt=…`` (and ``hour=…``) path parts: the
    archive partitions by event time, so every record of the partition's files lies within it."""
    values = dict(p.split("=", 1) for p in dirs if "=" in p)
    try:
        start = datetime.strptime(f"{values['dt']} {values.get('hour', '00')}", "%Y-%m-%d %H").replace(
            tzinfo=UTC
        )
    except (KeyError, ValueError):
        return None
    span = timedelta(hours=1) if "hour" in values else timedelta(days=1)
    return micros(start), micros(start + span)


def _bounds(q: TierQuery) -> dict[str, tuple[Any, Any]]:
    """Inclusive (low, high) bounds every match of ``q`` has on plain columns: its time range,
    and the value of each ``field:value`` term on a keyword column that the whole query requires."""
    out: dict[str, tuple[Any, Any]] = {"timestamp": (q.start_us, q.end_us - 1)}
    for node in conjuncts(q.ast):
        if (
            isinstance(node, Term)
            and attribute_key(node.field) is None
            and FIELDS_BY_NAME[node.field].kind is Kind.KEYWORD
            and isinstance(node.value, str)
        ):
            out[node.field] = (node.value, node.value)
    return out


def _row_groups(meta: pq.FileMetaData, q: TierQuery) -> list[int]:
    """The row groups of a file that can hold a match of ``q``, by their column statistics: a
    compacted hour is sorted by service then time, so a service's rows sit in few row groups."""
    bounds = _bounds(q)
    index = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    keep = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for name, (low, high) in bounds.items():
            i = index.get(name)
            stats = group.column(i).statistics if i is not None else None
            if stats is None or not stats.has_min_max:
                continue
            lo, hi = stats.min, stats.max
            if name == "timestamp":
                if not isinstance(lo, datetime) or not isinstance(hi, datetime):
                    continue
                # naive in the file: UTC, as the archive writes it
                lo = micros(lo.replace(tzinfo=lo.tzinfo or UTC))
                hi = micros(hi.replace(tzinfo=hi.tzinfo or UTC))
            elif not isinstance(lo, str) or not isinstance(hi, str):
                continue
            if hi < low or lo > high:
                break
        else:
            keep.append(g)
    return keep


class _RangeReader(io.RawIOBase):
    """A seekable S3 object read with ranged GETs, so Parquet reads only footers and the columns
    a query needs."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self.client, self.bucket, self.key, self.size, self.pos = client, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        if self.pos >= self.size or len(buffer) == 0:
            return 0
        end = min(self.pos + len(buffer), self.size) - 1
        body = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.pos}-{end}")[
            "Body"
        ]
        data = body.read()
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


class _Upload(io.BytesIO):
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key

    def close(self) -> None:
        if not self.closed:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.getvalue())
        super().close()


class _Prefetch:
    """Whole objects fetched ahead, in the order a scan will open them, a bounded number at a time:
    an archive search reads many small hourly files, where one GET each, in parallel, beats a
    footer-then-columns sequence of ranged reads per file."""

    def __init__(self, client: Any, paths: list[str], window: int = 16, threads: int = 8) -> None:
        self.client = client
        self.paths = paths
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cold-fetch")
        self.futures: dict[str, Future[bytes]] = {}
        self.next = 0
        self.lock = threading.Lock()
        for _ in range(window):
            self._submit()

    def _fetch(self, path: str) -> bytes:
        bucket, _, key = path.partition("/")
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def _submit(self) -> None:
        with self.lock:
            if self.next < len(self.paths):
                path = self.paths[self.next]
                self.next += 1
                self.futures[path] = self.pool.submit(self._fetch, path)

    def take(self, path: str) -> bytes | None:
        with self.lock:
            future = self.futures.pop(path, None)
        if future is None:
            return None
        self._submit()
        return future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Boto3Handler(pafs.FileSystemHandler):
    """pyarrow's filesystem interface over boto3.

    pyarrow 11's bundled AWS SDK signs object keys containing ``=`` (every Hive partition path) in a
    way some S3 servers, s3proxy among them, reject; boto3 signs them as every server accepts.
    """

    def __init__(
        self, client: Any, sizes: dict[str, int] | None = None, prefetch: _Prefetch | None = None
    ) -> None:
        self.client = client
        # object sizes from listings, so opening a listed file needs no HEAD request
        self.sizes: dict[str, int] = {} if sizes is None else sizes
        self.prefetch = prefetch

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, _, key = path.strip("/").partition("/")
        return bucket, key

    def get_type_name(self) -> str:
        return "s3-boto3"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return isinstance(other, Boto3Handler) and other.client is self.client

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        from botocore.exceptions import ClientError

        out = []
        for path in paths:
            bucket, key = self._split(path)
            try:
                head = self.client.head_object(Bucket=bucket, Key=key)
                out.append(pafs.FileInfo(path, pafs.FileType.File, size=int(head["ContentLength"])))
                continue
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            listing = self.client.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
            kind = pafs.FileType.Directory if listing.get("KeyCount", 0) else pafs.FileType.NotFound
            out.append(pafs.FileInfo(path, kind))
        return out

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        bucket, key = self._split(selector.base_dir)
        prefix = key.rstrip("/") + "/" if key else ""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if not selector.recursive:
            kwargs["Delimiter"] = "/"
        out: list[pafs.FileInfo] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                path = f"{bucket}/{obj['Key']}"
                self.sizes[path] = int(obj["Size"])
                out.append(pafs.FileInfo(path, pafs.FileType.File, size=int(obj["Size"])))
            for common in page.get("CommonPrefixes", []):
                out.append(pafs.FileInfo(f"{bucket}/{common['Prefix'].rstrip('/')}", pafs.FileType.Directory))
        if not out and not selector.allow_not_found:
            raise FileNotFoundError(selector.base_dir)
        return out

    def open_input_file(self, path: str) -> pa.NativeFile:
        data = self.prefetch.take(path) if self.prefetch is not None else None
        if data is not None:
            return pa.BufferReader(data)
        bucket, key = self._split(path)
        size = self.sizes.get(path)
        if size is None:
            size = int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        return pa.PythonFile(
            io.BufferedReader(_RangeReader(self.client, bucket, key, size), 1 << 20), mode="r"
        )

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        bucket, key = self._split(path)
        return pa.PythonFile(_Upload(self.client, bucket, key), mode="w")

    def delete_dir(self, path: str) -> None:
        bucket, key = self._split(path)
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=key.rstrip("/") + "/"
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys})

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.delete_dir(path)

    def delete_file(self, path: str) -> None:
        bucket, key = self._split(path)
        self.client.delete_object(Bucket=bucket, Key=key)

    def create_dir(self, path: str, recursive: bool) -> None:
        pass  # S3 has no directories

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("refusing to empty a whole bucket")

    def move(self, src: str, dest: str) -> None:
        raise NotImplementedError

    def copy_file(self, src: str, dest: str) -> None:
        raise NotImplementedError

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        raise NotImplementedError


def s3_filesystem(
    endpoint_url: str, access_key: str, secret_key: str, region: str, ca_file: str = ""
) -> pafs.FileSystem:
    """A pyarrow filesystem for the archive (see :class:`Boto3Handler` for why it is boto3's);
    ``ca_file`` verifies a private HTTPS endpoint (empty: the system's CAs)."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 1},
            max_pool_connections=32,
            s3={"addressing_style": "path"},
        ),
        verify=ca_file or None,
    )
    return pafs.PyFileSystem(Boto3Handler(client))


class ColdArchive:
    """Searches, aggregations and lookups over ``<bucket>/<prefix>/tenant=…/dt=…/hour=…/`` files."""

    def __init__(self, filesystem: pafs.FileSystem, bucket: str, prefix: str = "logs") -> None:
        self.fs = filesystem
        self.root = f"{bucket}/{prefix.strip('/')}"
        # The files as the ingest job writes them: map-valued fields are JSON text (see
        # schemas.projections.archive_arrow_schema); they become Arrow maps again before DuckDB.
        self.schema = archive_arrow_schema()

    # -- which files -----------------------------------------------------------------------------

    def files(self, tenant: str, start_us: int, end_us: int) -> list[str]:
        """Parquet files of the tenant whose dt/hour partition overlaps ``[start_us, end_us)``."""
        if start_us >= end_us:
            return []
        first = from_micros(start_us).replace(minute=0, second=0, microsecond=0)
        last = from_micros(end_us - 1)
        days = []
        day = first.replace(hour=0)
        while day <= last:
            days.append(day)
            day += timedelta(days=1)
        base = f"{self.root}/tenant={tenant}"
        if len(days) > _PER_DAY_LISTING_MAX:
            infos = self._list(base)
        else:
            with ThreadPoolExecutor(max_workers=_LIST_THREADS) as pool:
                infos = [
                    i
                    for part in pool.map(lambda d: self._list(f"{base}/dt={d:%Y-%m-%d}"), days)
                    for i in part
                ]
        out = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(base) + 1 :]
            parts = rel.split("/")
            name = parts[-1]
            if name.startswith((".", "_")):
                continue  # in-progress files, commit markers (part files: .parquet, or no suffix if older)
            span = _partition_span(parts[:-1])
            if span is not None and span[1] > micros(first) and span[0] <= micros(last):
                out.append(info.path)
        # an hour being compacted holds its records twice for a while: each is read once
        return visible_paths(self.fs, out)

    def _list(self, path: str) -> list[pafs.FileInfo]:
        infos: list[pafs.FileInfo] = self.fs.get_file_info(
            pafs.FileSelector(path, recursive=True, allow_not_found=True)
        )
        return infos

    def _reader(self, files: list[str], q: TierQuery, columns: list[str]) -> tuple[pa.RecordBatchReader, Any]:
        """A scan of ``files`` in order (time filter applied per batch) and what to close after.

        Each file is read whole (prefetched ahead, in parallel) and decoded from memory in this
        thread. pyarrow's dataset scanner over a Python filesystem is not used: its I/O threads call
        back into Python while a scan holds one of their locks, and the thread that started the
        scan holds the interpreter lock while it waits for that lock, so both wait forever.
        """
        prefetch = None
        handler = getattr(self.fs, "handler", None)
        if isinstance(handler, Boto3Handler):
            prefetch = _Prefetch(handler.client, files)
        schema = pa.schema([self.schema.field(name) for name in columns])
        ts_type = self.schema.field("timestamp").type
        start = pa.scalar(from_micros(q.start_us), ts_type)
        end = pa.scalar(from_micros(q.end_us), ts_type)

        def batches() -> Iterator[pa.RecordBatch]:
            for path in files:
                # the partition values come from each path, as hive partitioning would read them
                values = dict(p.split("=", 1) for p in path[len(self.root) + 1 :].split("/")[:-1] if "=" in p)
                data = prefetch.take(path) if prefetch is not None else None
                source = pa.BufferReader(data) if data is not None else self.fs.open_input_file(path)
                parquet = pq.ParquetFile(source)
                present = set(parquet.schema_arrow.names)
                in_file = [name for name in columns if name in present]
                groups = _row_groups(parquet.metadata, q)
                if not groups:
                    continue
                for batch in parquet.iter_batches(batch_size=64 * 1024, columns=in_file, row_groups=groups):
                    table = pa.Table.from_batches([batch])
                    if "timestamp" in present:
                        stamps = table.column("timestamp").cast(ts_type)
                        keep = pc.and_(pc.greater_equal(stamps, start), pc.less(stamps, end))
                        table = table.filter(keep)
                    if not table.num_rows:
                        continue
                    arrays = []
                    for field in schema:
                        if field.name in present:
                            arrays.append(table.column(field.name).cast(field.type))
                        else:
                            value = values.get(field.name)
                            arrays.append(pa.array([value] * table.num_rows, field.type))
                    yield from pa.Table.from_arrays(arrays, schema=schema).to_batches()

        return _maps_from_json(pa.RecordBatchReader.from_batches(schema, batches())), prefetch

    def _query(
        self, q: TierQuery, files: list[str], columns: list[str], sql: str, params: list[Any]
    ) -> list[Any]:
        """``sql`` over ``files``; once more over a fresh listing of the same partitions if one of
        them is gone: a compaction deleted what it replaced after this search listed the files (it
        waits ``archive_compact_delete_after_s`` first, so only a slow search gets here)."""
        try:
            return self._run(self._reader(files, q, columns), sql, params)
        except Exception as exc:
            if not not_found(exc):
                raise
        dirs = {path.rpartition("/")[0] for path in files}
        fresh = [p for p in self.files(q.tenant, q.start_us, q.end_us) if p.rpartition("/")[0] in dirs]
        return self._run(self._reader(fresh, q, columns), sql, params)

    def _run(self, reader: tuple[pa.RecordBatchReader, Any], sql: str, params: list[Any]) -> list[Any]:
        stream, prefetch = reader
        con = self._connect(stream)
        try:
            rows: list[Any] = con.execute(sql, params).fetchall()
            return rows
        finally:
            con.close()
            if prefetch is not None:
                prefetch.close()

    def _connect(self, reader: pa.RecordBatchReader) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"threads": 2})
        con.execute("SET TimeZone = 'UTC'")
        con.create_function("strata_phrase", _udf_phrase, [str, str], bool, side_effects=False)
        con.create_function("strata_prefix", _udf_prefix, [str, str], bool, side_effects=False)
        con.register("cold", ArrowStream(reader))
        return con

    def _where(self, q: TierQuery, params: list[Any]) -> str:
        params.extend([q.tenant, from_micros(q.start_us), from_micros(q.end_us)])
        cond = '"tenant" = ? AND "timestamp" >= ? AND "timestamp" < ?'
        return f"{cond} AND {compile_sql(q.ast, params)}"

    # -- queries ---------------------------------------------------------------------------------

    def search(self, q: TierQuery) -> TierPage:
        """A page of ``q``, reading the range's partitions newest first (oldest first for ``asc``)
        and stopping once no partition left can hold a row that belongs on the page.

        The total is exact when every partition was read, or, for a query matching every record,
        from the row counts in the Parquet footers of the partitions wholly inside the range;
        otherwise it is the number of matches in the partitions read, a lower bound
        (``total_exact`` false), as OpenSearch's ``track_total_hits`` gives it.
        """
        files = self.files(q.tenant, q.start_us, q.end_us)
        if not files:
            return TierPage([], 0, True, [])
        desc = q.order == "desc"
        parts = self._partitions(files)
        if q.after is not None:
            # a partition wholly on the far side of the cursor holds nothing for this page
            a = q.after.ts_us
            parts = [p for p in parts if (p[0] <= a if desc else p[1] > a)]
        parts.sort(key=lambda p: -p[1] if desc else p[0])
        rows: list[tuple[Any, ...]] = []
        counted = 0  # matches (before the cursor) in the partitions read
        counts_known = True
        done = 0
        batch = 1
        while done < len(parts):
            chunk = parts[done : done + batch]
            done += len(chunk)
            batch *= 2  # a few DuckDB runs for a rare match over a long range, one for a common one
            found = self._page(q, [path for p in chunk for path in p[2]])
            if found:
                counted += int(found[0][-1])
            elif q.after is not None:
                counts_known = False  # the window count came with no row: unknown, not zero
            rows = sorted(rows + [r[:-1] for r in found], key=_row_order, reverse=desc)[: q.limit]
            if len(rows) >= q.limit and done < len(parts):
                worst = rows[-1][_TS]
                rest = parts[done:]
                if desc and worst >= max(p[1] for p in rest):
                    break
                if not desc and worst < min(p[0] for p in rest):
                    break
        records = [_row_to_record(row) for row in rows]
        complete = done == len(parts) and counts_known
        pruned = len(parts) != len(self._partitions(files))
        if isinstance(q.ast, MatchAll):
            return TierPage(records, self._count_all(q, files), True, [])
        if complete and not pruned:
            return TierPage(records, counted, True, [])
        if not records and q.after is not None:
            return TierPage([], None, False, [])
        return TierPage(records, counted, False, [])

    def _partitions(self, files: list[str]) -> list[tuple[int, int, list[str]]]:
        """``files`` grouped by partition: (start µs, end µs, paths)."""
        groups: dict[tuple[int, int], list[str]] = {}
        for path in files:
            span = _partition_span(path[len(self.root) + 1 :].split("/")[:-1])
            if span is not None:
                groups.setdefault(span, []).append(path)
        return [(s, e, paths) for (s, e), paths in groups.items()]

    def _page(self, q: TierQuery, files: list[str]) -> list[Any]:
        """Up to ``q.limit`` rows of ``files`` after the cursor, in order, each ending with the
        number of matches in ``files`` before the cursor applies."""
        params: list[Any] = []
        where = self._where(q, params)
        direction = "DESC" if q.order == "desc" else "ASC"
        cursor = "TRUE"
        if q.after is not None:
            op = "<" if q.order == "desc" else ">"
            cursor = f'("timestamp" {op} ? OR ("timestamp" = ? AND "log_id" {op} ?))'
            params.extend([q.after.ts_us, q.after.ts_us, q.after.log_id])
        params.append(q.limit)
        sql = (
            f"SELECT * FROM (SELECT {_SELECT}, count(*) OVER () AS __total FROM cold WHERE {where}) "
            f'WHERE {cursor} ORDER BY "timestamp" {direction}, "log_id" {direction} LIMIT ?'
        )
        return self._query(q, files, [f.name for f in FIELDS], sql, params)

    def _count_all(self, q: TierQuery, files: list[str]) -> int:
        """How many records the tenant has in ``[q.start_us, q.end_us)``: footer row counts for the
        partitions wholly inside the range, a count of the rows in range for the others."""
        try:
            return self._count_files(q, files)
        except Exception as exc:
            if not not_found(exc):
                raise
        # a compaction deleted what it replaced after the listing: count what is there now
        return self._count_files(q, self.files(q.tenant, q.start_us, q.end_us))

    def _count_files(self, q: TierQuery, files: list[str]) -> int:
        inside: list[list[str]] = []
        edges: list[str] = []
        for start, end, paths in self._partitions(files):
            if q.start_us <= start and end <= q.end_us:
                inside.append(paths)
            else:
                edges.extend(paths)
        # an hour that is one complete compaction group: its count is in the summaries' listing
        groups = {tuple(paths): single_group(p.rpartition("/")[2] for p in paths) for paths in inside}
        summaries = self._summaries(q.tenant, [p[0] for p in inside if groups[tuple(p)] is not None])
        total = 0
        unknown: list[str] = []
        for paths in inside:
            group = groups[tuple(paths)]
            if group is not None and group in summaries:
                total += summaries[group]
            else:
                unknown.extend(paths)
        total += sum(self._footer_rows(unknown))
        if edges:
            params: list[Any] = []
            sql = f"SELECT count(*) FROM cold WHERE {self._where(q, params)}"
            total += int(self._query(q, edges, ["tenant", "timestamp"], sql, params)[0][0])
        return total

    def _summaries(self, tenant: str, paths: list[str]) -> dict[str, int]:
        """Record counts by group id from the names of the summaries of the days of ``paths``
        (one listing per day, in parallel, as :meth:`files` lists the data)."""
        days = sorted({d for p in paths for d in p.split("/") if d.startswith("dt=")})
        if not days:
            return {}
        bucket, _, prefix = self.root.partition("/")
        base = f"{bucket}/{summary_prefix(prefix)}/tenant={tenant}"
        if len(days) > _PER_DAY_LISTING_MAX:
            infos = self._list(base)
        else:
            with ThreadPoolExecutor(max_workers=_LIST_THREADS) as pool:
                infos = [i for part in pool.map(lambda d: self._list(f"{base}/{d}"), days) for i in part]
        out = {}
        for info in infos:
            parsed = parse_summary(info.path.rpartition("/")[2])
            if parsed is not None:
                out[parsed[0]] = parsed[1]
        return out

    def _footer_rows(self, paths: list[str]) -> list[int]:
        """Each file's row count from its Parquet footer, fetched with one ranged GET per file (a
        file's footer is small; a larger one is read in full), in parallel, and remembered: archive
        files never change (compaction writes new names and deletes the old)."""
        handler = getattr(self.fs, "handler", None)

        def rows(path: str) -> int:
            cached = _FOOTER_ROWS.get(path)
            if cached is not None:
                return cached
            meta = None
            if isinstance(handler, Boto3Handler):
                bucket, _, key = path.partition("/")
                tail = handler.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{_FOOTER_TAIL}")
                data = tail["Body"].read()
                length = int.from_bytes(data[-8:-4], "little")
                if length + 8 <= len(data):
                    meta = pq.read_metadata(pa.BufferReader(data))
            if meta is None:
                meta = pq.read_metadata(self.fs.open_input_file(path))
            with _FOOTER_LOCK:
                if len(_FOOTER_ROWS) >= _FOOTER_CACHE_MAX:
                    _FOOTER_ROWS.clear()
                _FOOTER_ROWS[path] = int(meta.num_rows)
            return int(meta.num_rows)

        if not paths:
            return []
        with ThreadPoolExecutor(max_workers=_FOOTER_THREADS, thread_name_prefix="cold-footer") as pool:
            return list(pool.map(rows, paths))

    def histogram(self, q: TierQuery, interval_us: int) -> TierCounts[tuple[int, str]]:
        files = self.files(q.tenant, q.start_us, q.end_us)
        counts: Counter[tuple[int, str]] = Counter()
        if not files:
            return TierCounts(counts)
        params: list[Any] = [interval_us]
        where = self._where(q, params)
        sql = (
            'SELECT ts - ts % ? AS bucket, "level", count(*) FROM '
            f'(SELECT epoch_us("timestamp") AS ts, "level" FROM cold WHERE {where}) GROUP BY ALL'
        )
        for bucket, level, n in self._query(q, files, _columns_for(q.ast, ("level",)), sql, params):
            counts[(int(bucket), str(level))] += int(n)
        return TierCounts(counts)

    def top(self, q: TierQuery, field: str, size: int) -> TierCounts[str]:
        files = self.files(q.tenant, q.start_us, q.end_us)
        if not files:
            return TierCounts(Counter())
        column = _ident(field)
        params: list[Any] = []
        where = self._where(q, params)
        params.append(size)
        sql = (
            f"SELECT {column}, count(*) AS n FROM cold WHERE {where} AND {column} IS NOT NULL "
            f"GROUP BY ALL ORDER BY n DESC, {column} LIMIT ?"
        )
        rows = self._query(q, files, _columns_for(q.ast, (field,)), sql, params)
        return TierCounts(Counter({str(k): int(n) for k, n in rows}))

    def get(self, tenant: str, log_ids: Sequence[str], start_us: int, end_us: int) -> list[Record]:
        """A scan of the range's files for the ids: the archive has no index to look them up in."""
        wanted = list(dict.fromkeys(log_ids))
        if not wanted:
            return []
        ast = (
            Or(tuple(Term("log_id", log_id) for log_id in wanted))
            if len(wanted) > 1
            else Term("log_id", wanted[0])
        )
        return self.search(TierQuery(tenant, ast, start_us, end_us, "desc", len(wanted))).records
