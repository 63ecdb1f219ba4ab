"""The one way Strata opens a boto3 S3 client on the configured object store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

    from infra.settings import Settings


def s3_client(settings: Settings, config: Config | None = None) -> Any:
    """A boto3 client of ``settings``' S3 endpoint, with boto3's own timeouts and retries unless
    ``config`` says otherwise (a health check wants one quick attempt)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=config,
        # An https:// endpoint is verified against this CA (else the system's); http is plain.
        verify=settings.ca_file(settings.s3_ca_file) or None,
    )
