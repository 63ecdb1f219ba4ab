"""``strata alerts notify``: alert events from Kafka → history and outbox in PostgreSQL → channels.

Two loops in one process:

- intake: reads ``alert_events`` (its own consumer group), and for each batch, in one PostgreSQL
  transaction, records what is news in ``alert_history`` (see :func:`core.alerts.messages.admit`)
  and queues one ``alert_notifications`` row per channel that is owed a message. Kafka offsets are
  committed after PostgreSQL, so a crash in between replays the batch, which changes nothing.
- delivery: claims due rows (``FOR UPDATE SKIP LOCKED`` with a lease, so notifiers can run side
  by side and a crashed one's rows come back), groups them into one message per rule, state and
  channel, sends, and on failure schedules the next attempt with exponential backoff and jitter,
  up to ``alerts_retry_max_s`` apart, for ``alerts_give_up_s``. A receiver that is down delays its
  messages; it loses none, and it never slows the job, which only writes to Kafka.
"""

from __future__ import annotations

import hashlib
import logging
import random
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.alerts.egress import EgressPolicy, guarded_client, time_budget
from core.alerts.evaluate import AlertEvent, State
from core.alerts.messages import Decision, GroupSeen, admit, after, email_text, slack_body, webhook_body
from core.alerts.rules import Rule
from infra.settings import Settings
from schemas.record import from_micros

log = logging.getLogger("strata.alerts.notify")

LEASE_S = 60.0  # a claimed row not settled within this is claimed again (its notifier died)
SEND_TIMEOUT_S = 10.0
MAX_CLAIM = 200


def _ts(ms: int | None) -> Any:
    return None if ms is None else from_micros(ms * 1000)


def channel_key(channel: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(channel, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def backoff_s(attempts: int, cap_s: float) -> float:
    """1 s, 2 s, 4 s … up to ``cap_s``, each ±20 % so receivers coming back are not stampeded."""
    return min(cap_s, 2.0 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)


def smtp_connection(settings: Settings) -> smtplib.SMTP:
    """A connection to the mail server, encrypted as configured: TLS from the first byte
    (``smtp_tls``) or upgraded with STARTTLS (``smtp_starttls``). Either way the server's
    certificate and name are verified (``smtp_ca_file`` or ``tls_ca_file``, else the system's CAs):
    ``smtplib``'s own default context would accept any certificate."""
    context = None
    if settings.smtp_tls or settings.smtp_starttls:
        context = ssl.create_default_context(cafile=settings.ca_file(settings.smtp_ca_file) or None)
    if settings.smtp_tls:
        return smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=SEND_TIMEOUT_S, context=context
        )
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SEND_TIMEOUT_S)
    if context is not None:
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


class DeliveryError(Exception):
    pass


# -- intake --------------------------------------------------------------------------------------


def _load_rule(conn: psycopg.Connection[Any], rule_id: str, tenant: str) -> Rule | None:
    row = conn.execute(
        "SELECT id, tenant_id, revision, enabled, spec FROM alert_rules WHERE id = %s AND tenant_id = %s",
        (rule_id, tenant),
    ).fetchone()
    if row is None:
        return None
    try:
        return Rule.from_stored(row[0], row[1], row[2], row[3], row[4])
    except ValueError:
        return None


