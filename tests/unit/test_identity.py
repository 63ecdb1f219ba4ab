"""``log_id``: one id per distinct log, the same id for the same log sent again (no services).

Each test goes from what a client sends (a request body, through the collector's decoding) to the
``log_id`` the ingest job's pipeline gives it, since the id is what every store deduplicates on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from api.collector.batch import decode_json_batch
from api.collector.encoder import EnvelopeEncoder, request_identity
from api.routers.elastic import decode_bulk
from core.records.pipeline import RecordPipeline
from schemas import RawEnvelope, Record

pytestmark = pytest.mark.unit

FIRST_TRY = datetime(2025, 2, 15, 12, 0, 0, tzinfo=UTC)
RETRY = FIRST_TRY + timedelta(seconds=7)  # the client waited out a 503's Retry-After


def ids_of_request(
    body: bytes,
    *,
    at: datetime = FIRST_TRY,
    key: str | None = None,
    content_type: str = "application/json",
) -> list[str]:
    encoder = EnvelopeEncoder("acme", source="http", received_at=at, request_id=request_identity(body, key))
    out = decode_json_batch(
        body, encoder, max_record_bytes=1 << 20, default_service="api", content_type=content_type
    )
    pipeline = RecordPipeline()
    records = [pipeline.process(value) for _, value in out.messages]
    assert all(isinstance(r, Record) for r in records), records
    return [r.log_id for r in records if isinstance(r, Record)]


def bulk_ids(body: bytes, *, at: datetime = FIRST_TRY) -> list[str]:
    encoder = EnvelopeEncoder("acme", source="bulk", received_at=at, request_id=request_identity(body))
    out, _ = decode_bulk(body, encoder, default_index="app", max_record_bytes=1 << 20)
    pipeline = RecordPipeline()
    return [r.log_id for _, value in out.messages if isinstance(r := pipeline.process(value), Record)]


def ndjson(*objs: object) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


BASE = {"timestamp": "2025-02-15T11:59:59.123Z", "level": "ERROR", "message": "payment failed"}


@pytest.mark.parametrize(
    "other",
    [
        {**BASE, "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"},
        {**BASE, "level": "WARN"},
        {**BASE, "metadata": {"orderId": "A-2"}},
        {**BASE, "spanId": "00f067aa0ba902b7"},
        {**BASE, "environment": "staging"},
    ],
    ids=["trace-id", "level", "attribute", "span-id", "environment"],
)
def test_entries_differing_only_outside_the_message_are_two_logs(other: dict[str, object]) -> None:
    first = {**BASE, "traceId": "0af7651916cd43dd8448eb211c80319c", "metadata": {"orderId": "A-1"}}
    if "traceId" not in other:
        other = {**other, "traceId": first["traceId"]}
    if "metadata" not in other:
        other = {**other, "metadata": first["metadata"]}
    a, b = ids_of_request(orjson.dumps([first, other]))
    assert a != b


def test_the_same_entry_sent_twice_is_one_log() -> None:
    a, b = ids_of_request(orjson.dumps([BASE, BASE]))
    assert a == b  # it has its own timestamp: a true duplicate, whatever its position


def test_a_retried_batch_without_timestamps_keeps_its_ids() -> None:
    body = orjson.dumps({"logs": [{"message": "cache warmed"}, {"message": "cache warmed"}, "raw line"]})
    first = ids_of_request(body)
    assert ids_of_request(body, at=RETRY) == first
    assert len(set(first)) == 3  # two identical lines in one batch are still two logs


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "text/plain"])
def test_a_retried_ndjson_or_text_batch_keeps_its_ids(content_type: str) -> None:
    body = (
        ndjson({"message": "a"}, {"message": "b"})
        if content_type != "text/plain"
        else b"worker started\nworker started\n"
    )
    assert ids_of_request(body, at=RETRY, content_type=content_type) == ids_of_request(
        body, content_type=content_type
    )


def test_an_idempotency_key_names_the_batch() -> None:
    body = orjson.dumps([{"message": "deploy finished"}])
    first = ids_of_request(body, key="deploy-77")
    # A client that rebuilt the body (another JSON serialiser) but kept its key: still the same log.
    rebuilt = orjson.dumps({"logs": [{"message": "deploy finished"}]})
    assert ids_of_request(rebuilt, at=RETRY, key="deploy-77") == first
    # The same lines sent on purpose again, under a new key: new logs.
    assert ids_of_request(body, at=RETRY, key="deploy-78") != first


def test_without_a_key_a_different_body_is_a_different_batch() -> None:
    a = ids_of_request(orjson.dumps([{"message": "tick"}]))
    b = ids_of_request(orjson.dumps([{"message": "tick"}, {"message": "tock"}]), at=RETRY)
    assert a[0] != b[0]


def test_bulk_id_names_the_document_across_retries() -> None:
    first = bulk_ids(ndjson({"index": {"_id": "doc-1"}}, {"message": "no time"}))
    # Resent inside another batch, at another position: the _id still names it.
    again = bulk_ids(
        ndjson({"index": {}}, {"message": "other"}, {"index": {"_id": "doc-1"}}, {"message": "no time"}),
        at=RETRY,
    )
    assert again[1] == first[0] and again[0] != first[0]


def test_bulk_without_id_uses_the_body_and_position() -> None:
    body = ndjson({"create": {}}, {"message": "no time"}, {"create": {}}, {"message": "no time"})
    first = bulk_ids(body)
    assert bulk_ids(body, at=RETRY) == first and first[0] != first[1]


def test_an_envelope_without_an_entry_id_falls_back_to_arrival_time() -> None:
    # Collectors that cannot name an entry (syslog datagrams) keep the old behaviour: a resend
    # later is a new log, which is right for a protocol without retries.
    pipeline = RecordPipeline()
    a = pipeline.process(RawEnvelope(tenant="t", received_at=FIRST_TRY, entry={"message": "m"}))
    b = pipeline.process(RawEnvelope(tenant="t", received_at=RETRY, entry={"message": "m"}))
    assert isinstance(a, Record) and isinstance(b, Record) and a.log_id != b.log_id


def test_the_entry_id_is_carried_by_the_envelope() -> None:
    env = RawEnvelope(tenant="t", received_at=FIRST_TRY, line="x", entry_id="body:ab/3")
    assert RawEnvelope.decode(env.encode()).entry_id == "body:ab/3"


# -- the identity key -------------------------------------------------------------------------


def _masked_login(pipeline: RecordPipeline, ip: str) -> Record:
    r = pipeline.process_line(f"2025-02-15 12:00:00 INFO login from {ip}", tenant="t", received_at=FIRST_TRY)
    assert isinstance(r, Record) and r.message == "login from [IP]"
    return r


def test_a_secret_identity_key_keeps_a_masked_value_from_being_confirmed() -> None:
    from core.records.config import PipelineConfig

    # Someone holding a stored record ("login from [IP]" and its id) recomputes the id for each
    # address they guess. With the public local-stack key, the right guess matches...
    public = _masked_login(RecordPipeline(), "10.1.2.3")
    assert _masked_login(RecordPipeline(), "10.1.2.3").log_id == public.log_id
    # ...with the deployment's secret key, no guess does.
    secret = RecordPipeline(PipelineConfig(identity_key="s3cret-of-the-deployment"))
    stored = _masked_login(secret, "10.1.2.3")
    assert _masked_login(RecordPipeline(), "10.1.2.3").log_id != stored.log_id


def test_jobs_take_the_identity_key_from_settings_and_refuse_to_run_without_one_off_the_local_stack() -> None:
    from core.records.config import LOCAL_IDENTITY_KEY, MissingIdentityKey, PipelineConfig
    from infra.settings import Settings
    from jobs.alerts.job import AlertsOptions
    from jobs.ingest.job import IngestOptions

    addresses = ("kafka_bootstrap", "opensearch_url", "cassandra_hosts", "s3_endpoint", "postgres_host")
    local = Settings().model_copy(update=dict.fromkeys(addresses, "") | {"identity_key": ""})
    assert local.uses_local_stack
    assert IngestOptions.from_settings(local).pipeline_config.identity_key == LOCAL_IDENTITY_KEY  # type: ignore[union-attr]

    for address in (
        {"kafka_bootstrap": "kafka-1:9092"},
        {"opensearch_url": "https://os:9200"},
        {"cassandra_hosts": "c1"},
        {"s3_endpoint": "https://s3.example"},
        {"postgres_host": "db"},
    ):
        deployed = local.model_copy(update=address)
        assert not deployed.uses_local_stack
        for options in (IngestOptions, AlertsOptions):
            with pytest.raises(MissingIdentityKey, match="STRATA_IDENTITY_KEY"):
                options.from_settings(deployed)

    keyed = local.model_copy(update={"kafka_bootstrap": "kafka-1:9092", "identity_key": "k" * 32})
    assert IngestOptions.from_settings(keyed).pipeline_config.identity_key == "k" * 32  # type: ignore[union-attr]
    assert AlertsOptions.from_settings(keyed).pipeline_config.identity_key == "k" * 32  # type: ignore[union-attr]
    # A key written in the pipeline's configuration file wins over the environment's.
    own = PipelineConfig(identity_key="from-the-file-0123456789")
    options = IngestOptions.from_settings(keyed, pipeline_config=own)
    assert options.pipeline_config.identity_key == "from-the-file-0123456789"  # type: ignore[union-attr]


def test_identity_key_setting_is_validated() -> None:
    from pydantic import ValidationError

    from infra.settings import Settings

    with pytest.raises(ValidationError, match="16 to 64 bytes"):
        Settings(identity_key="short")


def test_a_retried_otlp_export_without_times_keeps_its_ids() -> None:
    from api.routers.otlp import decode_otlp

    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "no time"}}] * 2}]}]}
    body = orjson.dumps(doc)
    ids = []
    for _ in range(2):
        out = decode_otlp(doc, "acme", 1 << 20, request_identity(body))
        pipeline = RecordPipeline()
        ids.append([r.log_id for _, v in out.messages if isinstance(r := pipeline.process(v), Record)])
    assert ids[0] == ids[1] and len(set(ids[0])) == 2
