"""What the pipeline returns instead of a record: a reason code and a human detail, never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RejectReason(StrEnum):
    """Why an input could not become a record. Stable strings: the DLQ and metrics key on them."""

    EMPTY = "EMPTY"  # nothing but whitespace
    MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"  # a raw_logs message that is not a valid envelope
    MISSING_TENANT = "MISSING_TENANT"  # no tenant in the envelope and no default configured
    MALFORMED_JSON = "MALFORMED_JSON"  # looked like (or was declared) JSON and did not parse
    NO_MATCH = "NO_MATCH"  # an explicitly requested format or pattern did not match the line
    UNKNOWN_FORMAT = "UNKNOWN_FORMAT"  # the requested format or pattern name does not exist
    MISSING_MESSAGE = "MISSING_MESSAGE"  # parsed, but no message field (or an empty one)
    BAD_TIMESTAMP = "BAD_TIMESTAMP"  # unparseable timestamp and the config says reject
    TOO_LARGE = "TOO_LARGE"  # the raw input exceeds max_line_bytes (messages are truncated instead)
    INTERNAL = "INTERNAL"  # a bug in Strata; the detail names the exception so it can be reported


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that did not become a record. Falsy, so ``if result:`` reads naturally."""

    reason_code: RejectReason
    detail: str

    def __bool__(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"reason_code": str(self.reason_code), "detail": self.detail}
