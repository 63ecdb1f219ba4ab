"""Reading the warm tier: Cassandra partitions of (tenant, service, day), newest first.

A search visits the partitions of its time slice day by day, in its order, the services of a day in
parallel (bounded). Conditions that an index can answer exactly — the service (partition key), and
``field:value`` on a column with a storage-attached index — go into the CQL as bound values; the
whole condition is then checked on every row read with :func:`core.query.matches`, within a
bounded scan that the result reports when it runs out. Nothing the user typed becomes CQL text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from cassandra.cluster import Cluster, PreparedStatement, Session
from cassandra.policies import RoundRobinPolicy
from cassandra.query import SimpleStatement, dict_factory

from core.query import (
    Node,
    Or,
    Term,
    Text,
    TextPrefix,
    TierCounts,
    TierPage,
    TierQuery,
    attribute_key,
    conjuncts,
    leaves,
    matches,
    order_key,
)
from schemas.projections import CQL_SERVICES_SUFFIX, cql_columns, cql_day, from_cql_row
from schemas.record import FIELDS, Kind, Record, from_micros, micros

_COLUMNS = [n for n, _ in cql_columns() if n != "day"]
_SELECT = ", ".join(f'"{c}"' for c in _COLUMNS)
# Columns with a plain SAI index that a `field:value` term can use.
_INDEXABLE = (
    "level",
    "host",
    "trace_id",
    "environment",
    "region",
    "span_id",
    "pattern_id",
    "source_format",
    "log_id",
)
_SERVICES_CACHE_S = 30.0
_log = logging.getLogger(__name__)


def connect(contact_points: list[str], port: int, *, timeout_s: float = 5.0, **connection: Any) -> Session:
    """A session that gives up quickly when Cassandra is unreachable. ``connection``: credentials
    and TLS (:func:`connectors.cassandra.connection.cluster_options`)."""
    cluster = Cluster(
        contact_points,
        port=port,
        connect_timeout=timeout_s,
        control_connection_timeout=timeout_s,
        load_balancing_policy=RoundRobinPolicy(),
        protocol_version=5,
        **connection,
    )
    session = cluster.connect()
    session.row_factory = dict_factory  # WarmSearch reads rows by column name
    session.default_timeout = max(timeout_s, 10.0)
    return session


@dataclass
class _Plan:
    """How one search maps onto partitions and CQL restrictions."""

    services: tuple[str, ...] | None  # None: every service of the tenant on that day
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    residual: bool = False  # some condition is checked only in Python
    impossible: bool = False


@dataclass
class _Budget:
    """Rows a request may read in all; shared by the threads reading partitions."""

    rows: int
    used: int = 0
    exhausted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, n: int) -> bool:
        with self.lock:
            self.used += n
            if self.used > self.rows:
                self.exhausted = True
            return not self.exhausted


@dataclass
class ScanStats:
    """What a reader has read since it was made, for operators and benchmarks: whole rows, column
    rows (a few columns of a row: those a condition on fields checks, or an aggregation counts,
    beside the timestamp and log_id), key rows (log_id lookups without an index: timestamp and
    log_id only), and rows Cassandra counted without sending them (exact totals)."""

    rows: int = 0
    column_rows: int = 0
    key_rows: int = 0
    counted: int = 0


class WarmSearch:
    """Searches, aggregations and lookups over one keyspace's logs table."""

    def __init__(
        self,
        session: Session,
        keyspace: str,
        table: str = "logs",
        *,
        scan_rows: int = 200_000,
        concurrency: int = 16,
    ) -> None:
        self.session = session
        self.keyspace = keyspace
        self.table = table
        self.scan_rows = scan_rows
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="warm")
        self._prepared: dict[str, PreparedStatement] = {}
        self._indexed = self._load_indexes()
        self._partition_keys: tuple[float, dict[tuple[str, str], list[str]]] | None = None
        self._lock = threading.Lock()
        self.stats = ScanStats()

    def _spent(self, rows: int = 0, key_rows: int = 0, counted: int = 0, column_rows: int = 0) -> None:
        with self._lock:
            self.stats.rows += rows
            self.stats.column_rows += column_rows
            self.stats.key_rows += key_rows
            self.stats.counted += counted

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- schema knowledge ----------------------------------------------------------------------

    def _load_indexes(self) -> set[str]:
        rows = self.session.execute(
            "SELECT options FROM system_schema.indexes WHERE keyspace_name = %s AND table_name = %s",
            (self.keyspace, self.table),
        )
        targets = set()
        for row in rows:
            options = dict(row["options"])
            targets.add(str(options.get("target", "")).replace('"', ""))
        return targets

    def _prepare(self, cql: str) -> PreparedStatement:
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self.session.prepare(cql)
            self._prepared[cql] = stmt
        return stmt

    # -- planning ------------------------------------------------------------------------------

    def plan(self, ast: Node) -> _Plan:
        return plan_query(ast, self._indexed)

    def services_by_day(self, tenant: str, days: list[str]) -> tuple[dict[str, list[str]], list[str]]:
        """The services that logged on each day, from the fan-out table, or (when it has no rows for
        a day) from the table's partition keys; and notes saying which was used."""
        stmt = self._prepare(
            f'SELECT "service" FROM {self.keyspace}.{self.table}{CQL_SERVICES_SUFFIX} '
            'WHERE "tenant" = ? AND "day" = ?'
        )
        futures = {day: self.session.execute_async(stmt, (tenant, day)) for day in days}
        found: dict[str, list[str]] = {}
        missing = []
        for day, future in futures.items():
            services = [row["service"] for row in future.result()]
            if services:
                found[day] = services
            else:
                missing.append(day)
        notes = []
        if missing:
            keys = self._all_partition_keys()
            for day in missing:
                found[day] = keys.get((tenant, day), [])
            notes.append("warm: services found by scanning partition keys (the services table has no rows)")
        return found, notes

    def _all_partition_keys(self) -> dict[tuple[str, str], list[str]]:
        with self._lock:
            cached = self._partition_keys
            if cached is not None and time.monotonic() - cached[0] < _SERVICES_CACHE_S:
                return cached[1]
            keys: dict[tuple[str, str], list[str]] = {}
            stmt = SimpleStatement(
                f'SELECT DISTINCT "tenant", "service", "day" FROM {self.keyspace}.{self.table}',
                fetch_size=5000,
            )
            for row in self.session.execute(stmt):
                tenant, service, day = row["tenant"], row["service"], row["day"]
                keys.setdefault((tenant, day), []).append(service)
            self._partition_keys = (time.monotonic(), keys)
            return keys

    # -- reading partitions --------------------------------------------------------------------

    def _partition_rows(
        self, q: TierQuery, plan: _Plan, service: str, day: str, budget: _Budget, stop_after: int | None
    ) -> Iterator[Record]:
        """Matching records of one partition in ``q.order``; with ``stop_after``, stops once that many
        matched and the records at the last one's timestamp are all read."""
        start, end = q.start_us, q.end_us
        if q.after is not None:
            if q.order == "desc":
                end = min(end, q.after.ts_us + 1)
            else:
                start = max(start, q.after.ts_us)
        if start >= end:
            return
        # A condition on fields only (no words) is checked on those columns alone, and the rows
        # that match are then read whole by their keys: with no index, a trace id or a level
        # over a month reads a few small columns of every row instead of every row.
        checked, light = _light_check(q.ast, plan)
        select = (
            ", ".join(f'"{c}"' for c in dict.fromkeys(("timestamp", "log_id", *(checked or ()))))
            if light
            else _SELECT
        )
        cql = (
            f"SELECT {select} FROM {self.keyspace}.{self.table} "
            f'WHERE "tenant" = ? AND "service" = ? AND "day" = ? AND "timestamp" >= ? AND "timestamp" < ?'
        )
        for cond in plan.where:
            cql += f" AND {cond}"
        ordered = True
        if q.order == "asc":
            if plan.where:
                ordered = False  # SAI refuses ORDER BY: read all, sort after
            else:
                cql += ' ORDER BY "timestamp" ASC, "log_id" DESC'
        stmt = self._prepare(cql)
        fetch = 500 if stop_after is None else min(max(stop_after * 2, 100), 5000)
        bound = stmt.bind([q.tenant, service, day, start, end, *plan.params])
        bound.fetch_size = fetch
        result = self.session.execute(bound)
        matched = 0
        last_ts: int | None = None
        batch: list[Record] = []
        keys: list[tuple[int, str]] = []
        for row in result:
            if not budget.take(1):
                break
            if light:
                ts, log_id = int(row["timestamp"]), row["log_id"]
            else:
                record = from_cql_row(row)
                ts, log_id = micros(record.timestamp), record.log_id
            if ordered and stop_after is not None and matched >= stop_after and ts != last_ts:
                break
            if not q.admits(ts, log_id):
                continue
            if light:
                if not matches(q.ast, cast(Record, _RowView(row))):
                    continue
                keys.append((ts, log_id))
            elif not matches(q.ast, record):
                continue
            matched += 1
            last_ts = ts
            if not light and ordered:
                yield record
            elif not light:
                batch.append(record)
        if light:
            batch = self._rows_by_key(q.tenant, service, day, keys)
            ordered = False
        if not ordered:
            batch.sort(key=order_key, reverse=q.order == "desc")
            yield from batch

    def _rows_by_key(self, tenant: str, service: str, day: str, keys: list[tuple[int, str]]) -> list[Record]:
        """The whole rows of one partition with these (timestamp, log_id) keys, 100 a request."""
        stmt = self._prepare(
            f"SELECT {_SELECT} FROM {self.keyspace}.{self.table} "
            'WHERE "tenant" = ? AND "service" = ? AND "day" = ? AND ("timestamp", "log_id") IN ?'
        )
        futures = [
            self.session.execute_async(stmt, [tenant, service, day, keys[i : i + 100]])
            for i in range(0, len(keys), 100)
        ]
        records = [from_cql_row(row) for future in futures for row in future.result()]
        self._spent(rows=len(records))
        return records

    def _days(self, q: TierQuery) -> list[str]:
        out = _days_between(q.start_us, q.end_us)
        return out if q.order == "asc" else out[::-1]

    def _partitions(self, q: TierQuery, plan: _Plan) -> tuple[list[tuple[str, list[str]]], list[str]]:
        days = self._days(q)
        if plan.services is not None:
            return [(d, list(plan.services)) for d in days], []
        by_day, notes = self.services_by_day(q.tenant, days)
        return [(d, by_day.get(d, [])) for d in days], notes

    def search(self, q: TierQuery) -> TierPage:
        plan = self.plan(q.ast)
        if plan.impossible:
            return TierPage([], 0, True, [])
        partitions, notes = self._partitions(q, plan)
        budget = _Budget(self.scan_rows)
        found: list[Record] = []
        stopped_early = False
        for i, (day, services) in enumerate(partitions):
            results = self.pool.map(
                lambda s, d=day: list(self._partition_rows(q, plan, s, d, budget, q.limit)), services
            )
            for records in results:
                found.extend(records)
            if budget.exhausted:
                break
            if len(found) >= q.limit:
                stopped_early = i < len(partitions) - 1
                break
        read = min(budget.used, budget.rows)
        self._spent(**{"column_rows" if _light_check(q.ast, plan)[1] else "rows": read})
        found.sort(key=order_key, reverse=q.order == "desc")
        page = found[: q.limit]
        if budget.exhausted:
            notes.append(
                f"warm: the scan stopped after reading {budget.rows} rows; narrow the time range or "
                "filter on service, level, host, trace_id or an attribute"
            )
            return TierPage(page, len(found), False, notes)
        if not plan.residual:
            return TierPage(page, self._count(q, plan, partitions), True, notes)
        if not stopped_early and q.after is None and len(found) < q.limit:
            return TierPage(page, len(found), True, notes)
        if plan.residual:
            notes.append("warm: conditions on words, prefixes and OR/NOT are checked while scanning")
        return TierPage(page, None, False, notes)

    def _count(self, q: TierQuery, plan: _Plan, partitions: list[tuple[str, list[str]]]) -> int:
        cql = (
            f"SELECT COUNT(*) FROM {self.keyspace}.{self.table} "
            f'WHERE "tenant" = ? AND "service" = ? AND "day" = ? AND "timestamp" >= ? AND "timestamp" < ?'
        )
        for cond in plan.where:
            cql += f" AND {cond}"
        stmt = self._prepare(cql)
        futures = [
            self.session.execute_async(stmt, [q.tenant, s, d, q.start_us, q.end_us, *plan.params])
            for d, services in partitions
            for s in services
        ]
        total = 0
        for future in futures:
            row = future.result().one()
            total += int(next(iter(row.values())))
        self._spent(counted=total)
        return total

    def scan(
        self, q: TierQuery, columns: tuple[str, ...], visit: Callable[[dict[str, Any]], None]
    ) -> tuple[bool, list[str]]:
        """Calls ``visit`` with the CQL row (at least ``columns``) of every matching record of the
        slice, in any order; returns (complete?, notes)."""
        plan = self.plan(q.ast)
        if plan.impossible:
            return True, []
        partitions, notes = self._partitions(q, plan)
        budget = _Budget(self.scan_rows)
        lock = threading.Lock()
        # Only the aggregated columns and those the residual check reads travel, and no row is
        # turned into a record: with no index a filtered histogram reads a few small columns of
        # each row, not the whole row.
        checked = _checked_columns(q.ast) if plan.residual else ()
        light = checked is not None
        select = (
            ", ".join(f'"{c}"' for c in dict.fromkeys(("timestamp", *columns, *(checked or ()))))
            if light
            else _SELECT
        )
        cql = (
            f"SELECT {select} FROM {self.keyspace}.{self.table} "
            'WHERE "tenant" = ? AND "service" = ? AND "day" = ? AND "timestamp" >= ? AND "timestamp" < ?'
        )
        for cond in plan.where:
            cql += f" AND {cond}"
        stmt = self._prepare(cql)

        def read(day: str, service: str) -> None:
            bound = stmt.bind([q.tenant, service, day, q.start_us, q.end_us, *plan.params])
            bound.fetch_size = 5000
            for row in self.session.execute(bound):
                if not budget.take(1):
                    return
                if plan.residual and not matches(
                    q.ast, cast(Record, _RowView(row)) if light else from_cql_row(row)
                ):
                    continue
                with lock:
                    visit(row)

        jobs = [self.pool.submit(read, d, s) for d, services in partitions for s in services]
        for job in jobs:
            job.result()
        self._spent(**{"column_rows" if light else "rows": min(budget.used, budget.rows)})
        if budget.exhausted:
            notes.append(f"warm: counted the first {budget.rows} rows read only; narrow the time range")
        elif plan.residual:
            notes.append("warm: conditions on words, prefixes and OR/NOT were checked while scanning")
        return not budget.exhausted, notes

    def histogram(self, q: TierQuery, interval_us: int) -> TierCounts[tuple[int, str]]:
        counts: Counter[tuple[int, str]] = Counter()

        def visit(row: dict[str, Any]) -> None:
            ts = int(row["timestamp"])
            counts[(ts - ts % interval_us, str(row["level"]))] += 1

        complete, notes = self.scan(q, ("level",), visit)
        return TierCounts(counts, complete, notes)

    def top(self, q: TierQuery, field: str, size: int) -> TierCounts[str]:
        """Every value's count: the scan reads each matching row anyway, so ``size`` cuts nothing."""
        counts: Counter[str] = Counter()

        def visit(row: dict[str, Any]) -> None:
            value = row.get(field)
            if value is not None:
                counts[str(value)] += 1

        complete, notes = self.scan(q, (field,), visit)
        return TierCounts(counts, complete, notes)

    def get(self, tenant: str, log_ids: Sequence[str], start_us: int, end_us: int) -> list[Record]:
        """The tenant's records among ``log_ids`` within ``[start_us, end_us)``: through the log_id
        index when the table has one, otherwise by scanning that range's partitions (see
        :meth:`_get_scanning`)."""
        wanted = list(dict.fromkeys(log_ids))
        if not wanted or start_us >= end_us:
            return []
        if "log_id" in self._indexed:
            return self._get_indexed(tenant, wanted, start_us, end_us)
        return self._get_scanning(tenant, wanted, start_us, end_us)

    def _get_indexed(self, tenant: str, log_ids: list[str], start_us: int, end_us: int) -> list[Record]:
        stmt = self._prepare(f'SELECT {_SELECT} FROM {self.keyspace}.{self.table} WHERE "log_id" = ?')
        found = []
        for log_id in log_ids:
            for row in self.session.execute(stmt, [log_id]):
                record = from_cql_row(row)
                if record.tenant == tenant and start_us <= micros(record.timestamp) < end_us:
                    found.append(record)
                    break
        return found

    def _get_scanning(self, tenant: str, log_ids: list[str], start_us: int, end_us: int) -> list[Record]:
        """Reads only the key columns of the partitions of the range, newest day first (the services
        of a day in parallel), and stops once every id is found or the scan budget is spent; then
        fetches the found rows by their full primary key. A log_id is a hash, so nothing narrows
        the scan below the range the caller gives: the narrower, the cheaper."""
        days = _days_between(start_us, end_us)[::-1]
        by_day, _ = self.services_by_day(tenant, days)
        missing = set(log_ids)
        keys: dict[str, tuple[str, str, int]] = {}
        budget = _Budget(self.scan_rows)
        lock = threading.Lock()
        stmt = self._prepare(
            f'SELECT "timestamp", "log_id" FROM {self.keyspace}.{self.table} '
            'WHERE "tenant" = ? AND "service" = ? AND "day" = ? AND "timestamp" >= ? AND "timestamp" < ?'
        )

        def read(day: str, service: str) -> None:
            bound = stmt.bind([tenant, service, day, start_us, end_us])
            bound.fetch_size = 5000
            for row in self.session.execute(bound):
                if not missing or not budget.take(1):
                    return
                log_id = row["log_id"]
                if log_id in missing:
                    with lock:
                        missing.discard(log_id)
                        keys[log_id] = (service, day, int(row["timestamp"]))

        for day in days:
            for job in [self.pool.submit(read, day, s) for s in by_day.get(day, [])]:
                job.result()
            if not missing or budget.exhausted:
                break
        self._spent(key_rows=min(budget.used, budget.rows))
        if missing and budget.exhausted:
            _log.warning(
                "warm: a lookup of %d log id(s) stopped after reading %d rows; %d not found",
                len(log_ids),
                budget.rows,
                len(missing),
            )
        fetch = self._prepare(
            f"SELECT {_SELECT} FROM {self.keyspace}.{self.table} "
            'WHERE "tenant" = ? AND "service" = ? AND "day" = ? AND "timestamp" = ? AND "log_id" = ?'
        )
        futures = [
            self.session.execute_async(fetch, [tenant, service, day, ts, log_id])
            for log_id, (service, day, ts) in keys.items()
        ]
        found = {}
        for future in futures:
            for row in future.result():
                record = from_cql_row(row)
                found[record.log_id] = record
        return [found[i] for i in log_ids if i in found]


