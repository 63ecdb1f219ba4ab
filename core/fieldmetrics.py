"""Metrics from fields: rules that turn a field of matching records (``latency=722ms``) into
per-minute count, sum, min, max and quantiles, rolled up to hours and days.

Pure logic, shared by the API (rule validation, ``/v1/metrics/rules``, ``rule=`` on
``/v1/metrics/logs``), the store (:mod:`connectors.opensearch.field_metrics`) and whatever
evaluates the rules on the stream.

A rule::

    MetricRuleSpec.model_validate({
        "name": "checkout latency",
        "filter": {"services": ["checkout"], "levels": ["INFO"], "q": "path:/cart*"},
        "field": "latency",
        "unit": "ms",
    })

The field is read from the record's attributes (the pipeline makes ``key=value`` pairs of a line
attributes), else from a ``field=value`` pair in the message; the value is a number with an
optional unit (:func:`core.sketch.parse_measure`). A matching record whose field is absent or not
a number counts in ``missing``, not in the statistics.

Exactness is the one of :mod:`core.metrics`: a bucket's value is stored as contributions, each
keyed by the series, the bucket and the Kafka position of the record that opened it, written only
at checkpoints. A contribution here carries a :class:`core.sketch.Sketch` instead of a count, and
sketches merge exactly, so the reader merges a step's contributions and buckets into one sketch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.alerts.query import Predicate, compile_query
from core.alerts.rules import RuleFilter
from core.metrics import RESOLUTIONS, Store, bucket_start, index_suffix
from core.ruleindex import TenantServiceIndex
from core.sketch import Measure, Sketch, parse_measure
from schemas.record import Level, Record, micros

STATS = ("count", "sum", "min", "max", "avg", "p50", "p95", "p99")
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
FIELD_GROUP_BY = ("service", "level")
ATTRIBUTE_PREFIX = "attributes."

# A field name as the pipeline makes attribute names of ``key=value`` pairs and JSON keys.
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_SEP = "\x1f"

# What a bare number means under each unit hint, in the base unit the sketch keeps (ms, bytes).
_HINT_SCALE: dict[str, tuple[str, float]] = {
    "ms": ("ms", 1.0),
    "s": ("ms", 1000.0),
    "us": ("ms", 1e-3),
    "ns": ("ms", 1e-6),
    "bytes": ("bytes", 1.0),
    "": ("", 1.0),
}
Unit = Literal["", "ms", "s", "us", "ns", "bytes"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MetricRuleSpec(_Strict):
    """What a user writes: which records, which field, in which unit."""

    name: str = Field(min_length=1, max_length=200)
    filter: RuleFilter = Field(default_factory=RuleFilter)
    field: str = Field(description="an attribute name (latency, bytes, status), or attributes.<name>")
    unit: Unit = Field(
        default="",
        description="what a bare number means: ms, s, us, ns or bytes; values with a unit are "
        "read in it (1.5s is 1500 ms), and a value of another kind (2 KiB under ms) counts as missing",
    )
    enabled: bool = True

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        name = value.removeprefix(ATTRIBUTE_PREFIX)
        if not _FIELD.match(name):
            raise ValueError(
                f"field {value!r} is not a field name: use an attribute such as latency, bytes or "
                "status (letters, digits, '_', '.', '-'; starting with a letter or '_')"
            )
        return name


class MetricRule(MetricRuleSpec):
    """A stored rule: the spec plus its identity."""

    id: str
    tenant: str
    revision: int = 1

    @classmethod
    def from_stored(
        cls, rule_id: str, tenant: str, revision: int, enabled: bool, spec: dict[str, Any]
    ) -> MetricRule:
        return cls.model_validate(
            {**spec, "id": rule_id, "tenant": tenant, "revision": revision, "enabled": enabled}
        )


# -- reading a field --------------------------------------------------------------------------


def _pair_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf'(?:^|[\s,;{{(\[])(?:{re.escape(name)})[=:]\s?"?([^\s,;"}})\]]+)')


def read_value(record: Record, name: str, unit: str, pair: re.Pattern[str] | None = None) -> float | None:
    """The field's value in the sketch's base unit (ms, bytes, or the number itself), or None.

    >>> read_value(Record(..., attributes={"latency": "1.5s"}), "latency", "ms")
    1500.0
    """
    text = record.attributes.get(name)
    if text is None:
        match = (pair or _pair_pattern(name)).search(record.message)
        if match is None:
            return None
        text = match.group(1)
    measure = parse_measure(text)
    if measure is None:
        return None
    return in_unit(measure, unit)


def in_unit(measure: Measure, unit: str) -> float | None:
    kind, scale = _HINT_SCALE[unit]
    if measure.unit == "":
        return measure.value * scale
    if kind and measure.unit != kind:
        return None  # a size where a duration was asked for: not this rule's quantity
    return measure.value


# -- matching records against rules -----------------------------------------------------------


class Measurement:
    """One record's contribution to one rule: its labels, event time and value (None: missing)."""

    __slots__ = ("level", "rule_id", "service", "ts_s", "value")

    def __init__(self, rule_id: str, service: str, level: str, ts_s: int, value: float | None) -> None:
        self.rule_id = rule_id
        self.service = service
        self.level = level
        self.ts_s = ts_s
        self.value = value

    def __repr__(self) -> str:
        return f"Measurement({self.rule_id!r}, {self.service!r}, {self.level!r}, {self.ts_s}, {self.value})"


