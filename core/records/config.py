"""Every knob of the record pipeline, in one typed model loadable from YAML or JSON.

A minimal file::

    max_message_bytes: 65536
    patterns:
      billing:
        regex: '(?P<timestamp>\\S+ \\S+) (?P<level>\\w+) (?P<message>.*)'
    services:
      billing-api: {patterns: [billing], metadata: {team: payments, environment: prod}}
    hosts:
      web-1: {metadata: {region: eu-west-1, cluster: blue}}
    masking:
      default: {ipv4: true}
      tenants:
        acme: {ipv4: false, custom: [{name: ORDER, regex: 'ORD-\\d{8}', marker: '[ORDER]'}]}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.records.header import zone
from core.records.mask import MaskRules, valid_regex

# The identity key of the local stack (and of tests and `strata parse`): public, so it protects
# nothing; a deployment sets its own (see PipelineConfig.for_deployment).
LOCAL_IDENTITY_KEY = "strata-local-stack-identity-key"


class MissingIdentityKey(ValueError):
    """The job would run against real clusters with the public local-stack identity key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatternConfig(_Model):
    """A named-group regex teaching the pipeline a format without code."""

    regex: str
    time_format: str | None = Field(
        default=None, description="strptime format of the timestamp group; auto if unset"
    )
    level_map: dict[str, str] = Field(default_factory=dict, description="raw level -> a level name")
    kv_attributes: bool = Field(
        default=False, description="also turn key=value pairs in the message into attributes"
    )

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        groups = re.compile(valid_regex(value)).groupindex
        if not {"message", "msg", "content"} & set(groups):
            raise ValueError("a pattern needs a named group 'message', e.g. (?P<message>.*)")
        return value


class ServiceConfig(_Model):
    patterns: list[str] = Field(default_factory=list, description="pattern names tried first, in order")
    format: str | None = Field(
        default=None, description="a fixed format for this service instead of auto-detection"
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="team, environment, region, cluster..."
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone (Europe/Paris) for this service's times that carry no offset; "
        "default: the pipeline's timezone",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return _valid_zone(value)


def _valid_zone(value: str | None) -> str | None:
    zone(value)  # ValueError names the zone
    return value


class HostConfig(_Model):
    metadata: dict[str, str] = Field(default_factory=dict)


class MaskingConfig(_Model):
    enabled: bool = True
    default: MaskRules = Field(default_factory=MaskRules)
    tenants: dict[str, MaskRules] = Field(
        default_factory=dict, description="per-tenant rules, replacing default"
    )


class MiningConfig(_Model):
    """Drain's parameters; the defaults are the ones measured on Loghub (docs/records.md)."""

    enabled: bool = True
    depth: int = Field(default=4, ge=3)
    similarity: float = Field(default=0.7, gt=0, le=1)
    count_wildcards: bool = True
    max_children: int = Field(default=100, ge=1)
    max_clusters: int = Field(default=50_000, ge=1)
    max_message_chars: int = Field(
        default=16 * 1024,
        ge=64,
        description="longer messages are not mined (pattern empty, tagged mining_skipped): the "
        "cost of mining grows with the message, and a template that long groups nothing",
    )
    max_tokens: int = Field(default=512, ge=8, description="messages with more tokens are not mined either")


class PipelineConfig(_Model):
    default_tenant: str | None = Field(default=None, description="tenant for raw lines that carry none (CLI)")
    default_service: str = "unknown"
    default_host: str = "unknown"
    default_format: str = "auto"
    lowercase_service: bool = True
    lowercase_host: bool = True

    max_message_bytes: int = Field(default=64 * 1024, ge=256)
    max_attribute_bytes: int = Field(
        default=4096,
        ge=64,
        le=7680,
        description="longer attribute values are cut: both stores index each value as one term "
        "(OpenSearch refuses terms over 32 KiB, Cassandra's SAI over 8 KiB)",
    )
    max_attributes: int = Field(
        default=1000,
        ge=2,
        description="attributes kept per record after flattening; the rest are counted in "
        "attributes_dropped and the record tagged so",
    )
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=128 * 1024,
        description="a record whose JSON would be larger is rejected (TOO_LARGE, to the dead-letter "
        "topic): Kafka's brokers refuse messages over 1 MB unless configured otherwise",
    )
    max_line_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="raw inputs above this are rejected"
    )
    max_future_seconds: float = Field(default=900, ge=0, description="allowed clock skew into the future")
    max_past_days: float = Field(default=365, ge=0, description="older event times are tagged old_timestamp")
    future_policy: Literal["arrival", "keep"] = "arrival"
    past_policy: Literal["keep", "arrival"] = "keep"
    on_bad_timestamp: Literal["arrival", "reject"] = "arrival"
    timezone: str = Field(
        default="UTC", description="IANA zone for times in raw lines that carry no offset (per service too)"
    )
    read_headers: bool = Field(
        default=True,
        description="find the time, level, host and process in lines no format claimed, and mine "
        "the message without them",
    )

    @field_validator("timezone")
    @classmethod
    def _known_default_zone(cls, value: str) -> str:
        _valid_zone(value)
        return value

    identity_key: str = Field(
        default=LOCAL_IDENTITY_KEY,
        max_length=64,
        description="secret mixed into log_id so ids cannot confirm masked values (at most 64 "
        "characters); the default is the local stack's, public one",
    )

    patterns: dict[str, PatternConfig] = Field(default_factory=dict)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    hosts: dict[str, HostConfig] = Field(default_factory=dict)
    default_metadata: dict[str, str] = Field(default_factory=dict)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    mining: MiningConfig = Field(default_factory=MiningConfig)

    @field_validator("services", "hosts")
    @classmethod
    def _normalize_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Lookups happen after names are trimmed and lower-cased; keys written "Billing-API" must match.
        return {k.strip().lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _record_holds_a_message(self) -> PipelineConfig:
        # A record carries its message and its mined pattern (about as long): both must fit.
        if self.max_record_bytes < 2 * self.max_message_bytes + 64 * 1024:
            raise ValueError(
                "max_record_bytes must be at least twice max_message_bytes plus 64 KiB "
                f"(got {self.max_record_bytes} for max_message_bytes={self.max_message_bytes})"
            )
        return self

    def for_deployment(self, identity_key: str, *, local_stack: bool) -> PipelineConfig:
        """This configuration with the deployment's identity key (``STRATA_IDENTITY_KEY``), unless
        the file names one itself. Without either, the local stack keeps its public default and
        anything else is refused: ids keyed with a public key let anyone holding a masked record
        confirm guesses of what was masked (``login from [IP]`` plus its id gives the address)."""
        if self.identity_key and "identity_key" in self.model_fields_set:
            return self
        if identity_key:
            return self.model_copy(update={"identity_key": identity_key})
        if local_stack:
            return self
        raise MissingIdentityKey(
            "STRATA_IDENTITY_KEY is not set, and Strata is not running on its local stack (one of "
            "STRATA_KAFKA_BOOTSTRAP, STRATA_OPENSEARCH_URL, STRATA_CASSANDRA_HOSTS, STRATA_S3_ENDPOINT, "
            "STRATA_POSTGRES_HOST is set). Set it to a stable secret of 16 to 64 characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`, the same for every job: it is "
            "part of every log_id, so changing it later changes the ids of new records"
        )

    @classmethod
    def load(cls, path: str | Path) -> PipelineConfig:
        """Read a ``.json`` or ``.yaml``/``.yml`` file."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            from ruamel.yaml import YAML

            data = YAML(typ="safe").load(text)
        else:
            data = json.loads(text)
        return cls.model_validate(data or {})
