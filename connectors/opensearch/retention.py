"""Retention in the hot tier: daily indices past the hot window are dropped whole; a tenant whose
hot retention is shorter has its older documents deleted from the indices that stay."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from core.retention import Deletion, Retention, hot_plan
from core.tiers import HOT


class HotStore:
    tier = HOT
    PAGE = 5000

    def __init__(self, client: Any, index_prefix: str, window_days: int) -> None:
        self.client = client
        self.prefix = index_prefix
        self.window_days = window_days

    def _indices(self) -> dict[str, dict[str, Any]]:
        rows = self.client.cat.indices(index=f"{self.prefix}-*", format="json", bytes="b")
        return {row["index"]: row for row in rows}

    def plan(self, today: date, defaults: Retention, tenants: Mapping[str, Retention]) -> list[Deletion]:
        indices = self._indices()
        drops, shorter = hot_plan(indices, self.prefix, today, self.window_days, tenants)
        out = [
            Deletion(
                d.tier,
                d.target,
                d.reason,
                records=int(indices[d.target].get("docs.count") or 0),
                bytes=int(indices[d.target].get("store.size") or 0),
            )
            for d in drops
        ]
        if indices and shorter:
            dropped = {d.target for d in drops}
            kept = ",".join(sorted(set(indices) - dropped)) or f"{self.prefix}-*"
            for tenant, keep_from in shorter:
                count = self.client.count(index=kept, body={"query": _older(tenant, keep_from)})["count"]
                if count:
                    days = tenants[tenant].hot_days
                    out.append(
                        Deletion(
                            HOT,
                            f"{self.prefix}-* tenant={tenant} before {keep_from.isoformat()}",
                            f"older than the tenant's hot retention of {days} days",
                            tenant=tenant,
                            records=count,
                        )
                    )
        return out

    def delete(self, deletion: Deletion) -> Deletion:
        if deletion.tenant is None:
            self.client.indices.delete(index=deletion.target)
            return deletion
        before = date.fromisoformat(deletion.target.rsplit(" ", 1)[1])
        deleted = 0
        # Search and delete in pages rather than _delete_by_query, which needs the reindex module
        # (not every OpenSearch has it); each refreshed round no longer sees what went before.
        while True:
            hits = self.client.search(
                index=f"{self.prefix}-*",
                body={"query": _older(deletion.tenant, before), "_source": False, "size": self.PAGE},
            )["hits"]["hits"]
            if not hits:
                break
            actions = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
            answer = self.client.bulk(body=actions, refresh="true")
            deleted += sum(1 for item in answer["items"] if item["delete"].get("result") == "deleted")
            if answer.get("errors"):
                failed = [
                    item["delete"] for item in answer["items"] if item["delete"].get("status", 200) >= 300
                ]
                if any(f.get("status") != 404 for f in failed):
                    raise RuntimeError(f"OpenSearch refused {len(failed)} deletes, first: {failed[0]}")
        return Deletion(deletion.tier, deletion.target, deletion.reason, deletion.tenant, records=deleted)


def _older(tenant: str, keep_from: date) -> dict[str, Any]:
    return {
        "bool": {
            "filter": [
                {"term": {"tenant": tenant}},
                {"range": {"timestamp": {"lt": f"{keep_from.isoformat()}T00:00:00Z"}}},
            ]
        }
    }
