"""Waiting for a Cassandra that may have just started.

A node refuses connections until its native transport is up, may time out the first schema
changes, and a schema change is only safe to build on once every node agrees on the schema.
"""

from __future__ import annotations

from typing import Any

from cassandra import OperationTimedOut, Unavailable
from cassandra.cluster import Cluster, NoHostAvailable

from connectors.retry import NotReady, retry_until


def cassandra_retriable(exc: BaseException) -> bool:
    return isinstance(exc, NoHostAvailable | OperationTimedOut | Unavailable)


def connect_when_ready(
    contact_points: list[str], port: int, wait_s: float, **connection: Any
) -> tuple[Cluster, Any]:
    """A cluster and a session, retrying while no node accepts connections; the cluster waits up
    to ``wait_s`` for schema agreement after each schema change. ``connection``: credentials and
    TLS (:func:`connectors.cassandra.connection.cluster_options`)."""

    def connect() -> tuple[Cluster, Any]:
        cluster = Cluster(contact_points, port=port, max_schema_agreement_wait=int(wait_s), **connection)
        try:
            return cluster, cluster.connect()
        except Exception:
            cluster.shutdown()
            raise

    return retry_until(connect, what="Cassandra", retriable=cassandra_retriable, wait_s=wait_s)


def execute_schema(session: Any, statement: str, wait_s: float, *, timeout_s: float = 120.0) -> None:
    """Run an idempotent schema statement (``IF NOT EXISTS``), retrying timeouts, then wait for
    every node to agree on the schema before the next statement builds on it."""

    def run() -> None:
        session.execute(statement, timeout=timeout_s)
        if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=wait_s):
            raise NotReady("the nodes do not agree on the schema yet")

    retry_until(run, what="Cassandra schema change", retriable=cassandra_retriable, wait_s=wait_s)