def record_events(conn: psycopg.Connection[Any], events: list[AlertEvent]) -> int:
    """Record ``events`` (in the job's order) and queue their notifications; returns how many
    notifications were queued. Runs in the caller's transaction."""
    queued = 0
    rules: dict[str, Rule | None] = {}
    for event in events:
        row = conn.execute(
            "SELECT state, notified, window_end, event_id FROM alert_groups "
            "WHERE rule_id = %s AND group_id = %s FOR UPDATE",
            (event.rule_id, event.group_id),
        ).fetchone()
        seen = None if row is None else GroupSeen(row[0], row[1], int(row[2].timestamp() * 1000), row[3])
        decision: Decision = admit(seen, event)
        if not decision.record:
            continue
        if event.rule_id not in rules:
            rules[event.rule_id] = _load_rule(conn, event.rule_id, event.tenant)
        rule = rules[event.rule_id]
        if not event.rule_name and seen is not None:
            # A rule deleted while firing: the job no longer knows its name; the history does.
            named = conn.execute(
                "SELECT rule_name, severity FROM alert_history WHERE event_id = %s", (seen.event_id,)
            ).fetchone()
            if named:
                event.rule_name, event.severity = named
        conn.execute(
            "INSERT INTO alert_history (event_id, tenant_id, rule_id, rule_name, state, notify, severity,"
            " group_id, group_values, value, comparison, threshold, window_start, window_end, since,"
            " samples, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (
                event.event_id,
                event.tenant,
                event.rule_id,
                event.rule_name or event.rule_id,
                str(event.state),
                decision.notify,
                event.severity,
                event.group_id,
                Jsonb(event.group),
                event.value,
                event.comparison,
                event.threshold,
                _ts(event.window_start_ms),
                _ts(event.window_end_ms),
                _ts(event.since_ms),
                Jsonb(event.samples),
                event.reason,
            ),
        )
        new = after(seen, event, decision)
        conn.execute(
            "INSERT INTO alert_groups (rule_id, group_id, tenant_id, state, notified, window_end, event_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (rule_id, group_id) DO UPDATE SET"
            " state = excluded.state, notified = excluded.notified, window_end = excluded.window_end,"
            " event_id = excluded.event_id",
            (
                event.rule_id,
                event.group_id,
                event.tenant,
                new.state,
                new.notified,
                _ts(new.window_end_ms),
                new.event_id,
            ),
        )
        if not decision.notify:
            continue
        if rule is not None:
            channels = [c.model_dump(mode="json") for c in rule.channels]
        elif seen is not None:
            # Resolving for a deleted rule: tell the channels that were told of the firing.
            channels = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT channel FROM alert_notifications WHERE event_id IN ("
                    " SELECT event_id FROM alert_history"
                    " WHERE rule_id = %s AND group_id = %s AND state = 'FIRING')",
                    (event.rule_id, event.group_id),
                ).fetchall()
            ]
        else:
            channels = []
        for channel in channels:
            conn.execute(
                "INSERT INTO alert_notifications (event_id, tenant_id, rule_id, channel, channel_key)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id, channel_key) DO NOTHING",
                (event.event_id, event.tenant, event.rule_id, Jsonb(channel), channel_key(channel)),
            )
            queued += 1
    return queued


# -- delivery ------------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One message: a rule's events of one state for one channel."""

    ids: list[int]
    channel: dict[str, Any]
    rule: Rule | None
    events: list[AlertEvent]
    attempts: int
    created_at: Any


class Sender:
    """Sends one message on its channel; raises DeliveryError with what went wrong."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.search_url = settings.alerts_search_url or f"{settings.api_endpoint}/v1/logs/search"
        self.budget_s = settings.alerts_send_timeout_s
        self.http = guarded_client(
            EgressPolicy.parse(settings.alerts_allowed_hosts),
            min(SEND_TIMEOUT_S, self.budget_s),
            headers={"User-Agent": "strata-alerts/1"},
        )

    def close(self) -> None:
        self.http.close()

    def send(self, out: Outgoing) -> None:
        kind = out.channel.get("type")
        if kind in ("webhook", "slack"):
            body = (webhook_body if kind == "webhook" else slack_body)(out.rule, out.events, self.search_url)
            headers = dict(out.channel.get("headers") or {})
            try:
                # Only the status is read, never the reply: what a receiver answers must not reach
                # the tenant (the history shows delivery errors), and a huge reply costs nothing.
                with (
                    time_budget(self.budget_s),
                    self.http.stream("POST", out.channel["url"], json=body, headers=headers) as response,
                ):
                    status = response.status_code
            except httpx.HTTPError as exc:
                raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
            if status >= 300:
                raise DeliveryError(f"HTTP {status} from {_origin(out.channel['url'])}")
        elif kind == "email":
            subject, text = email_text(out.rule, out.events, self.search_url)
            message = EmailMessage()
            message["Subject"] = subject
            message["From"] = self.settings.smtp_from
            message["To"] = ", ".join(out.channel["to"])
            message.set_content(text)
            s = self.settings
            try:
                with smtp_connection(s) as smtp:
                    if s.smtp_user:
                        smtp.login(s.smtp_user, s.smtp_password)
                    smtp.send_message(message)
            except (OSError, smtplib.SMTPException) as exc:
                raise DeliveryError(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from exc
        else:
            raise DeliveryError(f"unknown channel type {kind!r}")


def _origin(url: str) -> str:
    """The scheme, host and port of ``url``: enough to say which receiver failed, without the
    path or query, which often hold the receiver's own secret (Slack's webhook token)."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")


