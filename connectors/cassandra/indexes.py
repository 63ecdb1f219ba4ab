"""The warm table's storage-attached indexes: the ones an operator wants, and no other Strata made.

Every index costs Cassandra work on each row written (docs/benchmarks.md, "Warm tier writes"), so
the table carries none unless ``STRATA_WARM_INDEXES`` lists it, and a deployment that had them
stops paying once its ingest job's set-up runs again. Indexes of other names (an operator's own)
are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from connectors.cassandra.ready import execute_schema
from schemas.projections import (
    CQL_SAI_TARGETS,
    cql_create_sai_indexes,
    cql_drop_sai_indexes,
    cql_sai_index_name,
)

log = logging.getLogger(__name__)


def existing_indexes(session: Any, keyspace: str, table: str) -> set[str]:
    """Names of the indexes ``keyspace.table`` has now."""
    rows = session.execute(
        "SELECT index_name FROM system_schema.indexes WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return {row["index_name"] if isinstance(row, dict) else row.index_name for row in rows}


def apply_warm_indexes(
    session: Any, keyspace: str, table: str, wanted: Sequence[str], *, wait_s: float = 120.0
) -> tuple[list[str], list[str]]:
    """Drops the Strata-named indexes not in ``wanted`` and creates those in it (entries of
    :data:`CQL_SAI_TARGETS`); returns the names (created, dropped). Each change is logged."""
    unknown = [t for t in wanted if t not in CQL_SAI_TARGETS]
    if unknown:
        raise ValueError(f"not warm-tier index targets: {', '.join(unknown)}")
    before = existing_indexes(session, keyspace, table)
    dropped = []
    for target, statement in zip(
        [t for t in CQL_SAI_TARGETS if t not in wanted],
        cql_drop_sai_indexes(keyspace, table, keep=wanted),
        strict=True,
    ):
        name = cql_sai_index_name(table, target)
        if name in before:
            log.warning(
                "dropping the warm index %s.%s (not in STRATA_WARM_INDEXES): rows are written without "
                "its work from now on, and searches on %s check it while scanning",
                keyspace,
                name,
                target,
            )
            execute_schema(session, statement, wait_s)
            dropped.append(name)
    created = []
    for target, statement in zip(wanted, cql_create_sai_indexes(keyspace, table, wanted), strict=True):
        name = cql_sai_index_name(table, target)
        if name not in before:
            log.info("creating the warm index %s.%s (STRATA_WARM_INDEXES)", keyspace, name)
            created.append(name)
        # IF NOT EXISTS: also run for an existing one, so a concurrent set-up is harmless.
        execute_schema(session, statement, wait_s, timeout_s=300.0)
    return created, dropped
