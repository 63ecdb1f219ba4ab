"""The alert rule: what the API accepts, what PostgreSQL stores and what the job evaluates.

A rule is validated once, here, so the API refuses what the job could not evaluate (an unknown
field, a slide longer than its window, a window the job cannot keep) with a message naming the
problem::

    RuleSpec.model_validate({
        "name": "payment errors", "filter": {"services": ["payment-service"], "levels": ["ERROR"]},
        "window": "5m", "slide": "30s", "comparison": ">", "threshold": 100,
        "channels": [{"type": "webhook", "url": "https://hooks.example.com/strata"}],
    })

Durations are seconds or strings such as ``"90s"``, ``"5m"``, ``"1h"``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from schemas.record import FIELDS_BY_NAME, Kind, Level, Record

MAX_WINDOW_S = 86_400
MAX_BUCKETS = 1_440  # window / slide: the buckets one group keeps in state
MIN_SLIDE_S = 1
MAX_COOLDOWN_S = 7 * 86_400
MAX_FOR_EVALUATIONS = 1_000
# anomaly rules: the band needs this many evaluations (and one whole window) of history
MIN_HISTORY_EVALUATIONS = 10
MAX_MIN_HISTORY_S = 30 * 86_400
DEFAULT_MIN_HISTORY_WINDOWS = 12
DEFAULT_SENSITIVITY = 5.0
ATTRIBUTE_PREFIX = "attributes."

# Fields a rule may group by or count distinct values of: the short keyword and id fields.
# Free text (message) and maps are excluded; attributes are reached as ``attributes.<name>``.
GROUPABLE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in FIELDS_BY_NAME.values() if f.kind in (Kind.KEYWORD, Kind.ID) and f.name != "tenant"
)


# Fields with a value per record or per request: grouping by one keeps a group (and its windows)
# for every record, so the API refuses it. Attributes are refused by name when it says "an id".
HIGH_CARDINALITY_FIELDS = frozenset({"log_id", "trace_id", "span_id"})
_ID_ATTRIBUTE = re.compile(
    r"(?i)^(?:.*[_.-])?(?:request|req|trace|span|correlation|transaction|txn|session|message|msg|event|log)"
    r"[_.-]?id$|^(?:.*[_.-])?uuid$|^(?:.*[_.-])?nonce$"
)


def group_by_refusal(group_by: list[str]) -> str | None:
    """Why grouping by these fields is refused (a field unique to each record or request), or None.

    >>> group_by_refusal(["service", "attributes.status"]) is None
    True
    >>> group_by_refusal(["service", "attributes.request_id"]) is None
    False
    """
    for name in group_by:
        attribute = name[len(ATTRIBUTE_PREFIX) :] if name.startswith(ATTRIBUTE_PREFIX) else None
        if name in HIGH_CARDINALITY_FIELDS or (attribute is not None and _ID_ATTRIBUTE.match(attribute)):
            return (
                f"group_by {name!r} has a value per record or request: the rule would keep a group "
                "for each one; group by a field with a bounded set of values (service, host, level, "
                "an attribute such as attributes.status) and filter on the id instead"
            )
    return None


class RuleType(StrEnum):
    THRESHOLD = "threshold"
    NEW_PATTERN = "new_pattern"
    ANOMALY = "anomaly"


class Direction(StrEnum):
    """Which side of its expected band an anomaly rule's series fires on."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


class Aggregation(StrEnum):
    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    # matching records / records matching the same filter without its level condition
    RATE = "rate"