def _history_event(row: dict[str, Any]) -> AlertEvent:
    def ms(ts: Any) -> int | None:
        return None if ts is None else int(ts.timestamp() * 1000)

    return AlertEvent(
        event_id=row["event_id"],
        tenant=row["tenant_id"],
        rule_id=row["rule_id"],
        rule_name=row["rule_name"],
        revision=0,
        severity=row["severity"],
        state=State(row["state"]),
        notify=True,
        group=row["group_values"],
        group_id=row["group_id"],
        value=row["value"],
        comparison=row["comparison"],
        threshold=row["threshold"],
        window_start_ms=ms(row["window_start"]) or 0,
        window_end_ms=ms(row["window_end"]) or 0,
        since_ms=ms(row["since"]),
        samples=row["samples"],
        reason=row["reason"],
    )


def claim(conn: psycopg.Connection[Any], batch_wait_s: float) -> list[Outgoing]:
    """Due notifications, leased to this notifier and grouped into messages."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # Messages of one rule and channel go out in the order their states changed: a row waits
        # while an earlier pending row of the same rule and channel holds another state (a
        # RESOLVED never overtakes its FIRING, whose send may be failing and backing off), since
        # the claimed messages are sent in parallel.
        cur.execute(
            "UPDATE alert_notifications n SET next_attempt_at = now() + make_interval(secs => %s)"
            " WHERE n.id IN (SELECT a.id FROM alert_notifications a"
            "  JOIN alert_history ha ON ha.event_id = a.event_id WHERE a.status = 'pending'"
            "  AND a.next_attempt_at <= now() AND a.created_at <= now() - make_interval(secs => %s)"
            "  AND NOT EXISTS (SELECT 1 FROM alert_notifications b"
            "   JOIN alert_history hb ON hb.event_id = b.event_id WHERE b.status = 'pending'"
            "   AND b.rule_id = a.rule_id AND b.channel_key = a.channel_key AND b.id < a.id"
            "   AND hb.state <> ha.state)"
            "  ORDER BY a.id LIMIT %s FOR UPDATE OF a SKIP LOCKED)"
            " RETURNING n.id, n.event_id, n.rule_id, n.tenant_id, n.channel, n.channel_key, n.attempts,"
            " n.created_at",
            (LEASE_S, batch_wait_s, MAX_CLAIM),
        )
        rows = cur.fetchall()
        if not rows:
            return []
        cur.execute("SELECT * FROM alert_history WHERE event_id = ANY(%s)", ([r["event_id"] for r in rows],))
        history = {h["event_id"]: h for h in cur.fetchall()}
    rules: dict[str, Rule | None] = {}
    groups: dict[tuple[str, str, str], Outgoing] = {}
    for r in rows:
        h = history.get(r["event_id"])
        if h is None:
            continue
        if r["rule_id"] not in rules:
            rules[r["rule_id"]] = _load_rule(conn, r["rule_id"], r["tenant_id"])
        key = (r["rule_id"], h["state"], r["channel_key"])
        out = groups.get(key)
        if out is None:
            out = groups[key] = Outgoing(
                [], r["channel"], rules[r["rule_id"]], [], r["attempts"], r["created_at"]
            )
        out.ids.append(r["id"])
        out.events.append(_history_event(h))
        out.attempts = max(out.attempts, r["attempts"])
        out.created_at = min(out.created_at, r["created_at"])
    for out in groups.values():
        out.events.sort(key=lambda e: (e.window_end_ms, sorted(e.group.items())))
    return list(groups.values())


def settle(conn: psycopg.Connection[Any], out: Outgoing, error: str | None, settings: Settings) -> None:
    if error is None:
        conn.execute(
            "UPDATE alert_notifications SET status = 'sent', sent_at = now(), attempts = attempts + 1,"
            " last_error = NULL WHERE id = ANY(%s)",
            (out.ids,),
        )
        return
    attempts = out.attempts + 1
    age_s = time.time() - out.created_at.timestamp()
    if age_s > settings.alerts_give_up_s:
        conn.execute(
            "UPDATE alert_notifications SET status = 'failed', attempts = attempts + 1, last_error = %s"
            " WHERE id = ANY(%s)",
            (error[:1000], out.ids),
        )
        log.error("gave up on a notification after %d attempts: %s", attempts, error)
        return
    conn.execute(
        "UPDATE alert_notifications SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = ANY(%s)",
        (error[:1000], backoff_s(attempts, settings.alerts_retry_max_s), out.ids),
    )


# -- the process ---------------------------------------------------------------------------------


class Notifier:
    """Both loops; :meth:`start` runs them on threads, :meth:`stop` ends them."""

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str | None = None,
        group_id: str | None = None,
        start_at: str = "earliest",
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.alerts_topic
        self.group_id = group_id or settings.alerts_notifier_group
        self.start_at = start_at
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> Notifier:
        for target, name in ((self._intake, "alert-intake"), (self._deliver, "alert-delivery")):
            thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> Notifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _guard(self, target: Any) -> None:
        # A loop that dies on PostgreSQL or Kafka being away starts over after a pause, with
        # nothing lost: uncommitted offsets and unsettled rows are simply taken up again.
        while not self._stop.is_set():
            try:
                target()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                log.warning("%s failed, restarting in 2 s: %s", threading.current_thread().name, exc)
                self._stop.wait(2.0)

    def _intake(self) -> None:
        from confluent_kafka import Consumer

        from connectors.kafka.ready import ensure_alerts_topic
        from connectors.kafka.security import librdkafka_security

        ensure_alerts_topic(self.settings, self.topic)  # the notifier may start before the job
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_servers,
                "group.id": self.group_id,
                "auto.offset.reset": self.start_at,
                "enable.auto.commit": False,
                **librdkafka_security(self.settings),
            }
        )
        consumer.subscribe([self.topic])
        try:
            with psycopg.connect(self.settings.postgres_dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    messages = consumer.consume(num_messages=500, timeout=0.1)
                    events = []
                    read = 0
                    for m in messages:
                        value = m.value()
                        if m.error():
                            log.warning("reading %s: %s", self.topic, m.error())
                            continue
                        read += 1
                        if value is None:
                            continue
                        try:
                            events.append(AlertEvent.from_json(value))
                        except (ValueError, TypeError, KeyError) as exc:
                            log.error("skipping an unreadable alert event: %s", exc)
                    if not read:
                        continue
                    with conn.transaction():
                        queued = record_events(conn, events)
                    consumer.commit(asynchronous=False)
                    if queued:
                        self._wake.set()
        finally:
            consumer.close()

    def _deliver(self) -> None:
        sender = Sender(self.settings)
        pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="alert-send")
        try:
            with psycopg.connect(self.settings.postgres_dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    batch = claim(conn, self.settings.alerts_batch_wait_s)
                    if not batch:
                        self._wake.wait(0.25)
                        if self._wake.is_set():
                            self._wake.clear()
                            self._stop.wait(self.settings.alerts_batch_wait_s)  # let a batch gather
                        continue
                    futures = [(out, pool.submit(sender.send, out)) for out in batch]
                    for out, future in futures:
                        try:
                            future.result()
                            error = None
                        except DeliveryError as exc:
                            error = str(exc)
                        except Exception as exc:
                            error = f"{type(exc).__name__}: {exc}"
                        if error:
                            log.warning(
                                "notification to %s failed (attempt %d): %s",
                                out.channel.get("type"),
                                out.attempts + 1,
                                error,
                            )
                        settle(conn, out, error, self.settings)
        finally:
            pool.shutdown(wait=False)
            sender.close()
