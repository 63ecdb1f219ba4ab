"""Retention in the archive: a tenant's day prefixes (``tenant=T/dt=D/``) past its archive
retention are deleted, object by object, after listing what they hold."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from core.compaction import summary_prefix
from core.retention import Deletion, Retention, partitions_past
from core.tiers import COLD


class ArchiveStore:
    tier = COLD

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _children(self, prefix: str) -> list[str]:
        """The names of the "folders" right under ``prefix``."""
        names = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            names += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _day_prefix(self, tenant: str, day: str) -> str:
        return f"{self.prefix}/tenant={tenant}/dt={day}/"

    def plan(self, today: date, defaults: Retention, tenants: Mapping[str, Retention]) -> list[Deletion]:
        partitions = []
        for tenant_dir in self._children(f"{self.prefix}/"):
            if not tenant_dir.startswith("tenant="):
                continue
            tenant = tenant_dir.removeprefix("tenant=")
            for day_dir in self._children(f"{self.prefix}/{tenant_dir}/"):
                if day_dir.startswith("dt="):
                    partitions.append((tenant, day_dir.removeprefix("dt=")))

        def days_of(tenant: str) -> int:
            return tenants.get(tenant, defaults).archive_days

        out = []
        for d in partitions_past(partitions, today, days_of, COLD):
            tenant, day = d.target.split("/", 1)
            size = sum(obj["Size"] for obj in self._objects(self._day_prefix(tenant, day)))
            out.append(Deletion(d.tier, self._day_prefix(tenant, day), d.reason, tenant, bytes=size))
        return out

    def delete(self, deletion: Deletion) -> Deletion:
        keys, size = [], 0
        for obj in self._objects(deletion.target):
            keys.append(obj["Key"])
            size += obj["Size"]
        # the day's compaction summaries (beside the archive) go with it
        summaries = summary_prefix(self.prefix) + deletion.target[len(self.prefix) :]
        keys += [obj["Key"] for obj in self._objects(summaries)]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return Deletion(deletion.tier, deletion.target, deletion.reason, deletion.tenant, bytes=size)
