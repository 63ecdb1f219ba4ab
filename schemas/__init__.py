"""The canonical log record and everything derived from it. Importing this never imports pyflink."""

from schemas.envelope import EnvelopeError, RawEnvelope
from schemas.record import FIELD_NAMES, FIELDS, FieldSpec, Kind, Level, Record, format_ts, parse_ts
from schemas.rejection import Rejected, RejectReason

__all__ = [
    "FIELDS",
    "FIELD_NAMES",
    "EnvelopeError",
    "FieldSpec",
    "Kind",
    "Level",
    "RawEnvelope",
    "Record",
    "RejectReason",
    "Rejected",
    "format_ts",
    "parse_ts",
]
