"""The ingest job's metrics step runs in the JVM (``dev.strata.flink.LogMetricsAggregate``); Python's
:class:`core.metrics.ServiceAccumulator` is the reference. Both count the same rows here and must
write the same documents, byte for byte, under the same ids and indices."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pytest

from connectors.opensearch.metrics import metrics_index
from core.metrics import MAX_HOSTS_PER_SERVICE, DictStore, ServiceAccumulator
from infra.settings import Settings
from jobs.ingest.metrics import MetricsOptions, aggregate

pytestmark = pytest.mark.job

PREFIX = "strata-test"
T0 = 1_764_287_940  # 2025-11-27 23:59:00 UTC: a minute before a day, and a month, ends
TENANT = "acme"
IDLE_S = 5

# (service, level, pattern, host, ts_s, message): the labels a user may send, whatever they hold.
Row_ = tuple[str, str, str | None, str, int, str]


def _rows() -> list[Row_]:
    odd_hosts = [
        'web "1"',
        "back\\slash",
        "tab\there",
        "esc\x1bape",
        "nl\nx",
        "ünï-☃",
        "emoji-😀",
        "long-" + "x" * 250 + "☃",
    ]
    rows: list[Row_] = [
        ("checkout", "ERROR", "a1b2c3d4e5f60718", "web-1", T0 + 5, "order 1 failed"),
        ("checkout", "ERROR", "a1b2c3d4e5f60718", "web-1", T0 + 65, "order 2 failed"),  # next day
        ("checkout", "INFO", None, "web-2", T0 - 3600, "plain ascii"),
        ("checkout", "WARN", "", "web-2", T0 + 30, "ünïcödé ☃ and 😀, 4 bytes"),
        ("billing", "DEBUG", "ffff000011112222", "db-1", T0 - 86400 * 40, "forty days ago"),
        ("billing", "FATAL", None, "db-1", 0, ""),
    ]
    rows += [("checkout", "INFO", None, host, T0 + 1, f"odd host {i}") for i, host in enumerate(odd_hosts)]
    # Past the cap of distinct hosts a service keeps: the rest count as OTHER_HOST.
    rows += [
        ("fleet", "INFO", "p", f"h{i:03d}", T0 + i % 90, "x" * (i % 7))
        for i in range(MAX_HOSTS_PER_SERVICE + 25)
    ]
    return rows


def _documents(flushed: Iterable[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    return sorted(
        (i, metrics_index(PREFIX, suffix), orjson.dumps(doc).decode()) for i, suffix, doc in flushed
    )


def _java_documents(flushed: Any) -> list[tuple[str, str, str]]:
    return sorted((d[0], d[1], d[2]) for d in flushed)


@pytest.fixture(scope="module")
def environment(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A local environment with Strata's jar, whose Python workers hand each record on at once
    (a bundle of one), so the job's processing time passes between records as a test waits."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from jobs.flink import flink_jar_urls, job_configuration

    config = Configuration()
    for key, value in job_configuration(settings, "metrics-jvm-test", parallelism=1).items():
        config.set_string(key, value)
    config.set_string("pipeline.jars", ";".join(flink_jar_urls(settings)))
    config.set_string("state.checkpoints.dir", tmp_path_factory.mktemp("checkpoints").as_uri())
    config.set_string("python.fn-execution.bundle.size", "1")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    StreamTableEnvironment.create(env)  # loads pipeline.jars into the gateway's class loader
    return env


def test_the_jvm_accumulator_matches_the_reference_step_by_step(environment: Any) -> None:
    """Same adds, flushes and idle closes, at the same processing times, on both sides."""
    from pyflink.java_gateway import get_gateway

    rows = _rows()
    services = sorted({r[0] for r in rows})
    py = {s: ServiceAccumulator(DictStore(), DictStore(), DictStore()) for s in services}
    jvm = {s: get_gateway().jvm.dev.strata.flink.LogMetricsAggregate.inMemoryAccumulator() for s in services}

    def add(batch: list[Row_], now_ms: int, offset0: int) -> None:
        for n, (svc, level, pattern, host, ts_s, message) in enumerate(batch):
            size = len(message.encode())
            py[svc].add(level, pattern, host, ts_s, size, 3, offset0 + n, now_ms)
            jvm[svc].add(level, pattern, host, ts_s, size, 3, offset0 + n, now_ms)

    def flush_both() -> list[tuple[str, str, str]]:
        out = []
        for svc in services:
            expected = _documents(py[svc].flush(TENANT, svc))
            assert _java_documents(jvm[svc].flush(TENANT, svc, PREFIX)) == expected, svc
            out += expected
        return out

    add(rows, 1_000, 0)
    docs = flush_both()
    assert len(docs) > 3 * MAX_HOSTS_PER_SERVICE
    assert sum('"host":"_other"' in d for _, _, d in docs) == 3  # one series, three resolutions
    assert flush_both() == []  # nothing changed since
    fleet = [r for r in rows if r[0] == "fleet"]
    add(fleet[:3] + fleet[-3:], 400_000, 10_000)  # the same contributions again, later
    flush_both()
    # At 700 s, the contributions last touched at 1 s are idle (600 s), those of 400 s are not.
    for svc in services:
        assert jvm[svc].closeIdle(700_000, 600) == py[svc].close_idle(700_000, 600)
    # Late records for buckets the state closed open new contributions (new ids); the hosts the
    # closed ones used are forgotten, so new hosts are counted by name again.
    late = [("checkout", "ERROR", "a1b2c3d4e5f60718", "web-1", T0 + 5, "late"), *fleet[100:110]]
    late += [("fleet", "INFO", "p", f"new-{i}", T0, "new host") for i in range(3)]
    add(late, 800_000, 20_000)
    docs = flush_both()
    assert any('"host":"new-0"' in d[2] for d in docs)
    assert any('"host":"web-1"' in d[2] and '"count":1,' in d[2] for d in docs)
    for svc in services:
        assert jvm[svc].closeIdle(10_000_000, 600) == py[svc].close_idle(10_000_000, 600) == 0


def _reference(batches: list[list[tuple[Row_, int, int]]], idle_s: int) -> dict[str, tuple[str, str]]:
    """The last document of every id, as the reference writes them: each batch counted, flushed,
    and then every contribution idle (as the job's timers do between the batches below)."""
    accs: dict[str, ServiceAccumulator] = {}
    last: dict[str, tuple[str, str]] = {}
    for i, batch in enumerate(batches):
        now_ms = i * 1_000_000
        for (svc, level, pattern, host, ts_s, message), partition, offset in batch:
            acc = accs.setdefault(svc, ServiceAccumulator(DictStore(), DictStore(), DictStore()))
            acc.add(level, pattern, host, ts_s, len(message.encode()), partition, offset, now_ms)
        for svc, acc in accs.items():
            for doc_id, index, doc in _documents(acc.flush(TENANT, svc)):
                last[doc_id] = (index, doc)
            acc.close_idle(now_ms + idle_s * 1000 + 1, idle_s)
    return last


def test_the_flink_function_writes_the_reference_documents(environment: Any) -> None:
    """The Java function in a job: keyed by (tenant, service), flushed by its timers and at the end
    of the input, contributions closed when idle and a late record counted into a new one."""
    from pyflink.common import Row, Types

    rows = _rows()
    late = [rows[0], rows[2], *[r for r in rows if r[0] == "fleet"][:5]]
    first = [(r, i % 2, 100 + i) for i, r in enumerate(rows)]
    second = [(r, 1, 5_000 + i) for i, r in enumerate(late)]
    expected = _reference([first, second], idle_s=IDLE_S)

    names = [
        "tenant",
        "service",
        "level",
        "pattern_id",
        "host",
        "timestamp_us",
        "message",
        "kafka_partition",
        "kafka_offset",
    ]
    types = [Types.STRING()] * 5 + [Types.LONG(), Types.STRING(), Types.INT(), Types.LONG()]
    pause = Row(TENANT, "", "", None, "", 0, "", -1, -1)  # marks where the source waits

    def as_row(r: Row_, partition: int, offset: int) -> Row:
        svc, level, pattern, host, ts_s, message = r
        return Row(TENANT, svc, level, pattern, host, ts_s * 1_000_000 + 123_456, message, partition, offset)

    values = [as_row(*x) for x in first] + [pause] + [as_row(*x) for x in second]

    def wait_at_pause(row: Row) -> Iterator[Row]:
        if row[7] == -1:
            # Past the idle time and the flush after it: the first batch is closed. The idle time
            # is longer than the first batch takes to arrive, even on a busy machine.
            time.sleep(IDLE_S * 3)
        else:
            yield row

    source = environment.from_collection(values, type_info=Types.ROW_NAMED(names, types))
    # The output type makes the rows Java rows again for the function downstream.
    typed = source.flat_map(wait_at_pause, output_type=Types.ROW_NAMED(names, types))
    docs = aggregate(typed, MetricsOptions(PREFIX, flush_s=1, idle_s=IDLE_S))
    last: dict[str, tuple[str, str]] = {}
    with docs.execute_and_collect() as results:
        for doc_id, index, doc in results:
            last[doc_id] = (index, doc)
    assert last == expected
    # The late records opened contributions of their own beside the closed ones.
    assert set(expected) > set(_reference([first], idle_s=IDLE_S))
