"""The one entry point: raw input in, a :class:`Record` or a :class:`Rejected` out, never an exception.

    pipeline = RecordPipeline(PipelineConfig.load("strata-records.yaml"))
    result = pipeline.process(kafka_message_value)      # a raw_logs envelope (bytes or RawEnvelope)
    result = pipeline.process_line(b"...", tenant="acme", service="checkout")   # a bare line

Steps, in order: decode and size checks -> parse (configured patterns, explicit format or
auto-detection) -> normalize (time, level, names) -> validate (skew, size) -> enrich (static
metadata, trace ids) -> identity (log_id) -> mask PII -> mine the pattern.

``log_id`` is a keyed hash of the whole normalized entry (tenant, service, host, time, level,
environment, region, trace and span ids, message and every attribute), computed before masking
and keyed with ``identity_key``: the whole entry, so two logs that share a message and a
millisecond but not a trace id or a level stay two; before masking, so two lines that differ only
in a masked value (two client IPs in the same second) keep two ids; keyed, so the stored id cannot
be used to test guesses of the masked values. An entry without a time of its own gets the arrival
time, which a client's retry changes; in the id it is replaced by the envelope's ``entry_id``
when the collector gave one, so the retry lands on the same record. The same input and key give
the same id in every process.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from core.records.builtin_patterns import BUILTIN_PATTERNS
from core.records.config import PipelineConfig
from core.records.header import HeaderReader, plain_has_more_header, with_header, zone
from core.records.mask import Masker
from core.records.mining import Drain
from core.records.normalize import normalize_level, parse_timestamp, parse_with_format
from core.records.parsers import (
    FORMAT_PARSERS,
    SPAN_KEYS,
    TRACE_KEYS,
    TRACEPARENT_KEYS,
    Parsed,
    Parser,
    RegexPattern,
    detect_and_parse,
    from_mapping,
    to_str,
)
from schemas.envelope import EnvelopeError, RawEnvelope
from schemas.record import Level, Record, from_micros, micros
from schemas.rejection import Rejected, RejectReason

_MIN_US = -2_208_988_800_000_000  # 1900-01-01: older "times" are parse accidents, not events
_MAX_US = 7_258_118_400_000_000  # 2200-01-01
_LEVELS_BY_NAME = {lvl.value: lvl for lvl in Level}
_TRACE_ATTRIBUTE_KEYS = frozenset((*TRACE_KEYS, *SPAN_KEYS, *TRACEPARENT_KEYS))


def _now_us() -> int:
    return time.time_ns() // 1000


class RecordPipeline:
    """Turns envelopes or lines into records. One instance per process (or Flink subtask): it holds
    compiled patterns, maskers and the mined templates, which are its only state."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.config = cfg = config or PipelineConfig()
        self._parsers: dict[str, Parser] = dict(FORMAT_PARSERS)
        for name, spec in BUILTIN_PATTERNS.items():
            self._parsers[name] = RegexPattern(name, **spec)
        for name, pat in cfg.patterns.items():
            self._parsers[name] = RegexPattern(
                name, pat.regex, pat.time_format, pat.level_map, pat.kv_attributes
            )
        for svc_name, svc in cfg.services.items():
            for ref in [*svc.patterns, *([svc.format] if svc.format else [])]:
                if ref not in self._parsers and ref != "auto":
                    raise ValueError(f"service {svc_name!r} refers to unknown pattern or format {ref!r}")
        self._service_patterns: dict[str, list[Parser]] = {
            name: [self._parsers[p] for p in svc.patterns]
            for name, svc in cfg.services.items()
            if svc.patterns
        }
        self._service_format = {name: svc.format for name, svc in cfg.services.items() if svc.format}
        self._masker_default = Masker(cfg.masking.default)
        self._maskers = {t: Masker(r) for t, r in cfg.masking.tenants.items()}
        self._miners: dict[str, Drain] = {}
        self._id_key = cfg.identity_key.encode("utf-8")[:64]
        self._max_future_us = int(cfg.max_future_seconds * 1_000_000)
        self._max_past_us = int(cfg.max_past_days * 86_400_000_000)
        self._mask_enabled = cfg.masking.enabled
        self._mine_enabled = cfg.mining.enabled
        self._max_message_bytes = cfg.max_message_bytes
        self._max_attribute_bytes = cfg.max_attribute_bytes
        self._max_attributes = cfg.max_attributes
        self._max_record_bytes = cfg.max_record_bytes
        self._meta_cache: dict[tuple[str, str], tuple[str | None, str | None, dict[str, str]]] = {}
        self._headers = HeaderReader() if cfg.read_headers else None
        self._zone = zone(cfg.timezone)
        self._zones = {name: zone(svc.timezone) for name, svc in cfg.services.items() if svc.timezone}
        self._mine_max_chars = cfg.mining.max_message_chars
        self._mine_max_tokens = cfg.mining.max_tokens

    # -- entry points ------------------------------------------------------------------------

    def process(self, item: RawEnvelope | bytes | str) -> Record | Rejected:
        """One ``raw_logs`` message (envelope JSON bytes, or an already decoded envelope)."""
        try:
            if isinstance(item, RawEnvelope):
                env = item
            else:
                if len(item) > self.config.max_line_bytes * 2 + 65536:
                    return Rejected(RejectReason.TOO_LARGE, f"envelope of {len(item)} bytes")
                try:
                    env = RawEnvelope.decode(item)
                except EnvelopeError as exc:
                    return Rejected(RejectReason.MALFORMED_ENVELOPE, str(exc)[:300])
            return self._process_envelope(env)
        except Exception as exc:  # the promise is "never an exception": a bug becomes a DLQ entry
            return Rejected(RejectReason.INTERNAL, f"{type(exc).__name__}: {exc}"[:300])

    def mask_text(self, text: str, tenant: str | None = None) -> str:
        """``text`` masked as a record's message would be, with the tenant's rules (the default
        rules without one); unchanged when the configuration turns masking off."""
        if not self._mask_enabled:
            return text
        return self._maskers.get(tenant or "", self._masker_default).mask(text, {})

    def process_line(
        self,
        line: bytes | str,
        *,
        tenant: str | None = None,
        service: str | None = None,
        host: str | None = None,
        received_at: datetime | None = None,
        fmt: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Record | Rejected:
        """A bare line (a file, stdin, a syslog datagram), without an envelope around it."""
        try:
            tenant = tenant or self.config.default_tenant
            if not tenant:
                return Rejected(
                    RejectReason.MISSING_TENANT, "no tenant given and no default_tenant configured"
                )
            received_us = micros(received_at) if received_at is not None else _now_us()
            tags: list[str] = []
            if isinstance(line, bytes | bytearray):
                if len(line) > self.config.max_line_bytes:
                    return Rejected(RejectReason.TOO_LARGE, f"line of {len(line)} bytes")
                text = self._decode(bytes(line), tags)
            else:
                text = line
            return self._process_text(
                text, tenant, service, host, received_us, fmt, tags, dict(attributes or {}), "raw"
            )
        except Exception as exc:
            return Rejected(RejectReason.INTERNAL, f"{type(exc).__name__}: {exc}"[:300])

    def process_entry(
        self,
        entry: Mapping[str, Any],
        *,
        tenant: str,
        service: str | None = None,
        host: str | None = None,
        received_at: datetime | None = None,
    ) -> Record | Rejected:
        """An already structured entry (what an HTTP JSON collector receives)."""
        received = received_at if received_at is not None else from_micros(_now_us())
        return self.process(
            RawEnvelope(tenant=tenant, received_at=received, entry=dict(entry), service=service, host=host)
        )

    # -- mined patterns state ----------------------------------------------------------------

    def mining_state(self) -> bytes:
        """Every tenant's Drain templates as JSON bytes (for a checkpoint or a file)."""
        return orjson.dumps(
            {"version": 1, "tenants": {t: orjson.loads(d.to_bytes()) for t, d in self._miners.items()}}
        )

    def restore_mining_state(self, data: bytes | str) -> None:
        state = orjson.loads(data)
        self._miners = {t: Drain.from_bytes(orjson.dumps(s)) for t, s in state.get("tenants", {}).items()}

    def miner(self, tenant: str) -> Drain:
        d = self._miners.get(tenant)
        if d is None:
            m = self.config.mining
            d = self._miners[tenant] = Drain(
                depth=m.depth,
                similarity=m.similarity,
                max_children=m.max_children,
                max_clusters=m.max_clusters,
                count_wildcards=m.count_wildcards,
            )
        return d

    # -- steps -------------------------------------------------------------------------------

    @staticmethod
    def _decode(raw: bytes, tags: list[str]) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            tags.append("invalid_utf8")
            return raw.decode("utf-8", "replace")

    def _process_envelope(self, env: RawEnvelope) -> Record | Rejected:
        received_us = micros(env.received_at)
        tags: list[str] = []
        if env.entry is not None:
            parsed = from_mapping(env.entry, "structured")
            if isinstance(parsed, Rejected):
                return parsed
            return self._build(
                parsed,
                env.tenant,
                env.service,
                env.host,
                received_us,
                tags,
                env.attributes,
                env.source,
                env.entry_id,
            )
        if env.line_encoding == "base64":
            raw = env.line_bytes() or b""
            if len(raw) > self.config.max_line_bytes:
                return Rejected(RejectReason.TOO_LARGE, f"line of {len(raw)} bytes")
            text = self._decode(raw, tags)
        else:
            text = env.line or ""
        return self._process_text(
            text,
            env.tenant,
            env.service,
            env.host,
            received_us,
            env.format,
            tags,
            env.attributes,
            env.source,
            env.entry_id,
        )

    def _process_text(
        self,
        text: str,
        tenant: str,
        service: str | None,
        host: str | None,
        received_us: int,
        fmt: str | None,
        tags: list[str],
        extra: Mapping[str, str],
        source: str,
        entry_id: str | None = None,
    ) -> Record | Rejected:
        if len(text) > self.config.max_line_bytes and len(text.encode("utf-8", "replace")) > (
            self.config.max_line_bytes
        ):
            return Rejected(RejectReason.TOO_LARGE, f"line of more than {self.config.max_line_bytes} bytes")
        text = text.rstrip("\r\n")
        if not text or text.isspace():
            return Rejected(RejectReason.EMPTY, "empty line")
        parsed = self._parse(text, fmt, service)
        if isinstance(parsed, Rejected):
            return parsed
        if parsed.fmt in ("raw", "plain") and self._headers is not None and fmt != "raw":
            # No format claimed the line: read its header so the message mined is the message.
            key = service.strip().lower() if service else None
            tz = self._zones.get(key or "", self._zone)
            if parsed.fmt == "raw" or tz is not UTC or plain_has_more_header(parsed):
                h = self._headers.read(text, (tenant, key), received_us, tz)
                parsed = with_header(text, h, parsed)
                tags.extend(h.tags)
        return self._build(parsed, tenant, service, host, received_us, tags, extra, source, entry_id)

    def _parse(self, line: str, fmt: str | None, service: str | None) -> Parsed | Rejected:
        if service:
            key = service.strip().lower()
            for service_parser in self._service_patterns.get(key, ()):
                r = service_parser(line)
                if r is not None:
                    return r
            fmt = fmt or self._service_format.get(key)
        fmt = fmt or self.config.default_format
        if fmt == "auto":
            return detect_and_parse(line)
        parser = self._parsers.get(fmt)
        if parser is None:
            return Rejected(RejectReason.UNKNOWN_FORMAT, f"no format or pattern named {fmt!r}")
        r = parser(line)
        if r is None:
            return Rejected(RejectReason.NO_MATCH, f"line is not {fmt}")
        return r

    def _metadata(self, service: str, host: str) -> tuple[str | None, str | None, dict[str, str]]:
        """(environment, region, other metadata) from host, then service, then defaults tables."""
        key = (service, host)
        cached = self._meta_cache.get(key)
        if cached is not None:
            return cached
        cfg = self.config
        merged: dict[str, str] = dict(cfg.default_metadata)
        # Config keys are lower-cased on load, whatever lowercase_service/host say about records.
        svc = cfg.services.get(service.lower())
        if svc:
            merged.update(svc.metadata)
        hst = cfg.hosts.get(host.lower())
        if hst:
            merged.update(hst.metadata)  # the host is more specific than the service
        env = merged.pop("environment", None)
        region = merged.pop("region", None)
        result = (env, region, merged)
        if len(self._meta_cache) > 100_000:
            self._meta_cache.clear()
        self._meta_cache[key] = result
        return result

    def _build(
        self,
        p: Parsed,
        tenant: str,
        service_hint: str | None,
        host_hint: str | None,
        received_us: int,
        tags: list[str],
        extra: Mapping[str, str],
        source: str,
        entry_id: str | None = None,
    ) -> Record | Rejected:
        cfg = self.config
        attrs = p.attributes
        message = p.message
        if not isinstance(message, str):
            message = to_str(message)
        message = message.rstrip()
        if not message:
            return Rejected(RejectReason.MISSING_MESSAGE, "empty message")

        # time
        ts_raw = p.timestamp
        ts_us: int = received_us
        own_time = False  # whether ts_us is the entry's own time, not its arrival
        if ts_raw is None:
            tags.append("no_timestamp")
        else:
            parsed_us = (
                p.timestamp_us
                if p.timestamp_us is not None
                else parse_with_format(ts_raw, p.time_format, received_us)
                if p.time_format and isinstance(ts_raw, str)
                else parse_timestamp(ts_raw, received_us)
            )
            if parsed_us is not None:
                ts_us, own_time = parsed_us, True
            if parsed_us is None or not _MIN_US <= ts_us < _MAX_US:
                if cfg.on_bad_timestamp == "reject":
                    return Rejected(RejectReason.BAD_TIMESTAMP, f"cannot read time {to_str(ts_raw)[:100]!r}")
                attrs["original_timestamp"] = to_str(ts_raw)
                tags.append("bad_timestamp")
                ts_us, own_time = received_us, False
            elif ts_us - received_us > self._max_future_us:
                tags.append("future_timestamp")
                if cfg.future_policy == "arrival":
                    attrs["original_timestamp"] = to_str(ts_raw)
                    ts_us, own_time = received_us, False
            elif received_us - ts_us > self._max_past_us:
                tags.append("old_timestamp")
                if cfg.past_policy == "arrival":
                    attrs["original_timestamp"] = to_str(ts_raw)
                    ts_us, own_time = received_us, False

        # level
        level = None
        raw_level = p.level
        if raw_level is not None:
            level = _LEVELS_BY_NAME.get(raw_level) if isinstance(raw_level, str) else None
            if level is None:
                level = normalize_level(raw_level)
                if level is None:
                    attrs["level_raw"] = to_str(raw_level)
        if level is None:
            level = Level.INFO

        # names: the envelope's (what the sender declared to the collector) win over the line's
        service = _name(service_hint or p.service, cfg.default_service, cfg.lowercase_service)
        host = _name(host_hint or p.host, cfg.default_host, cfg.lowercase_host)

        # enrichment
        environment, region, meta = self._metadata(service, host)
        environment = p.environment or environment
        region = p.region or region
        for k, v in meta.items():
            attrs.setdefault(k, v)
        for k, v in extra.items():
            attrs.setdefault(k, v)
        trace_id, span_id = p.trace_id, p.span_id
        if trace_id is None and attrs and not _TRACE_ATTRIBUTE_KEYS.isdisjoint(attrs):
            trace_id, span_id = _trace_from_attributes(attrs, span_id)
        if trace_id is not None:
            trace_id = trace_id.strip().lower() or None
        if span_id is not None:
            span_id = span_id.strip().lower() or None
        # Ids are exact-match index terms; something this long is not one, so it stays an attribute.
        if trace_id is not None and len(trace_id) > MAX_ID_CHARS:
            attrs["trace_id_raw"], trace_id = trace_id, None
        if span_id is not None and len(span_id) > MAX_ID_CHARS:
            attrs["span_id_raw"], span_id = span_id, None

        # identity, on normalized unmasked values (see the module docstring)
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (a Python caller's str, "\udcff"): no UTF-8 store accepts them.
            message = message.encode("utf-8", "replace").decode("utf-8")
            tags.append("invalid_utf8")
        when = f"t{ts_us}" if own_time or entry_id is None else f"e{entry_id}"
        log_id = _identity(
            self._id_key,
            (tenant, service, host, when, level.value, environment, region, trace_id, span_id, message),
            attrs,
        )

        # A flattened object repeats its parent key in every child's name, so a few hundred KiB
        # of JSON can become megabytes of attributes: keep the first ones, say how many were not.
        if len(attrs) > self._max_attributes:
            attrs = _cap_attributes(attrs, self._max_attributes, tags)

        # masking
        counts: dict[str, int] = {}
        if self._mask_enabled:
            masker = self._maskers.get(tenant, self._masker_default)
            message = masker.mask(message, counts)
            host = masker.mask_host(host, counts)
            if attrs:
                attrs = masker.mask_attributes(attrs, counts)

        # size limit, after masking so a cut never leaves half a card number unmasked
        limit = self._max_message_bytes
        if len(message) * 4 > limit:
            encoded = message.encode("utf-8")
            if len(encoded) > limit:
                message = encoded[:limit].decode("utf-8", "ignore")
                tags.append("truncated")
                attrs["original_size"] = str(len(encoded))
        limit_a = self._max_attribute_bytes
        if attrs:
            attrs = _limit_attributes(attrs, limit_a, tags)

        # pattern
        pattern_id = pattern = None
        if self._mine_enabled:
            # A multi-line event (a stack trace) is grouped by its first line, its headline.
            newline = message.find("\n")
            headline = message if newline < 0 else message[:newline]
            # A budget per record: mining time grows with the message, so a huge one is not mined.
            if len(headline) > self._mine_max_chars or (
                len(headline) > self._mine_max_tokens and len(headline.split()) > self._mine_max_tokens
            ):
                tags.append("mining_skipped")
            else:
                miner = self._miners.get(tenant) or self.miner(tenant)
                cluster = miner.add(headline)
                pattern_id, pattern = cluster.pattern_id, cluster.template

        # Every attribute is at most a 256-character key and a max_attribute_bytes value by now, so
        # most records are cleared by their attribute count alone, without summing their sizes.
        worst = (len(message) + len(pattern or "") + len(attrs) * (MAX_ATTRIBUTE_KEY_CHARS + limit_a)) * 6
        if worst + _RECORD_OVERHEAD_BYTES > self._max_record_bytes:
            too_large = _too_large(message, pattern, attrs, self._max_record_bytes)
            if too_large is not None:
                return too_large

        # Positional, in FIELDS order (checked at import by schemas.record): keywords cost more here.
        return Record(
            log_id,
            tenant,
            from_micros(ts_us),
            from_micros(received_us),
            level,
            service,
            host,
            environment,
            region,
            message,
            trace_id,
            span_id,
            attrs,
            tags,
            p.fmt,
            pattern_id,
            pattern,
            counts,
        )


MAX_ID_CHARS = 256
MAX_ATTRIBUTE_KEY_CHARS = 256


def _identity(key: bytes, fields: tuple[str | None, ...], attrs: Mapping[str, str]) -> str:
    """A keyed 128-bit hash of ``fields`` and ``attrs`` (in key order), serialized as JSON, so no
    two different entries can encode to the same bytes."""
    h = hashlib.blake2b(digest_size=16, key=key)
    try:
        h.update(orjson.dumps((fields, attrs), option=orjson.OPT_SORT_KEYS))
    except orjson.JSONEncodeError:
        # Lone surrogates in an attribute (a Python caller's str): the same framing, by hand.
        for value in (*fields, *itertools.chain.from_iterable(sorted(attrs.items()))):
            data = b"\xff" if value is None else value.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(4, "big"))
            h.update(data)
    return h.hexdigest()


# What a record holds besides its message, pattern and attributes (ids, names, times, tags),
# generously: the size check below only has to be right about records near the limit.
_RECORD_OVERHEAD_BYTES = 4096


def _cap_attributes(attrs: dict[str, str], limit: int, tags: list[str]) -> dict[str, str]:
    """The first ``limit - 1`` attributes and ``attributes_dropped`` (how many were left out)."""
    kept = dict(itertools.islice(attrs.items(), limit - 1))
    kept["attributes_dropped"] = str(len(attrs) - len(kept))
    tags.append("attributes_dropped")
    return kept


def _too_large(message: str, pattern: str | None, attrs: dict[str, str], limit: int) -> Rejected | None:
    """A rejection when the record's JSON would exceed ``limit`` bytes, else None.

    Kafka (1 MB per message by default), OpenSearch's bulk requests and Cassandra's mutations all
    refuse an oversized record, and a sink that cannot write one restarts the job on the same
    offset forever; a rejection goes to the dead-letter topic instead and the job moves on."""
    chars = len(message) + len(pattern or "") + sum(len(k) + len(v) for k, v in attrs.items())
    # A character is at most 6 bytes of JSON (a \u escape), so most records are cleared by counting.
    if chars * 6 + _RECORD_OVERHEAD_BYTES <= limit:
        return None
    size = (
        len(orjson.dumps(message))
        + len(orjson.dumps(pattern))
        + len(orjson.dumps(attrs))
        + _RECORD_OVERHEAD_BYTES
    )
    if size <= limit:
        return None
    return Rejected(
        RejectReason.TOO_LARGE,
        f"the record would be about {size} bytes once flattened ({len(attrs)} attributes, "
        f"a message of {len(message)} characters); the limit is max_record_bytes={limit}",
    )


def _limit_attributes(attrs: dict[str, str], limit: int, tags: list[str]) -> dict[str, str]:
    """Values cut to ``limit`` UTF-8 bytes and keys to :data:`MAX_ATTRIBUTE_KEY_CHARS` characters,
    tagging the record ``attribute_truncated``; ``attrs`` itself when nothing is too long.

    Both stores index every attribute as one term (OpenSearch's flat_object, Cassandra's SAI on the
    map's entries) and refuse a whole write with an oversized term, so a record that kept one would
    never be stored."""
    if all(len(v) * 4 <= limit and len(k) <= MAX_ATTRIBUTE_KEY_CHARS for k, v in attrs.items()):
        return attrs
    out: dict[str, str] = {}
    cut = False
    for key, value in attrs.items():
        if len(key) > MAX_ATTRIBUTE_KEY_CHARS:
            short = key[:MAX_ATTRIBUTE_KEY_CHARS]
            if short in out or short in attrs:
                # Long keys that share their first 256 characters (the children of one long-named
                # object) stay apart: a hash of the whole key replaces the tail.
                digest = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).hexdigest()
                short = f"{key[: MAX_ATTRIBUTE_KEY_CHARS - 17]}~{digest}"
            key, cut = short, True
        if len(value) * 4 > limit:
            encoded = value.encode("utf-8")
            if len(encoded) > limit:
                value, cut = encoded[:limit].decode("utf-8", "ignore"), True
        out.setdefault(key, value)
    if cut:
        tags.append("attribute_truncated")
    return out


def _name(value: str | None, default: str, lower: bool) -> str:
    if not value:
        return default
    value = value.strip()
    if lower:
        value = value.lower()
    return value[:256] or default


def _trace_from_attributes(attrs: dict[str, str], span_id: str | None) -> tuple[str | None, str | None]:
    trace_id = None
    for key in TRACE_KEYS:
        if key in attrs:
            trace_id = attrs.pop(key)
            break
    if span_id is None:
        for key in SPAN_KEYS:
            if key in attrs:
                span_id = attrs.pop(key)
                break
    if trace_id is None:
        for key in TRACEPARENT_KEYS:
            value = attrs.get(key)
            if value:
                parts = value.strip().split("-")
                if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
                    del attrs[key]
                    trace_id, span_id = parts[1], span_id or parts[2]
                break
    return trace_id, span_id
