"""``/v1/metrics/rules`` against the real API and PostgreSQL: rules saved per tenant, read with the
search scope, changed with the admin scope and audited, bad input refused with what is wrong."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from infra.settings import Settings
from tests.integration.collector_support import ApiServer, add_key, tenant_with_key

pytestmark = pytest.mark.integration

RULE = {
    "name": "checkout latency",
    "filter": {"services": ["checkout"], "levels": ["INFO", "WARN"], "q": "path:/cart"},
    "field": "latency",
    "unit": "ms",
}
CAP = 3


@pytest.fixture(scope="module")
def capped_api(stack: Settings) -> Iterator[ApiServer]:
    with ApiServer(stack.model_copy(update={"metric_rules_max_per_tenant": CAP})) as server:
        yield server


@pytest.fixture
def tenant(stack: Settings, capped_api: ApiServer) -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """(tenant id, an admin client, a search-only client)."""
    with tenant_with_key(stack, scopes=("admin", "search")) as (tenant_id, key):
        _, search_key = add_key(stack, tenant_id, ("search",))
        with (
            httpx.Client(base_url=capped_api.url, headers={"X-API-Key": key}, timeout=10) as admin,
            httpx.Client(base_url=capped_api.url, headers={"X-API-Key": search_key}, timeout=10) as reader,
        ):
            yield tenant_id, admin, reader


def test_a_rule_is_created_listed_read_by_name_changed_and_deleted(tenant) -> None:  # type: ignore[no-untyped-def]
    tenant_id, admin, reader = tenant
    r = admin.post("/v1/metrics/rules", json=RULE)
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["tenant"] == tenant_id and saved["revision"] == 1 and saved["enabled"] is True
    assert saved["field"] == "latency" and saved["filter"]["levels"] == ["INFO", "WARN"]
    assert [x["id"] for x in reader.get("/v1/metrics/rules").json()] == [saved["id"]]
    assert reader.get(f"/v1/metrics/rules/{saved['id']}").json()["name"] == "checkout latency"
    assert reader.get("/v1/metrics/rules/checkout latency").json()["id"] == saved["id"]

    r = admin.put(f"/v1/metrics/rules/{saved['id']}", json={**RULE, "field": "attributes.bytes", "unit": ""})
    assert r.status_code == 200, r.text
    assert (r.json()["field"], r.json()["revision"]) == ("bytes", 2)
    r = admin.patch(f"/v1/metrics/rules/{saved['id']}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["revision"] == 3

    assert admin.delete(f"/v1/metrics/rules/{saved['id']}").status_code == 204
    r = reader.get(f"/v1/metrics/rules/{saved['id']}")
    assert r.status_code == 404 and "no metric rule" in r.json()["detail"]

    entries = admin.get("/v1/audit", params={"action": "metric_rule."}).json()["entries"]
    assert [e["action"] for e in entries] == [
        "metric_rule.delete",
        "metric_rule.update",
        "metric_rule.replace",
        "metric_rule.create",
    ]
    assert {e["target"] for e in entries} == {saved["id"]}
    assert entries[-1]["details"]["field"] == "latency"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({**RULE, "field": "lat ency"}, "is not a field name"),
        ({**RULE, "filter": {"q": "path:(cart"}}, "filter"),
        ({**RULE, "unit": "parsecs"}, "unit"),
        ({**RULE, "filter": {"levels": ["LOUD"]}}, "levels"),
        ({"name": "no field"}, "field"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(tenant, body, says) -> None:  # type: ignore[no-untyped-def]
    _, admin, _ = tenant
    r = admin.post("/v1/metrics/rules", json=body)
    assert r.status_code == 422, r.text
    assert says in r.text
    assert admin.get("/v1/metrics/rules").json() == []


def test_writing_needs_the_admin_scope_and_names_are_unique(tenant) -> None:  # type: ignore[no-untyped-def]
    _, admin, reader = tenant
    r = reader.post("/v1/metrics/rules", json=RULE)
    assert r.status_code == 403 and "'admin' scope" in r.json()["detail"]
    assert admin.post("/v1/metrics/rules", json=RULE).status_code == 201
    r = admin.post("/v1/metrics/rules", json=RULE)
    assert r.status_code == 409 and "already has a metric rule named" in r.json()["detail"]


def test_a_tenant_has_at_most_the_cap_of_rules(tenant) -> None:  # type: ignore[no-untyped-def]
    _, admin, _ = tenant
    for i in range(CAP):
        assert admin.post("/v1/metrics/rules", json={**RULE, "name": f"r{i}"}).status_code == 201
    r = admin.post("/v1/metrics/rules", json={**RULE, "name": "one too many"})
    assert r.status_code == 400 and f"has {CAP} metric rules" in r.json()["detail"]
    assert len(admin.get("/v1/metrics/rules").json()) == CAP


def test_another_tenant_s_rules_are_not_seen(stack: Settings, capped_api: ApiServer, tenant) -> None:  # type: ignore[no-untyped-def]
    _, admin, _ = tenant
    saved = admin.post("/v1/metrics/rules", json=RULE).json()
    with (
        tenant_with_key(stack, scopes=("admin", "search")) as (_, other_key),
        httpx.Client(base_url=capped_api.url, headers={"X-API-Key": other_key}, timeout=10) as other,
    ):
        assert other.get("/v1/metrics/rules").json() == []
        assert other.get(f"/v1/metrics/rules/{saved['id']}").status_code == 404
        assert other.delete(f"/v1/metrics/rules/{saved['id']}").status_code == 404
    assert admin.get(f"/v1/metrics/rules/{saved['id']}").status_code == 200


def test_the_cli_adds_lists_and_deletes_the_same_rules(tenant) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    tenant_id, admin, _ = tenant

    def strata(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "infra.cli", "metrics", *args], capture_output=True, text=True, timeout=60
        )

    made = strata("add", "--tenant", tenant_id, "--name", "db", "--field", "latency", "--service", "DB")
    assert made.returncode == 0, made.stderr
    rule_id = made.stdout.strip()
    (listed,) = admin.get("/v1/metrics/rules").json()
    assert (listed["id"], listed["filter"]["services"]) == (rule_id, ["db"])
    assert "'db'  field latency  db" in strata("rules", "--tenant", tenant_id).stdout

    bad = strata("add", "--tenant", tenant_id, "--name", "x", "--field", "la tency")
    assert bad.returncode == 2 and "field: Value error, field 'la tency' is not a field name" in bad.stderr
    assert strata("delete", "--tenant", tenant_id, "db").returncode == 0
    assert admin.get("/v1/metrics/rules").json() == []
    gone = strata("delete", "--tenant", tenant_id, "db")
    assert gone.returncode == 1 and "no metric rule 'db'" in gone.stderr
    entries = admin.get("/v1/audit", params={"action": "metric_rule."}).json()["entries"]
    assert [(e["action"], e["actor"].startswith("cli:")) for e in entries] == [
        ("metric_rule.delete", True),
        ("metric_rule.create", True),
    ]