@dataclass(slots=True)
class _Compiled:
    rule: MetricRule
    levels: frozenset[Level]
    attributes: tuple[tuple[str, str], ...]
    query: Predicate | None
    pair: re.Pattern[str]

    def measure(self, record: Record, ts_s: int) -> Measurement | None:
        if self.levels and record.level not in self.levels:
            return None
        for key, expected in self.attributes:
            if record.attributes.get(key) != expected:
                return None
        if self.query is not None and not self.query(record):
            return None
        value = read_value(record, self.rule.field, self.rule.unit, self.pair)
        return Measurement(self.rule.id, record.service, str(record.level), ts_s, value)


class FieldRules:
    """The enabled rules, indexed by tenant and service so that a record no rule could match costs
    two dictionary lookups."""

    def __init__(self, rules: Iterable[MetricRule]) -> None:
        self._index: TenantServiceIndex[_Compiled] = TenantServiceIndex()
        self.rules: dict[str, MetricRule] = {}
        for rule in rules:
            if not rule.enabled:
                continue
            self.rules[rule.id] = rule
            compiled = _Compiled(
                rule,
                frozenset(rule.filter.levels),
                tuple(sorted(rule.filter.attributes.items())),
                compile_query(rule.filter.q) if rule.filter.q else None,
                _pair_pattern(rule.field),
            )
            self._index.add(rule.tenant, rule.filter.services, compiled)

    def __len__(self) -> int:
        return len(self.rules)

    def wants(self, tenant: str, service: str) -> bool:
        """Whether any rule could match a record of this tenant and service."""
        return self._index.wants(tenant, service)

    def measurements(self, record: Record) -> list[Measurement]:
        """What ``record`` contributes to each rule it matches; usually nothing."""
        candidates = self._index.candidates(record.tenant, record.service)
        if not candidates:
            return []
        ts_s = micros(record.timestamp) // 1_000_000
        out = []
        for compiled in candidates:
            m = compiled.measure(record, ts_s)
            if m is not None:
                out.append(m)
        return out


def measure_json(rules: FieldRules, data: bytes) -> list[tuple[str, str, Measurement]]:
    """(tenant, log_id, measurement) for each rule a record of the ``logs`` topic (its JSON)
    matches. A record no rule's tenant and service could match costs its JSON parse and two
    lookups; raises ValueError for what is not a record.
    """
    doc = orjson.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if not rules.wants(doc.get("tenant"), doc.get("service")):  # type: ignore[arg-type]
        return []
    try:
        record = Record.from_dict(doc)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a record: {exc!r}") from exc
    return [(record.tenant, record.log_id, m) for m in rules.measurements(record)]


# -- contributions ----------------------------------------------------------------------------


