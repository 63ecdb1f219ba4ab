"""The audit log against the real API and PostgreSQL: every change a tenant's admins must be able
to account for, written with the change, readable only by that tenant (or the admin token)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from connectors.postgres import audit, tenants
from tests.integration.collector_support import REPO, ApiServer, require_stack, tenant_with_key

pytestmark = pytest.mark.integration

ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def server():
    settings = require_stack().model_copy(
        update={"auth_cache_s": 0.0, "admin_token": ADMIN_TOKEN, "alerts_allowed_hosts": "127.0.0.1"}
    )
    with ApiServer(settings) as running:
        yield running


def http(server: ApiServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def actions(page: dict[str, Any]) -> list[str]:
    return [e["action"] for e in page["entries"]]


RULE = {
    "name": "errors",
    "filter": {"levels": ["ERROR"]},
    "window": "1m",
    "threshold": 5,
    "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/hook?token=s3cret"}],
}


def test_every_change_is_logged_with_who_what_and_where_newest_first(server):
    with tenant_with_key(server.settings) as (tenant_id, key), http(server, key) as admin:
        key_id = tenants.split_key(key)[0]  # type: ignore[index]
        made = admin.post("/v1/keys", json={"name": "shipper", "scopes": ["ingest"]}).json()
        rotated = admin.post(f"/v1/keys/{made['key_id']}/rotate", json={"grace_s": 60}).json()
        assert admin.delete(f"/v1/keys/{rotated['key_id']}").status_code == 204
        rule = admin.post("/v1/alerts/rules", json=RULE).json()
        assert admin.patch(f"/v1/alerts/rules/{rule['id']}", json={"threshold": 9}).status_code == 200
        assert admin.post(f"/v1/alerts/rules/{rule['id']}/disable").status_code == 200
        assert admin.delete(f"/v1/alerts/rules/{rule['id']}").status_code == 204
        assert admin.put("/v1/retention", json={"hot_days": 3}).status_code == 200

        page = admin.get("/v1/audit").json()
        assert actions(page) == [
            "retention.set",
            "alert_rule.delete",
            "alert_rule.disable",
            "alert_rule.update",
            "alert_rule.create",
            "key.revoke",
            "key.rotate",
            "key.create",
        ]
        assert page["next"] is None
        for entry in page["entries"]:
            assert entry["tenant"] == tenant_id
            assert entry["actor"] == f"key:{key_id}"
            assert entry["client_addr"] == "127.0.0.1"
        by_action = {e["action"]: e for e in page["entries"]}
        assert by_action["key.create"]["target"] == made["key_id"]
        assert by_action["key.create"]["details"] == {"name": "shipper", "scopes": ["ingest"]}
        assert by_action["key.rotate"]["details"] == {"new_key_id": rotated["key_id"], "grace_s": 60}
        assert by_action["alert_rule.update"]["details"]["changed"] == ["threshold"]
        assert by_action["retention.set"]["details"]["hot_days"] == 3
        text = str(page)
        for full_key in (key, made["key"], rotated["key"]):
            parts = tenants.split_key(full_key)
            assert parts is not None
            assert parts[1] not in text, "an audit entry shows a key's secret"
        assert "s3cret" not in text, "an audit entry shows a secret"

        # Filters and pages.
        assert actions(admin.get("/v1/audit", params={"action": "key.*"}).json()) == [
            "key.revoke",
            "key.rotate",
            "key.create",
        ]
        assert actions(admin.get("/v1/audit", params={"action": "key.rotate"}).json()) == ["key.rotate"]
        future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        assert admin.get("/v1/audit", params={"from": future}).json()["entries"] == []
        assert len(admin.get("/v1/audit", params={"to": future}).json()["entries"]) == 8
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["before"] = cursor
            part = admin.get("/v1/audit", params=params).json()
            seen += actions(part)
            cursor = part["next"]
            if cursor is None:
                break
        assert seen == actions(page)


def test_another_tenant_never_sees_the_entries_the_admin_token_sees_all(server):
    with (
        tenant_with_key(server.settings) as (tenant_a, key_a),
        tenant_with_key(server.settings) as (_, key_b),
        http(server, key_a) as a,
        http(server, key_b) as b,
        http(server, ADMIN_TOKEN) as operator,
    ):
        assert a.post("/v1/keys", json={"name": "a's"}).status_code == 201
        assert b.get("/v1/audit").json()["entries"] == []
        assert b.get("/v1/audit", params={"tenant": tenant_a}).status_code == 403
        ingest_only = a.post("/v1/keys", json={"scopes": ["ingest"]}).json()["key"]
        with http(server, ingest_only) as weak:
            assert weak.get("/v1/audit").status_code == 403

        # The operator reads any tenant's log; its own reads and changes are in that log too.
        assert operator.post(f"/v1/keys?tenant={tenant_a}", json={"name": "ops"}).status_code == 201
        seen = operator.get("/v1/audit", params={"tenant": tenant_a}).json()["entries"]
        assert [(e["action"], e["actor"]) for e in seen[:3]] == [
            ("admin_token.request", "admin-token"),  # this very read
            ("key.create", "admin-token"),
            ("admin_token.request", "admin-token"),
        ]
        assert seen[0]["target"] == "/v1/audit" and seen[0]["details"] == {"method": "GET"}
        assert ADMIN_TOKEN not in str(seen)
        assert [e["id"] for e in a.get("/v1/audit").json()["entries"][:3]] == [e["id"] for e in seen[:3]]


def test_tenant_creation_by_the_admin_token_is_in_the_new_tenants_log(server):
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    try:
        with http(server, ADMIN_TOKEN) as operator:
            first = operator.post("/v1/tenants", json={"id": tenant_id, "name": "Globex"}).json()
        with http(server, first["key"]) as admin:
            entries = admin.get("/v1/audit").json()["entries"]
        assert [e["action"] for e in entries] == ["tenant.create"]
        assert entries[0]["actor"] == "admin-token"
        expected = {"name": "Globex", "rate_per_s": None, "first_key_id": first["key_id"]}
        assert entries[0]["details"] == expected
    finally:
        with psycopg.connect(server.settings.postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))
            conn.execute("DELETE FROM audit_log WHERE tenant_id = %s", (tenant_id,))


def test_the_cli_leaves_entries_as_cli_user(server):
    with tenant_with_key(server.settings) as (tenant_id, key), http(server, key) as admin:
        done = subprocess.run(
            [sys.executable, "-m", "infra.cli.main", "tenant", "key-create", tenant_id, "--name", "from-cli"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        entry = admin.get("/v1/audit").json()["entries"][0]
        assert entry["action"] == "key.create"
        assert entry["actor"].startswith("cli:")
        assert entry["client_addr"] is None


def test_a_change_whose_entry_cannot_be_written_is_not_made(server):
    """The entry shares the change's transaction: if it fails, the change is rolled back, and the
    helper refuses to write outside a transaction at all."""

    async def attempt(tenant_id: str) -> None:
        dsn = server.settings.postgres_dsn
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            with pytest.raises(audit.AuditError):
                await audit.record(conn, audit.Actor.cli(), tenant_id, "key.create")
            with pytest.raises(TypeError):
                async with conn.transaction():
                    await tenants.create_key(conn, tenant_id, name="never")
                    unwritable = {"x": object()}
                    await audit.record(conn, audit.Actor.cli(), tenant_id, "key.create", details=unwritable)
            names = [k["name"] for k in await tenants.list_keys(conn, tenant_id)]
            assert "never" not in names
            assert await audit.entries(conn, tenant_id) == []

    with tenant_with_key(server.settings) as (tenant_id, _):
        asyncio.run(attempt(tenant_id))