def _days_between(start_us: int, end_us: int) -> list[str]:
    """The ``day`` values of ``[start_us, end_us)``, oldest first."""
    day = from_micros(start_us).replace(hour=0, minute=0, second=0, microsecond=0)
    last = from_micros(max(end_us - 1, start_us))
    out = []
    while day <= last:
        out.append(cql_day(day))
        day += timedelta(days=1)
    return out


def plan_query(ast: Node, indexed: Collection[str]) -> _Plan:
    """How a query maps onto partitions and CQL restrictions, given the table's index targets
    (``indexed``): a service condition picks partitions, a ``field:value`` term on an indexed
    column is pushed down, anything else is left to the residual check while scanning."""
    plan = _Plan(services=None)
    used_columns: set[str] = set()
    for part in conjuncts(ast):
        services = _service_values(part)
        if services is not None:
            plan.services = (
                services if plan.services is None else tuple(s for s in plan.services if s in services)
            )
            if not plan.services:
                plan.impossible = True
            continue
        if isinstance(part, Term):
            key = attribute_key(part.field)
            if key is not None and "entries(attributes)" in indexed:
                plan.where.append('"attributes"[?] = ?')
                plan.params.extend([key, part.value])
                continue
            if part.field in _INDEXABLE and part.field in indexed and part.field not in used_columns:
                used_columns.add(part.field)
                plan.where.append(f'"{part.field}" = ?')
                plan.params.append(part.value)
                continue
        plan.residual = True
    return plan


