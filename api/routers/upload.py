"""``POST /v1/logs/upload`` (a file from an offline machine) and its progress."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from api.collector.upload import process_upload
from api.deps import IngestKey, StateDep
from connectors.postgres import uploads

router = APIRouter(prefix="/v1/logs", tags=["ingest"])


class UploadJob(BaseModel):
    job_id: str
    state: str
    service: str
    filename: str
    bytes_total: int
    bytes_read: int
    progress: float
    lines: int
    accepted: int
    rejected: int
    errors: list[dict[str, Any]]
    error: str | None
    status_url: str


def _job(row: dict[str, Any]) -> UploadJob:
    total = row["bytes_total"] or 0
    progress = 1.0 if row["state"] == "done" else (min(row["bytes_read"] / total, 1.0) if total else 0.0)
    return UploadJob(
        job_id=row["job_id"],
        state=row["state"],
        service=row["service"],
        filename=row["filename"],
        bytes_total=total,
        bytes_read=row["bytes_read"],
        progress=round(progress, 4),
        lines=row["lines"],
        accepted=row["accepted"],
        rejected=row["rejected"],
        errors=row.get("errors") or [],
        error=row["error"],
        status_url=f"/v1/logs/upload/{row['job_id']}",
    )


@router.post(
    "/upload",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadJob,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "service": {"type": "string"},
                            "format": {"type": "string", "description": "ndjson, or a parser hint for lines"},
                        },
                    }
                }
            },
        }
    },
)
async def upload(request: Request, principal: IngestKey, state: StateDep) -> Any:
    """Upload a log file; it is streamed to Kafka in the background. Poll the returned status URL."""
    limit = state.settings.upload_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"the file is over {limit} bytes")
    # Starlette spools file parts over 1 MiB to a temporary file, so memory stays bounded.
    form = await request.form(max_files=1, max_fields=10)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="send the file as the multipart field 'file'")
    filename = os.path.basename(file.filename or "upload.log")
    service = str(form.get("service") or "").strip() or filename.split(".", 1)[0] or "unknown"
    fmt = str(form.get("format") or "").strip() or None
    raw = file.file
    size = raw.seek(0, io.SEEK_END)
    raw.seek(0)
    if size > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"the file is over {limit} bytes")
    # FastAPI closes form files when the request ends; the background job needs this one longer,
    # so it takes the file object over and leaves the form a stand-in to close.
    file.file = io.BytesIO()
    job_id = uuid.uuid4().hex
    async with state.pool.connection() as conn:
        await uploads.create_upload_job(conn, job_id, principal.tenant_id, service, filename, size)
        row = await uploads.get_upload_job(conn, principal.tenant_id, job_id)
    task = asyncio.create_task(
        process_upload(state, job_id, principal.tenant_id, service, filename, fmt, raw),
        name=f"upload-{job_id}",
    )
    state.background.add(task)
    task.add_done_callback(state.background.discard)
    assert row is not None
    return _job(row)


@router.get("/upload/{job_id}", response_model=UploadJob, responses={404: {"description": "no such job"}})
async def upload_status(job_id: str, principal: IngestKey, state: StateDep) -> Any:
    """Progress and counts of an upload (only the tenant that uploaded it can see it)."""
    async with state.pool.connection() as conn:
        row = await uploads.get_upload_job(conn, principal.tenant_id, job_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no upload job {job_id!r} for this tenant")
    return _job(row)