def contribution_id(
    tenant: str,
    rule_id: str,
    service: str,
    level: str,
    resolution: str,
    bucket: int,
    partition: int,
    offset: int,
) -> str:
    """A contribution's document id: stable across restarts, new for a new opening position."""
    key = _SEP.join((tenant, rule_id, service, level, resolution, str(bucket), str(partition), str(offset)))
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class RuleAccumulator:
    """One (tenant, rule)'s open contributions, as a job keeps them in keyed state.

    ``open`` maps ``res|service|level|bucket`` to ``[partition, offset, sketch, missing,
    last_ms]``; ``dirty`` the keys changed since the last flush (as :class:`core.metrics.
    ServiceAccumulator`, whose rules of exactness this follows).
    """

    def __init__(self, open_: Store, dirty: Store) -> None:
        self.open = open_
        self.dirty = dirty

    def add(self, m: Measurement, partition: int, offset: int, now_ms: int) -> None:
        """Count one measurement read at Kafka position (``partition``, ``offset``)."""
        for res in RESOLUTIONS:
            key = _SEP.join((res, m.service, m.level, str(bucket_start(m.ts_s, res))))
            c = self.open.get(key)
            if c is None:
                c = [partition, offset, Sketch(), 0, 0]
            if m.value is None:
                c[3] += 1
            else:
                c[2].add(m.value)
            c[4] = now_ms
            self.open.put(key, c)
            self.dirty.put(key, True)

    def flush(self, tenant: str, rule_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, index suffix, document) of every contribution changed since the last flush."""
        out = []
        for key in [k for k, _ in self.dirty.items()]:
            c = self.open.get(key)
            self.dirty.remove(key)
            if c is None:
                continue
            res, service, level, bucket_text = key.split(_SEP)
            bucket = int(bucket_text)
            doc = contribution_doc(tenant, rule_id, service, level, bucket, c[2], c[3])
            doc_id = contribution_id(tenant, rule_id, service, level, res, bucket, c[0], c[1])
            out.append((doc_id, index_suffix(res, bucket), doc))
        return out

    def close_idle(self, now_ms: int, idle_s: int) -> int:
        """Close contributions idle for ``idle_s`` (after :meth:`flush`); how many stay open."""
        limit = now_ms - idle_s * 1000
        left = 0
        for key, c in list(self.open.items()):
            if c[4] < limit:
                self.open.remove(key)
            else:
                left += 1
        return left


def contribution_doc(
    tenant: str, rule_id: str, service: str, level: str, bucket: int, sketch: Sketch, missing: int
) -> dict[str, Any]:
    data = sketch.to_dict()
    return {
        "tenant": tenant,
        "rule": rule_id,
        "service": service,
        "level": level,
        "bucket": bucket,
        "count": sketch.count,
        "sum": sketch.sum,
        "min": data["min"],
        "max": data["max"],
        "missing": missing,
        "sketch": {"zeros": data["zeros"], "positive": data["positive"], "negative": data["negative"]},
    }


def sketch_of(doc: dict[str, Any]) -> Sketch:
    """The sketch a stored contribution holds."""
    sk = doc.get("sketch") or {}
    return Sketch.from_dict(
        {
            "count": doc["count"],
            "sum": doc["sum"],
            "min": doc.get("min"),
            "max": doc.get("max"),
            "zeros": sk.get("zeros", 0),
            "positive": sk.get("positive") or {},
            "negative": sk.get("negative") or {},
        }
    )


def stat_value(sketch: Sketch, stat: str) -> float | None:
    """One statistic of a merged sketch; None when it holds no value (the step is left out)."""
    if sketch.count == 0:
        return 0.0 if stat == "count" else None
    if stat == "count":
        return float(sketch.count)
    if stat == "sum":
        return sketch.sum
    if stat == "min":
        return sketch.min
    if stat == "max":
        return sketch.max
    if stat == "avg":
        return sketch.sum / sketch.count
    if stat in QUANTILES:
        return sketch.quantile(QUANTILES[stat])
    raise ValueError(f"stat {stat!r} is not one of {', '.join(STATS)}")


def merge_steps(
    docs: Iterable[dict[str, Any]], step_s: int, stat: str, group_by: str | None
) -> dict[tuple[str, ...], list[list[float]]]:
    """Each group's points: the contributions of every bucket within a step merged into one sketch
    (exact: bucket counts add), then ``stat`` of it. Steps with no value are left out."""
    merged: dict[tuple[str, ...], dict[int, Sketch]] = {}
    for doc in docs:
        labels: tuple[str, ...] = (str(doc[group_by]),) if group_by else ()
        step = int(doc["bucket"]) - int(doc["bucket"]) % step_s
        into = merged.setdefault(labels, {}).setdefault(step, Sketch())
        into.merge(sketch_of(doc))
    out: dict[tuple[str, ...], list[list[float]]] = {}
    for labels, steps in merged.items():
        points = []
        for step in sorted(steps):
            value = stat_value(steps[step], stat)
            if value is not None and (stat != "count" or value):
                points.append([step, value])
        if points:
            out[labels] = points
    return out