_KINDS = {f.name: f.kind for f in FIELDS}
_MAPS = {n for n, k in _KINDS.items() if k is Kind.STRING_MAP}
_LISTS = {n for n, k in _KINDS.items() if k is Kind.STRING_LIST}


def _light_check(ast: Node, plan: _Plan) -> tuple[tuple[str, ...] | None, bool]:
    """The columns a search's residual condition reads, and whether the search checks it on those
    columns alone: when it is on fields only (words need the message, most of a row anyway)."""
    checked = _checked_columns(ast) if plan.residual else None
    return checked, checked is not None and "message" not in checked


def _checked_columns(ast: Node) -> tuple[str, ...] | None:
    """The columns :func:`core.query.matches` reads to check ``ast``, when a :class:`_RowView` of
    them answers exactly as the whole record would; None for a field of another kind (the query
    language refuses those today: this keeps a field it may accept later on whole rows)."""
    out: dict[str, None] = {}
    for leaf in leaves(ast):
        if isinstance(leaf, Text | TextPrefix):
            out["message"] = None
        elif attribute_key(leaf.field) is not None:
            out["attributes"] = None
        elif _KINDS.get(leaf.field) in (Kind.ID, Kind.KEYWORD, Kind.TEXT, Kind.STRING_LIST):
            out[leaf.field] = None
        else:
            return None
    return tuple(out)


class _RowView:
    """Some columns of a CQL row, read by :func:`core.query.matches` as the record's fields (maps
    and lists as :func:`schemas.projections.from_cql_row` gives them)."""

    __slots__ = ("_row",)

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        value = self._row.get(name)
        if name in _MAPS:
            return dict(value or {})
        if name in _LISTS:
            return list(value or [])
        return value


def _service_values(node: Node) -> tuple[str, ...] | None:
    """The services a condition allows, when it is ``service:x`` or an OR of those."""
    if isinstance(node, Term) and node.field == "service":
        return (node.value,)
    if (
        isinstance(node, Or)
        and node.children
        and all(isinstance(c, Term) and c.field == "service" for c in node.children)
    ):
        return tuple(c.value for c in node.children if isinstance(c, Term))
    return None
