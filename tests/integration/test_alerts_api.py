"""The alert rules API against the real PostgreSQL: CRUD, validation messages, tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from tests.integration.collector_support import ApiServer, tenant_with_key
from tests.unit.alert_support import PAYMENT_ERRORS

pytestmark = pytest.mark.integration

SEED_RULE: dict[str, Any] = {
    **PAYMENT_ERRORS,
    "slide": "30s",
    "group_by": ["host"],
    "severity": "critical",
    "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}],
}


@pytest.fixture
def client(stack: Settings, api: ApiServer) -> Iterator[httpx.Client]:
    with (
        tenant_with_key(stack) as (_, key),
        httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as c,
    ):
        yield c


def test_rule_lifecycle(client: httpx.Client) -> None:
    created = client.post("/v1/alerts/rules", json=SEED_RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["window"], rule["slide"], rule["revision"], rule["enabled"]) == (300, 30, 1, True)
    rid = rule["id"]

    assert [r["id"] for r in client.get("/v1/alerts/rules").json()] == [rid]
    assert client.get(f"/v1/alerts/rules/{rid}").json()["name"] == "payment errors"

    patched = client.patch(f"/v1/alerts/rules/{rid}", json={"threshold": 50, "cooldown": "10m"})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["threshold"], body["cooldown"], body["revision"]) == (50, 600, 2)

    replaced = client.put(f"/v1/alerts/rules/{rid}", json={**SEED_RULE, "name": "renamed"})
    assert replaced.json()["name"] == "renamed" and replaced.json()["threshold"] == 100

    assert client.post(f"/v1/alerts/rules/{rid}/disable").json()["enabled"] is False
    assert client.post(f"/v1/alerts/rules/{rid}/enable").json()["enabled"] is True

    assert client.delete(f"/v1/alerts/rules/{rid}").status_code == 204
    missing = client.get(f"/v1/alerts/rules/{rid}")
    assert missing.status_code == 404 and rid in missing.json()["detail"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshhold": 5}, "threshhold"),
        ({"group_by": ["hostname"]}, "unknown field 'hostname'"),
        ({"window": "1m", "slide": "5m"}, "cannot be longer than the window"),
        ({"window": "100s", "slide": "30s"}, "whole multiple"),
        (
            {"channels": [{"type": "webhook", "url": "http://169.254.169.254/latest/meta-data/"}]},
            "a link-local address",
        ),
        ({"channels": [{"type": "slack", "url": "http://10.0.0.5/hook"}]}, "a private address"),
        (
            {"channels": [{"type": "webhook", "url": "https://h.example/x", "headers": {"Host": "db"}}]},
            "cannot be chosen",
        ),
    ],
)
def test_an_invalid_rule_is_refused_with_a_clear_message(
    client: httpx.Client, change: dict[str, Any], message: str
) -> None:
    response = client.post("/v1/alerts/rules", json={**SEED_RULE, **change})
    assert response.status_code == 422
    assert message in response.text


def test_an_invalid_patch_leaves_the_rule_as_it_was(client: httpx.Client) -> None:
    rid = client.post("/v1/alerts/rules", json=SEED_RULE).json()["id"]
    response = client.patch(f"/v1/alerts/rules/{rid}", json={"slide": "10m"})
    assert response.status_code == 422 and "cannot be longer than the window" in response.text
    metadata = [{"type": "webhook", "url": "http://169.254.169.254/latest/meta-data/"}]
    response = client.patch(f"/v1/alerts/rules/{rid}", json={"channels": metadata})
    assert response.status_code == 422 and "STRATA_ALERTS_ALLOWED_HOSTS" in response.text
    assert client.get(f"/v1/alerts/rules/{rid}").json()["revision"] == 1


ANOMALY_RULE: dict[str, Any] = {
    "name": "error surge",
    "type": "anomaly",
    "filter": {"levels": ["ERROR"]},
    "group_by": ["service"],
    "window": "5m",
    "slide": "1m",
}


def test_an_anomaly_rule_is_stored_with_its_defaults_and_changed_like_any_rule(client: httpx.Client) -> None:
    created = client.post("/v1/alerts/rules", json=ANOMALY_RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["type"], rule["direction"], rule["sensitivity"], rule["min_history"]) == (
        "anomaly",
        "up",
        5,
        3600,
    )
    rid = rule["id"]

    patched = client.patch(f"/v1/alerts/rules/{rid}", json={"direction": "both", "sensitivity": 3.5})
    assert patched.status_code == 200, patched.text
    again = client.get(f"/v1/alerts/rules/{rid}").json()
    assert (again["direction"], again["sensitivity"], again["min_history"], again["revision"]) == (
        "both",
        3.5,
        3600,
        2,
    )

    refused = client.patch(f"/v1/alerts/rules/{rid}", json={"min_history": "5m"})
    assert refused.status_code == 422 and "at least 600s" in refused.text
    assert client.get(f"/v1/alerts/rules/{rid}").json()["revision"] == 2

    # a threshold rule has no direction: the field is refused, not ignored
    bad = client.post("/v1/alerts/rules", json={**SEED_RULE, "direction": "down"})
    assert bad.status_code == 422 and "'direction' only applies to anomaly rules" in bad.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"direction": "sideways"}, "'up', 'down' or 'both'"),
        ({"sensitivity": 0}, "greater than or equal to 1"),
        ({"threshold": 100}, "no comparison or threshold"),
        ({"aggregation": "count_distinct", "field": "host"}, "aggregation must be count"),
    ],
)
def test_an_invalid_anomaly_rule_is_refused_with_a_clear_message(
    client: httpx.Client, change: dict[str, Any], message: str
) -> None:
    response = client.post("/v1/alerts/rules", json={**ANOMALY_RULE, **change})
    assert response.status_code == 422
    assert message in response.text
    assert client.get("/v1/alerts/rules").json() == []


def test_tenants_see_only_their_own_rules(stack: Settings, api: ApiServer, client: httpx.Client) -> None:
    rid = client.post("/v1/alerts/rules", json=SEED_RULE).json()["id"]
    with tenant_with_key(stack) as (_, other_key):
        other = {"Authorization": f"Bearer {other_key}"}
        assert httpx.get(f"{api.url}/v1/alerts/rules", headers=other).json() == []
        assert httpx.get(f"{api.url}/v1/alerts/rules/{rid}", headers=other).status_code == 404
        assert httpx.delete(f"{api.url}/v1/alerts/rules/{rid}", headers=other).status_code == 404
    assert client.get(f"/v1/alerts/rules/{rid}").status_code == 200


def test_rules_need_a_key(api: ApiServer) -> None:
    assert httpx.get(f"{api.url}/v1/alerts/rules").status_code == 401


def test_history_starts_empty_and_filters_validate(client: httpx.Client) -> None:
    assert client.get("/v1/alerts/history").json() == []
    assert client.get("/v1/alerts/history", params={"state": "EXPLODED"}).status_code == 422


def test_grouping_by_a_per_record_field_is_refused_when_saved(client: httpx.Client) -> None:
    refused = client.post("/v1/alerts/rules", json={**SEED_RULE, "group_by": ["service", "trace_id"]})
    assert refused.status_code == 400
    assert "group_by 'trace_id' has a value per record or request" in refused.json()["detail"]
    assert client.get("/v1/alerts/rules").json() == []
    rid = client.post("/v1/alerts/rules", json={**SEED_RULE, "group_by": ["host"]}).json()["id"]
    for change in (
        lambda: client.patch(f"/v1/alerts/rules/{rid}", json={"group_by": ["attributes.request_id"]}),
        lambda: client.put(f"/v1/alerts/rules/{rid}", json={**SEED_RULE, "group_by": ["log_id"]}),
    ):
        answer = change()
        assert answer.status_code == 400, answer.text
    assert client.get(f"/v1/alerts/rules/{rid}").json()["group_by"] == ["host"]