class Comparison(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="


COMPARE: dict[Comparison, Callable[[Any, Any], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


def parse_duration(value: Any) -> Any:
    """Seconds from ``300``, ``"300"``, ``"5m"``; anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: use seconds or a number with s, m, h or d")
        number, unit = int(match.group(1)), match.group(2)
        if unit == "ms":
            raise ValueError("durations are whole seconds or more")
        return number * _UNIT_S[unit]
    return value


Duration = Annotated[int, BeforeValidator(parse_duration)]


def check_field(name: str) -> str:
    """A field a rule may group by or count distinct values of; else a ValueError listing those."""
    if name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
        return name
    if name in GROUPABLE_FIELDS:
        return name
    raise ValueError(f"unknown field {name!r}; use one of {', '.join(GROUPABLE_FIELDS)} or attributes.<name>")


def field_value(record: Record, name: str) -> str | None:
    """The value of a groupable field as text (None when the record has none)."""
    if name.startswith(ATTRIBUTE_PREFIX):
        return record.attributes.get(name[len(ATTRIBUTE_PREFIX) :])
    value = getattr(record, name)
    return None if value is None else str(value)


class _Strict(BaseModel):
    # An unknown key is almost always a typo ("treshold"); silently ignoring it would leave a rule
    # that never fires as its author meant.
    model_config = ConfigDict(extra="forbid")


class RuleFilter(_Strict):
    """Which records a rule looks at. Empty lists mean "any"."""

    services: list[str] = Field(default_factory=list, max_length=100)
    levels: list[Level] = Field(default_factory=list)
    q: str | None = Field(default=None, max_length=4000, description="search query language")
    attributes: dict[str, str] = Field(default_factory=dict, description="attribute equality")

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        # Services are normalized (trimmed, lower-cased) by the pipeline; match that here.
        return sorted({s.strip().lower() for s in value if s.strip()})

    @field_validator("levels", mode="before")
    @classmethod
    def _levels(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v.upper() if isinstance(v, str) else v for v in value]
        return value

    @field_validator("q")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from core.alerts.query import compile_query

        compile_query(value)  # raises ValueError with the parser's message
        return value.strip()


# Headers that would change where or how the request goes rather than add to it.
_RESERVED_HEADERS = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer")
)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must be http:// or https:// with a host name or address")
    if any(ch.isspace() for ch in value):
        raise ValueError("the URL must not contain spaces")
    return value


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=20)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in value if k.strip().lower() in _RESERVED_HEADERS)
        if reserved:
            raise ValueError(f"these headers are set by the notifier and cannot be chosen: {reserved}")
        if any(("\r" in k or "\n" in k or "\r" in v or "\n" in v) for k, v in value.items()):
            raise ValueError("header names and values cannot contain line breaks")
        return value


class SlackChannel(_Strict):
    """A Slack (or Mattermost, Rocket.Chat...) incoming webhook."""

    type: Literal["slack"]
    url: str = Field(pattern=r"^https?://", max_length=2000)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _http_url(value)


class EmailChannel(_Strict):
    type: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1, max_length=50)


Channel = Annotated[WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="type")]


class RuleSpec(_Strict):
    """A rule as its author writes it."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    type: RuleType = RuleType.THRESHOLD
    filter: RuleFilter = Field(default_factory=RuleFilter)
    aggregation: Aggregation = Aggregation.COUNT
    field: str | None = Field(default=None, description="the field count_distinct counts values of")
    window: Duration = Field(default=300, description="window length, seconds or '5m'")
    slide: Duration | None = Field(default=None, description="evaluation period; default min(window, 60s)")
    comparison: Comparison = Comparison.GT
    threshold: float = 0
    for_evaluations: int = Field(
        default=1,
        ge=1,
        le=MAX_FOR_EVALUATIONS,
        description="consecutive evaluations the condition must hold before FIRING (1: at once)",
    )
    group_by: list[str] = Field(default_factory=list, max_length=5)
    severity: Severity = Severity.WARNING
    channels: list[Channel] = Field(default_factory=list, max_length=20)
    cooldown: Duration = Field(default=300, description="a group notifies at most once per cooldown")
    # anomaly rules only (None elsewhere; the validator fills in their defaults)
    direction: Direction | None = Field(default=None, description="anomaly: up, down or both (default up)")
    sensitivity: float | None = Field(
        default=None,
        ge=1,
        le=20,
        description="anomaly: how many spreads from the expected value is unusual (default 5)",
    )
    min_history: Duration | None = Field(
        default=None,
        description="anomaly: history a group needs before it may fire (default 12 windows, at least 1h)",
    )
    enabled: bool = True

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str]) -> list[str]:
        for name in value:
            check_field(name)
        if len(set(value)) != len(value):
            raise ValueError("group_by lists a field twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        if self.slide is None:
            self.slide = min(self.window, 60)
        window, slide = self.window, self.slide
        if window < MIN_SLIDE_S or window > MAX_WINDOW_S:
            raise ValueError(
                f"window must be between {MIN_SLIDE_S}s and {MAX_WINDOW_S}s (1 day), not {window}s"
            )
        if slide < MIN_SLIDE_S:
            raise ValueError(f"slide must be at least {MIN_SLIDE_S}s")
        if slide > window:
            raise ValueError(f"slide ({slide}s) cannot be longer than the window ({window}s)")
        if window % slide:
            raise ValueError(f"window ({window}s) must be a whole multiple of slide ({slide}s)")
        if window // slide > MAX_BUCKETS:
            raise ValueError(
                f"window / slide is {window // slide}; at most {MAX_BUCKETS} slides fit in one window"
            )
        if not 0 <= self.cooldown <= MAX_COOLDOWN_S:
            raise ValueError(f"cooldown must be between 0 and {MAX_COOLDOWN_S}s (7 days)")
        if self.aggregation is Aggregation.COUNT_DISTINCT:
            if not self.field:
                raise ValueError("count_distinct needs 'field', the field whose distinct values are counted")
            check_field(self.field)
        elif self.field is not None:
            raise ValueError(f"'field' only applies to count_distinct, not {self.aggregation}")
        if self.aggregation is Aggregation.RATE:
            if not self.filter.levels:
                raise ValueError(
                    "a rate is matching records over all records of the same filter without its level "
                    "condition, so a rate rule needs filter.levels"
                )
            if not 0 <= self.threshold <= 1:
                raise ValueError("a rate is a fraction between 0 and 1; so is its threshold")
        if self.type is RuleType.NEW_PATTERN:
            if self.aggregation is not Aggregation.COUNT:
                raise ValueError("a new_pattern rule counts occurrences; aggregation must be count")
            if self.group_by not in ([], ["service"]):
                raise ValueError("a new_pattern rule groups by service and pattern; leave group_by empty")
            if self.comparison not in (Comparison.GT, Comparison.GE):
                raise ValueError("a new_pattern rule fires on more than N occurrences: use '>' or '>='")
            if not self.filter.levels:
                self.filter.levels = [Level.ERROR]
            self.group_by = ["service"]
        if self.type is RuleType.ANOMALY:
            self._anomaly_defaults()
        else:
            for name in ("direction", "sensitivity", "min_history"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{name}' only applies to anomaly rules, not {self.type}")
        return self

    def _anomaly_defaults(self) -> None:
        if self.aggregation is not Aggregation.COUNT:
            raise ValueError(
                "an anomaly rule watches the count of matching records; aggregation must be count"
            )
        # The band replaces the threshold; a threshold left in the rule would read as if it applied.
        if self.comparison is not Comparison.GT or self.threshold != 0:
            raise ValueError(
                "an anomaly rule has no comparison or threshold: its band comes from the series' own "
                "history; leave them out (or at '>' and 0) and set direction and sensitivity instead"
            )
        assert self.slide is not None
        if self.direction is None:
            self.direction = Direction.UP
        if self.sensitivity is None:
            self.sensitivity = DEFAULT_SENSITIVITY
        least = max(self.window, MIN_HISTORY_EVALUATIONS * self.slide)
        if self.min_history is None:
            self.min_history = min(
                max(3600, DEFAULT_MIN_HISTORY_WINDOWS * self.window, least), MAX_MIN_HISTORY_S
            )
        if self.min_history < least:
            raise ValueError(
                f"min_history ({self.min_history}s) must cover one window and {MIN_HISTORY_EVALUATIONS} "
                f"slides: at least {least}s"
            )
        if self.min_history > MAX_MIN_HISTORY_S:
            raise ValueError(f"min_history must be at most {MAX_MIN_HISTORY_S}s (30 days)")

    @property
    def window_ms(self) -> int:
        return self.window * 1000

    @property
    def slide_ms(self) -> int:
        assert self.slide is not None  # set by the validator
        return self.slide * 1000

    @property
    def cooldown_ms(self) -> int:
        return self.cooldown * 1000

    @property
    def min_history_evaluations(self) -> int:
        """Evaluations an anomaly rule's group must have seen before it may fire."""
        return -(-(self.min_history or 0) // (self.slide or 1))

    @property
    def monotone(self) -> bool:
        """True when the window's value only grows as records arrive and the condition is an upper
        bound, so the job may fire as soon as it is crossed instead of waiting for the window to close."""
        if self.type is RuleType.ANOMALY:
            return self.direction is Direction.UP
        return self.aggregation in (Aggregation.COUNT, Aggregation.COUNT_DISTINCT) and self.comparison in (
            Comparison.GT,
            Comparison.GE,
        )

    def holds(self, value: float | None) -> bool:
        return value is not None and COMPARE[self.comparison](value, self.threshold)


class Rule(RuleSpec):
    """A stored rule: the spec plus its identity and revision (bumped on every update)."""

    id: str
    tenant: str
    revision: int = 1

    def spec_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"id", "tenant", "revision", "enabled"})

    @classmethod
    def from_stored(
        cls, rule_id: str, tenant: str, revision: int, enabled: bool, spec: dict[str, Any]
    ) -> Rule:
        return cls.model_validate(
            {**spec, "id": rule_id, "tenant": tenant, "revision": revision, "enabled": enabled}
        )
