"""Upload jobs in PostgreSQL: the progress of a file streamed to Kafka in the background."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


async def create_upload_job(
    conn: AsyncConnection[Any], job_id: str, tenant_id: str, service: str, filename: str, bytes_total: int
) -> None:
    await conn.execute(
        "INSERT INTO upload_jobs (job_id, tenant_id, service, filename, state, bytes_total)"
        " VALUES (%s, %s, %s, %s, 'queued', %s)",
        (job_id, tenant_id, service, filename, bytes_total),
    )


async def update_upload_job(conn: AsyncConnection[Any], job_id: str, **fields: Any) -> None:
    allowed = {"state", "bytes_read", "lines", "accepted", "rejected", "error", "errors", "finished_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown upload job fields {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %({name})s" for name in fields)
    await conn.execute(
        f"UPDATE upload_jobs SET {assignments}, updated_at = now() WHERE job_id = %(job_id)s",
        {**{k: Jsonb(v) if k == "errors" else v for k, v in fields.items()}, "job_id": job_id},
    )


async def get_upload_job(conn: AsyncConnection[Any], tenant_id: str, job_id: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM upload_jobs WHERE job_id = %s AND tenant_id = %s", (job_id, tenant_id)
        )
        return await cur.fetchone()
