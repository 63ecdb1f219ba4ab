"""``/v1/dashboards`` against the real API and PostgreSQL: saved per tenant, read with the search
scope, changed with the admin scope, refused with a message a user can act on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from infra.settings import Settings
from tests.integration.collector_support import ApiServer, add_key, tenant_with_key

pytestmark = pytest.mark.integration

PANELS = [
    {"title": "Errors by service", "kind": "volume", "group_by": "service", "level": ">=ERROR"},
    {"title": "Checkout patterns", "kind": "top", "group_by": "pattern", "service": "checkout"},
]


@pytest.fixture
def tenant(stack: Settings, api: ApiServer) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """(tenant id, an admin client, a search-only client)."""
    with tenant_with_key(stack, scopes=("admin", "search")) as (tenant_id, key):
        _, search_key = add_key(stack, tenant_id, ("search",))
        with (
            httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=10) as admin,
            httpx.Client(base_url=api.url, headers={"X-API-Key": search_key}, timeout=10) as reader,
        ):
            yield tenant_id, admin, reader


def test_a_dashboard_is_saved_listed_replaced_and_deleted(tenant) -> None:  # type: ignore[no-untyped-def]
    tenant_id, admin, reader = tenant
    r = admin.post("/v1/dashboards", json={"name": "payments", "panels": PANELS})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["tenant"] == tenant_id and saved["name"] == "payments"
    assert saved["panels"][0] == {**PANELS[0], "service": "", "q": ""}
    assert reader.get(f"/v1/dashboards/{saved['id']}").json()["panels"] == saved["panels"]
    assert [d["name"] for d in reader.get("/v1/dashboards").json()] == ["payments"]

    r = admin.put(f"/v1/dashboards/{saved['id']}", json={"name": "payments v2", "panels": PANELS[1:]})
    assert r.status_code == 200, r.text
    assert r.json()["updated_at"] > saved["updated_at"]
    again = reader.get(f"/v1/dashboards/{saved['id']}").json()
    assert again["name"] == "payments v2" and [p["title"] for p in again["panels"]] == ["Checkout patterns"]

    assert admin.delete(f"/v1/dashboards/{saved['id']}").status_code == 204
    r = reader.get(f"/v1/dashboards/{saved['id']}")
    assert r.status_code == 404 and "no dashboard" in r.json()["detail"]


def test_saving_needs_the_admin_scope(tenant) -> None:  # type: ignore[no-untyped-def]
    _, _, reader = tenant
    r = reader.post("/v1/dashboards", json={"name": "mine", "panels": []})
    assert r.status_code == 403 and "'admin' scope" in r.json()["detail"]
    assert httpx.get(f"{reader.base_url}/v1/dashboards").status_code == 401


def test_tenants_see_only_their_own_dashboards(stack: Settings, api: ApiServer, tenant) -> None:  # type: ignore[no-untyped-def]
    _, admin, _ = tenant
    mine = admin.post("/v1/dashboards", json={"name": "private", "panels": PANELS}).json()
    with tenant_with_key(stack, scopes=("admin", "search")) as (_, other_key):
        other = {"X-API-Key": other_key}
        assert httpx.get(f"{api.url}/v1/dashboards", headers=other).json() == []
        assert httpx.get(f"{api.url}/v1/dashboards/{mine['id']}", headers=other).status_code == 404
        r = httpx.put(
            f"{api.url}/v1/dashboards/{mine['id']}", headers=other, json={"name": "taken", "panels": []}
        )
        assert r.status_code == 404
        assert httpx.delete(f"{api.url}/v1/dashboards/{mine['id']}", headers=other).status_code == 404
        # the same name is free in another tenant
        assert (
            httpx.post(f"{api.url}/v1/dashboards", headers=other, json={"name": "private"}).status_code == 201
        )
    assert admin.get(f"/v1/dashboards/{mine['id']}").json()["name"] == "private"


def test_bad_dashboards_are_refused_with_a_clear_message(tenant) -> None:  # type: ignore[no-untyped-def]
    _, admin, _ = tenant
    assert admin.post("/v1/dashboards", json={"name": "ops"}).status_code == 201
    r = admin.post("/v1/dashboards", json={"name": "ops"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = admin.post("/v1/dashboards", json={"name": "x", "panels": [{"title": "t", "kind": "pie"}]})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "panels", 0, "kind"] and "volume" in error["msg"]
    r = admin.post("/v1/dashboards", json={"name": "", "panels": []})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
