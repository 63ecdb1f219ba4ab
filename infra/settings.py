"""Strata's configuration: one typed place, read from the environment (prefix ``STRATA_``).

Every endpoint, port, heap size and directory lives here, with the local stack as the default.
Pointing Strata at real clusters means setting these variables, nothing else:

    STRATA_KAFKA_BOOTSTRAP=kafka-1:9092,kafka-2:9092 STRATA_OPENSEARCH_URL=https://os:9200 strata serve

Flink runtime settings stay in ``flink-conf.yaml``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """All of Strata's settings. Each field maps to ``STRATA_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix="STRATA_", extra="ignore")

    # Where the local stack keeps downloads, data, logs and process ids (an ignored folder).
    home: Path = Field(default=REPO_ROOT / ".strata")
    bind_host: str = "127.0.0.1"

    # Versions fetched by `strata stack up`.
    kafka_version: str = "4.1.2"
    opensearch_version: str = "2.19.4"
    cassandra_version: str = "5.0.7"
    # s3proxy 2.6 url-encoded its ListObjectsV2 continuation token when a client asked for
    # encoding-type=url (boto3 always does), and read the token back verbatim: past 1,000 keys with
    # '=' in them (every Hive partition) it answered the second page with the first again.
    s3proxy_version: str = "4.1.0"
    # s3proxy 4 uses Jackson 3, which needs these annotations; Maven's nearest-wins mediation
    # otherwise picks an older 2.x from the cloud SDKs' dependency paths (NoClassDefFoundError).
    s3proxy_jackson_annotations_version: str = "2.22"
    flink_version: str = "1.20.3"
    flink_kafka_connector_version: str = "3.4.0-1.20"
    flink_opensearch_connector_version: str = "2.0.0-1.19"
    # 3.0.0-1.16 is the newest Cassandra connector the Maven mirror here serves; it runs on 1.20.
    flink_cassandra_connector_version: str = "3.0.0-1.16"
    # flink-parquet and flink-s3-fs-hadoop: the newest 1.20.x the mirror serves (no flink-sql-parquet).
    flink_parquet_version: str = "1.20.1"
    flink_s3_fs_version: str = "1.20.1"
    hadoop_version: str = "3.3.6"
    hadoop_shaded_guava_version: str = "1.1.1"  # the one hadoop-common <hadoop_version> was built with

    # Kafka
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    # With stack_tls on, the stack's broker also listens with SASL_SSL here (docs/stack.md).
    kafka_tls_port: int = 9094
    kafka_bootstrap: str = ""
    topic_partitions: int = 4
    topic_retention_hours: int = 168
    raw_topic: str = "raw_logs"
    dlq_topic: str = "raw_logs_dlq"
    logs_topic: str = "logs"

    # OpenSearch
    opensearch_port: int = 9200
    opensearch_transport_port: int = 9300
    opensearch_heap: str = "1g"
    opensearch_url: str = ""
    opensearch_user: str = "strata"  # the unprivileged OS user that runs OpenSearch when we are root
    opensearch_index_prefix: str = "strata-logs"
    # How soon an indexed document is searchable: each refresh writes a new Lucene segment, so a
    # longer interval is cheaper to index and later to search (docs/benchmarks.md, "Ingest job").
    opensearch_refresh_interval: str = "1s"
    # The ingest job's bulk requests: sent at this many documents, this many MiB, this often, and
    # on every checkpoint.
    opensearch_bulk_actions: int = 2000
    opensearch_bulk_size_mb: int = 5
    opensearch_bulk_interval_ms: int = 1000

    # Cassandra
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    cassandra_heap: str = "2g"
    cassandra_hosts: str = ""
    cassandra_keyspace: str = "strata"
    cassandra_replication_factor: int = 1

    # S3
    s3_port: int = 9000
    s3_heap: str = "256m"
    s3_tls_port: int = 9443  # with stack_tls, the S3 server's HTTPS endpoint beside its plain one
    s3_endpoint: str = ""
    s3_access_key: str = "strata"
    s3_secret_key: str = "strata-secret-key"
    s3_region: str = "us-east-1"
    s3_bucket: str = "strata-archive"

    # Trino over the archive: optional, not started by `strata stack up` (docs/archive.md).
    trino_version: str = "476"
    trino_port: int = 8095
    trino_heap: str = "1g"
    trino_java_home: Path | None = None  # None: JAVA_HOME or an installed JDK, if Java 24 or newer
    trino_metastore_dir: str = ""  # the Hive catalog's file metastore; empty: s3://<bucket>/trino-metastore/

    # PostgreSQL
    postgres_port: int = 5432
    postgres_host: str = ""
    postgres_user: str = "strata"
    postgres_password: str = "strata"
    postgres_db: str = "strata"
    postgres_bin_dir: Path | None = None

    # Collector API and receivers.
    api_port: int = 8000
    api_workers: int = 1
    admin_token: str = ""  # empty: the admin routes are closed; tenants are then made with `strata tenant`
    ingest_max_body_bytes: int = 16 * 1024 * 1024  # per request, after decompression too
    ingest_max_record_bytes: int = 512 * 1024  # one encoded entry; Kafka refuses messages over ~1 MiB
    # Entries one request may carry (HTTP batch, _bulk, OTLP; an upload's chunk; a syslog
    # connection's burst): past it an HTTP request gets 413 with the cap, before it is encoded.
    ingest_max_entries: int = 100_000
    ingest_rate_per_s: float = 200_000.0  # records per second per tenant and worker; 0 turns it off
    ingest_rate_burst_s: float = 2.0  # a tenant may send this many seconds' worth at once
    kafka_ack_timeout_s: float = 10.0  # how long a request waits for Kafka before answering 503
    auth_cache_s: float = 2.0  # how long a verified key is trusted without asking PostgreSQL again
    upload_max_bytes: int = 20 * 1024**3
    syslog_tenant: str = "default"
    syslog_service: str = ""  # empty: the syslog APP-NAME or tag
    # How long the syslog receiver holds a sender's last line for a continuation (a stack trace
    # logged line by line) before sending it on: the latency a line pays for being joined.
    multiline_flush_s: float = 2.0
    api_url: str = ""  # where `strata send` posts; empty: the local API
    api_key: str = ""  # the key `strata send` uses
    # How `strata send` and `strata search` reach an HTTPS API: the CA of its certificate (else
    # tls_ca_file, else the system's CAs), and a client certificate, which may stand for the key.
    api_ca_file: str = ""
    api_client_cert_file: str = ""
    api_client_key_file: str = ""

    # The record pipeline's configuration (YAML or JSON, docs/records.md), read by the ingest job,
    # the alerts job and `strata parse` alike, so alerts see records as they are stored. Empty:
    # the built-in defaults. A command's --config overrides it.
    pipeline_config: str = ""

    # Secret mixed into every log_id (docs/records.md, "Identity"), the same for every job. Required
    # outside the local stack: the jobs refuse to start without it (see uses_local_stack).
    identity_key: str = ""
    # Key that seals the exact bytes of every dead letter (core/deadletter.py); the readable part is
    # masked. Required outside the local stack, like identity_key; `strata dlq show --decrypt`
    # needs the same value.
    dlq_key: str = ""
    dlq_retention_hours: int = 72  # raw_logs_dlq keeps entries this long (set when it is created)

    # Tier windows, shared by the ingest job and the search API.
    hot_days: int = 14
    warm_days: int = 45
    # Retention defaults per tier (a tenant may override them: `strata retention set`). Hot and warm
    # keep their window unless a tenant's is shorter; the archive keeps this many days.
    archive_days: int = 365
    # Whether the ingest job computes log metrics (docs/metrics.md): off, no metric indices are written.
    log_metrics: bool = True
    # How often the job writes the log metrics' changed contributions (seconds): each write
    # replaces every series touched since the last one, so OpenSearch's cost per record falls with
    # it; dashboards lag by up to this plus a checkpoint interval (docs/benchmarks.md).
    log_metrics_flush_s: int = 30
    # Log metrics per resolution (docs/metrics.md); a tenant's own may only be shorter.
    metrics_1m_days: int = 90
    metrics_1h_days: int = 365
    metrics_1d_days: int = 1095
    # Metric rules (metrics from fields) a tenant may have: each costs the stream a match per record.
    metric_rules_max_per_tenant: int = 50
    # The field metrics job (jobs/fieldmetrics): its consumer group of the logs topic, and how soon
    # a rule saved through the API takes effect in it.
    fieldmetrics_group: str = "strata-fieldmetrics"
    fieldmetrics_rules_refresh_s: float = 5.0
    retention_interval_s: float = 86_400.0  # how often the API sweeps expired data; 0: never
    # Archive compaction (docs/archive.md): an hour is merged once it ended this long ago, into
    # files of about the target size (at most 4 per hour); what it replaces is deleted after
    # delete_after_s, so a search that listed the hour just before still finds its files.
    archive_compact_interval_s: float = 900.0  # how often the API compacts; 0: never
    archive_compact_grace_s: float = 900.0
    archive_compact_target_bytes: int = 128 << 20
    archive_compact_row_group_rows: int = 122_880
    archive_compact_delete_after_s: float = 60.0

    # The ingest job.
    ingest_group: str = "strata-ingest"
    dedupe_ttl_s: int = 3600
    watermark_out_of_orderness_s: int = 30
    cassandra_table: str = "logs"
    # Storage-attached indexes the warm table carries (comma-separated: log_id, level, host,
    # trace_id, attributes). Empty: none, so a row costs Cassandra no index work; the ingest job's
    # set-up creates those listed and drops the others Strata made (docs/search.md, "Warm tier").
    warm_indexes: str = ""
    archive_prefix: str = "logs"  # s3://<bucket>/<prefix>/tenant=…/dt=…/hour=…/
    job_parallelism: int = 2

    # The Flink session cluster `strata job submit | list | cancel | savepoint` talk to (REST).
    flink_jobmanager: str = ""  # host:port; empty: this host on flink_rest_port
    flink_rest_port: int = 8081

    # The alerts job and its notifier.
    alerts_group: str = "strata-alerts"  # the job's consumer group on raw_topic
    alerts_topic: str = "alert_events"  # the job's state changes, read by `strata alerts notify`
    alerts_notifier_group: str = "strata-alert-notifier"
    alerts_lateness_s: int = 10  # event-time lateness a window waits for before it closes
    alerts_idle_s: int = 10  # a source split silent this long stops holding the watermark back
    alerts_rules_refresh_s: float = 5.0  # how soon a rule saved through the API takes effect
    # Groups the alerts job keeps at once per rule and per tenant; points of new groups past either
    # are counted and reported in the rule's history instead of evaluated (core/alerts/caps.py).
    alerts_max_groups_per_rule: int = 10_000
    alerts_max_groups_per_tenant: int = 100_000
    alerts_checkpoint_s: float = 5.0
    alerts_checkpoint_dir: Path | None = None  # default: <home>/checkpoints/alerts
    alerts_retry_max_s: float = 300.0  # longest wait between two delivery attempts
    alerts_give_up_s: float = 86_400.0  # a notification still undelivered after this is marked failed
    alerts_batch_wait_s: float = 0.3  # groups firing within this are sent as one message per channel
    alerts_search_url: str = ""  # base of the link to the matching records; empty: <api>/v1/logs/search
    # Webhook and Slack channels reach public addresses only; these hosts, addresses or networks
    # too (comma-separated: "hooks.internal,10.1.0.0/16"). Checked after DNS resolution.
    alerts_allowed_hosts: str = ""
    alerts_send_timeout_s: float = 10.0  # one webhook or Slack send, connect to status, in total
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "strata-alerts@localhost"
    smtp_starttls: bool = False
    smtp_tls: bool = False  # TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS
    smtp_ca_file: str = ""

    # Search API.
    search_tier_timeout_s: float = 10.0  # a tier slower than this is reported as timed out
    search_max_limit: int = 1000
    search_warm_scan_rows: int = 200_000  # rows one request may read from Cassandra
    search_warm_concurrency: int = 16  # partitions read at once
    search_cold_lookup_days: int = 400  # how far back GET /v1/logs/{id} looks in the archive
    tail_buffer_records: int = 10_000  # recent `logs` records each API process keeps for tail
    tail_buffer_s: float = 300.0
    # How often an open live tail asks PostgreSQL again whether its key still holds: a revoked or
    # expired key (or a disabled tenant) loses its stream within this many seconds.
    tail_key_check_s: float = 5.0

    # `strata stack up` with TLS (STRATA_STACK_TLS=1 or --tls): a local CA and certificates in
    # <home>/tls, and the broker's SASL_SSL listener on kafka_tls_port beside its plaintext one.
    stack_tls: bool = False
    # TLS and credentials of every client Strata opens (docs/stack.md, "Secured clusters"). A
    # service's own CA file wins over tls_ca_file; both empty: the system's trusted CAs.
    tls_ca_file: str = ""
    # Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; SASL with PLAIN or SCRAM-SHA-256/512.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_ca_file: str = ""
    kafka_ssl_cert_file: str = ""  # a client certificate (PEM), for brokers that require one
    kafka_ssl_key_file: str = ""  # its private key (PEM, unencrypted PKCS#8)
    # OpenSearch: https:// in opensearch_url turns TLS on; basic auth or a bearer token.
    opensearch_username: str = ""
    opensearch_password: str = ""
    opensearch_token: str = ""
    opensearch_ca_file: str = ""
    # Cassandra: password authentication and client-to-node encryption.
    cassandra_username: str = ""
    cassandra_password: str = ""
    cassandra_ssl: bool = False
    cassandra_ca_file: str = ""
    # PostgreSQL: libpq's sslmode (disable, prefer, require, verify-ca, verify-full).
    postgres_sslmode: str = "prefer"
    postgres_ca_file: str = ""
    # S3: https:// in s3_endpoint turns TLS on; this CA verifies a private server's certificate.
    s3_ca_file: str = ""
    # The API's and the syslog receiver's own TLS (both empty: plain). A client CA turns on
    # client certificates, which then identify a tenant as a key does (`strata tenant cert`).
    server_tls_cert_file: str = ""
    server_tls_key_file: str = ""
    server_tls_client_ca_file: str = ""
    server_tls_client_cert: str = "optional"  # optional or required, when a client CA is set

    # How long `strata stack up` waits for one service to become healthy.
    start_timeout_s: float = 240.0
    # How long a job or the API, at its start, retries a service that answers "not ready yet"
    # (a broker without a group coordinator, a cluster still recovering, a schema not agreed).
    service_wait_s: float = 120.0

    @field_validator(
        "topic_partitions",
        "cassandra_replication_factor",
        "archive_days",
        "metrics_1m_days",
        "metrics_1h_days",
        "metrics_1d_days",
        "log_metrics_flush_s",
        "opensearch_bulk_actions",
        "opensearch_bulk_size_mb",
        "opensearch_bulk_interval_ms",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("warm_indexes")
    @classmethod
    def _warm_indexes(cls, value: str) -> str:
        from schemas.projections import cql_sai_target

        for name in value.split(","):
            if name.strip():
                cql_sai_target(name)
        return value

    @field_validator("hot_days", "warm_days")
    @classmethod
    def _window(cls, value: int) -> int:
        if value < 0:
            raise ValueError("a tier window cannot be negative")
        return value

    @field_validator("archive_compact_target_bytes", "archive_compact_row_group_rows")
    @classmethod
    def _compact_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("identity_key")
    @classmethod
    def _identity_key(cls, value: str) -> str:
        if value and not 16 <= len(value.encode()) <= 64:
            raise ValueError("STRATA_IDENTITY_KEY must be 16 to 64 bytes long")
        return value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism")
    @classmethod
    def _kafka_security(cls, value: str) -> str:
        value = value.strip().upper()
        allowed = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"} | {
            "PLAIN",
            "SCRAM-SHA-256",
            "SCRAM-SHA-512",
        }
        if value not in allowed:
            raise ValueError(
                "a Kafka security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or SASL "
                "mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
            )
        return value

    @field_validator("postgres_sslmode")
    @classmethod
    def _sslmode(cls, value: str) -> str:
        modes = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        if value not in modes:
            raise ValueError(f"one of {', '.join(modes)}")
        return value

    @field_validator("server_tls_client_cert")
    @classmethod
    def _client_cert(cls, value: str) -> str:
        if value not in ("optional", "required"):
            raise ValueError("optional or required")
        return value

    @property
    def uses_local_stack(self) -> bool:
        """Whether every service is the local stack's: no Kafka, OpenSearch, Cassandra, S3 or
        PostgreSQL address is set. Pointing at any real cluster makes a deployment, which must
        bring its own secrets (``identity_key``)."""
        return not (
            self.kafka_bootstrap
            or self.opensearch_url
            or self.cassandra_hosts
            or self.s3_endpoint
            or self.postgres_host
        )

    @field_validator("opensearch_refresh_interval")
    @classmethod
    def _refresh_interval(cls, value: str) -> str:
        if not re.fullmatch(r"-1|\d+(ms|s|m)", value.strip()):
            raise ValueError("an OpenSearch time like 500ms, 1s or 1m (or -1: only on demand)")
        return value.strip()

    # Derived endpoints: an explicit setting wins, otherwise the local stack's address.
    @property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.bind_host}:{self.kafka_port}"

    @property
    def opensearch_endpoint(self) -> str:
        return self.opensearch_url or f"http://{self.bind_host}:{self.opensearch_port}"

    @property
    def warm_index_targets(self) -> tuple[str, ...]:
        """The warm table's index targets (``schemas.projections.CQL_SAI_TARGETS`` entries) wanted."""
        from schemas.projections import cql_sai_target

        names = (n for n in self.warm_indexes.split(",") if n.strip())
        return tuple(dict.fromkeys(cql_sai_target(n) for n in names))

    @property
    def cassandra_contact_points(self) -> list[str]:
        return [h.strip() for h in (self.cassandra_hosts or self.bind_host).split(",") if h.strip()]

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3_endpoint or f"http://{self.bind_host}:{self.s3_port}"

    @property
    def jobmanager_address(self) -> str:
        return self.flink_jobmanager or f"{self.bind_host}:{self.flink_rest_port}"

    @property
    def postgres_dsn(self) -> str:
        host = self.postgres_host or self.bind_host
        return (
            f"host={host} port={self.postgres_port} user={self.postgres_user} "
            f"password={self.postgres_password} dbname={self.postgres_db} sslmode={self.postgres_sslmode}"
            + (f" sslrootcert={ca}" if (ca := self.ca_file(self.postgres_ca_file)) else "")
        )

    def ca_file(self, own: str) -> str:
        """A service's CA file: its own setting, else ``tls_ca_file``; empty: the system's CAs."""
        return own or self.tls_ca_file

    @property
    def server_tls(self) -> bool:
        """Whether the API and the syslog receiver serve TLS."""
        return bool(self.server_tls_cert_file)

    @property
    def api_endpoint(self) -> str:
        scheme = "https" if self.server_tls else "http"
        return self.api_url or f"{scheme}://{self.bind_host}:{self.api_port}"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def flink_lib_dir(self) -> Path:
        """The one folder of connector jars every Strata job loads."""
        return self.home / "flink-lib"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
