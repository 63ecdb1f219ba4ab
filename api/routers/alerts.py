"""Alert rules, their history, and trying a rule on past logs.

Rules are tenant-scoped: a tenant key with the ``admin`` scope manages its own tenant's rules; the
admin token names the tenant with ``?tenant=``. A rule takes effect in the running alerts job
within ``STRATA_ALERTS_RULES_REFRESH_S`` of being saved, without a restart.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field, ValidationError

from api.deps import AdminKey, EngineDep, Principal, StateDep, TenantQuery, acting_tenant
from api.search.engine import SearchEngine
from connectors.postgres import alerts as store
from connectors.postgres import audit
from core.alerts.egress import EgressPolicy, literal_refusal
from core.alerts.rules import Rule, RuleSpec, group_by_refusal

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


class RuleOut(Rule):
    created_at: datetime
    updated_at: datetime


class HistoryEntry(BaseModel):
    event_id: str
    rule_id: str
    rule_name: str
    state: str
    notify: bool = Field(description="whether the channels were to be told (cooldown says no)")
    severity: str
    group: dict[str, str]
    value: float | None
    comparison: str
    threshold: float
    window_start: datetime
    window_end: datetime
    since: datetime | None
    samples: list[dict[str, Any]]
    reason: str
    recorded_at: datetime
    deliveries: list[dict[str, Any]]


class TestRequest(BaseModel):
    start: datetime = Field(alias="from", description="start of the past range to evaluate")
    end: datetime | None = Field(default=None, alias="to", description="end of the range; default now")


class TestResult(BaseModel):
    rule_id: str
    start: datetime
    end: datetime
    records: int = Field(description="records of the range the rule's filter matched")
    tiers: list[str] = Field(description="the storage tiers that answered")
    events: list[dict[str, Any]] = Field(description="when the rule would have fired and resolved")


def _out(stored: store.StoredRule) -> RuleOut:
    return RuleOut.model_validate(
        {**stored.rule.model_dump(), "created_at": stored.created_at, "updated_at": stored.updated_at}
    )


def _check_spec(spec: RuleSpec, state: Any) -> None:
    """400 for a group_by that would keep a group per record; 422 for a channel it may not reach."""
    refusal = group_by_refusal(spec.group_by)
    if refusal is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=refusal)
    _check_channels(spec, state)


def _check_channels(spec: RuleSpec, state: Any) -> None:
    """422 for a webhook or Slack URL that names a non-public address outright (``127.0.0.1``,
    ``169.254.169.254``, ``localhost``); names are checked again, resolved, at every send."""
    policy = EgressPolicy.parse(state.settings.alerts_allowed_hosts)
    for index, channel in enumerate(spec.channels):
        url = getattr(channel, "url", None)
        reason = literal_refusal(url, policy) if url else None
        if reason is not None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail=[{"loc": ["body", "channels", index, "url"], "msg": reason, "type": "value_error"}],
            )


# A receiver's reply may echo anything (internal pages, tokens); stored errors from before replies
# were dropped said "HTTP 500: <reply>". The history shows the status only.
_REPLY_IN_ERROR = re.compile(r"^(HTTP \d{3})(?:: .*)?$", re.S)


def _history_out(row: dict[str, Any]) -> HistoryEntry:
    deliveries = []
    for d in row.get("deliveries") or []:
        error = d.get("last_error")
        if isinstance(error, str):
            d = {**d, "last_error": _REPLY_IN_ERROR.sub(r"\1", error)}
        deliveries.append(d)
    return HistoryEntry.model_validate({**row, "group": row["group_values"], "deliveries": deliveries})


async def _audit(
    conn: Any, principal: Principal, tenant_id: str, action: str, stored: store.StoredRule, **details: Any
) -> None:
    """The rule change's audit entry: the rule as it now is (its channels' URLs left out, since a
    webhook URL often carries a token)."""
    rule = stored.rule
    await audit.record(
        conn,
        principal.actor,
        tenant_id,
        action,
        target=rule.id,
        details={
            "name": rule.name,
            "revision": rule.revision,
            "enabled": rule.enabled,
            "channels": [getattr(c, "type", "") for c in rule.channels],
            **details,
        },
    )


def _not_found(rule_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert rule {rule_id!r} in this tenant")


def _existing(stored: store.StoredRule | None, rule_id: str) -> store.StoredRule:
    """``stored``, or 404 when the tenant has no rule with that id."""
    if stored is None:
        raise _not_found(rule_id)
    return stored


@router.post("/rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
async def create_rule(
    body: RuleSpec, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Create a rule; the running alerts job picks it up without a restart."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    _check_spec(body, state)
    async with state.pool.connection() as conn, conn.transaction():
        stored = await store.create_rule(conn, tenant_id, body)
        await _audit(conn, principal, tenant_id, "alert_rule.create", stored)
    return _out(stored)


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """The tenant's rules, by name."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn:
        return [_out(r) for r in await store.list_rules(conn, tenant_id)]


@router.get("/rules/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """One rule."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn:
        stored = await store.get_rule(conn, tenant_id, rule_id)
    return _out(_existing(stored, rule_id))


@router.put("/rules/{rule_id}", response_model=RuleOut)
async def replace_rule(
    rule_id: str, body: RuleSpec, principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Replace a rule's definition (its revision goes up; its alert state is kept)."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    _check_spec(body, state)
    async with state.pool.connection() as conn, conn.transaction():
        stored = _existing(await store.update_rule(conn, tenant_id, rule_id, body), rule_id)
        await _audit(conn, principal, tenant_id, "alert_rule.replace", stored)
    return _out(stored)


@router.patch("/rules/{rule_id}", response_model=RuleOut)
async def update_rule(
    rule_id: str, body: dict[str, Any], principal: AdminKey, state: StateDep, tenant: TenantQuery = None
) -> Any:
    """Change some fields of a rule; the result is validated as a whole."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn, conn.transaction():
        stored = await store.get_rule(conn, tenant_id, rule_id)
        if stored is None:
            raise _not_found(rule_id)
        merged = {**stored.rule.model_dump(mode="json", exclude={"id", "tenant", "revision"}), **body}
        try:
            spec = RuleSpec.model_validate(merged)
        except ValidationError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                detail=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from exc
        _check_spec(spec, state)
        updated = _existing(await store.update_rule(conn, tenant_id, rule_id, spec), rule_id)
        await _audit(conn, principal, tenant_id, "alert_rule.update", updated, changed=sorted(body))
    return _out(updated)


@router.post("/rules/{rule_id}/enable", response_model=RuleOut)
async def enable_rule(rule_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """Start evaluating a rule again."""
    return await _set_enabled(rule_id, True, principal, state, tenant)


@router.post("/rules/{rule_id}/disable", response_model=RuleOut)
async def disable_rule(rule_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> Any:
    """Stop evaluating a rule; what it had firing is resolved."""
    return await _set_enabled(rule_id, False, principal, state, tenant)


async def _set_enabled(
    rule_id: str, enabled: bool, principal: Principal, state: Any, tenant: str | None
) -> Any:
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn, conn.transaction():
        stored = _existing(await store.set_enabled(conn, tenant_id, rule_id, enabled), rule_id)
        action = "alert_rule.enable" if enabled else "alert_rule.disable"
        await _audit(conn, principal, tenant_id, action, stored)
    return _out(stored)


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: str, principal: AdminKey, state: StateDep, tenant: TenantQuery = None) -> None:
    """Delete a rule; its history stays."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn, conn.transaction():
        if not await store.delete_rule(conn, tenant_id, rule_id):
            raise _not_found(rule_id)
        await audit.record(conn, principal.actor, tenant_id, "alert_rule.delete", target=rule_id)


@router.get("/history", response_model=list[HistoryEntry])
async def history(
    principal: AdminKey,
    state: StateDep,
    tenant: TenantQuery = None,
    rule_id: Annotated[str | None, Query(description="only this rule")] = None,
    state_name: Annotated[Literal["OK", "PENDING", "FIRING", "RESOLVED"] | None, Query(alias="state")] = None,
    since: Annotated[datetime | None, Query(alias="from", description="window end at or after")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="window end before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Firings, resolutions and pending states, newest first, with their notifications' delivery."""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn:
        rows = await store.list_history(
            conn, tenant_id, rule_id=rule_id, state=state_name, since=since, until=until, limit=limit
        )
    return [_history_out(r) for r in rows]


def _tier_reader(engine: SearchEngine) -> Any:
    """Reads every record of a search in event-time order, page by page, from the tiers that
    hold the range; refuses when a tier fails, since a partial range would mislead."""

    async def fetch(
        settings: Any, tenant: str, q: str, start: datetime, end: datetime, limit: int
    ) -> tuple[list[Any], list[str]]:
        from core.query import parse
        from schemas.record import micros

        ast = parse(q or None)
        records: list[Any] = []
        tiers: set[str] = set()
        after = None
        while True:
            result = await engine.search(
                tenant, ast, micros(start), micros(end), order="asc", limit=1000, after=after
            )
            failed = [r for r in result.tiers if r.status != "ok"]
            if failed:
                from core.alerts.backtest import BacktestUnavailable

                raise BacktestUnavailable(
                    "the "
                    + ", ".join(f"{r.tier} tier ({r.status}: {r.error})" for r in failed)
                    + " did not answer; try again, or a range the other tiers hold"
                )
            tiers.update(r.tier for r in result.tiers)
            records.extend(result.logs)
            if result.next_after is None or len(records) >= limit:
                return records[:limit], sorted(tiers)
            after = result.next_after

    return fetch


@router.post("/rules/{rule_id}/test", response_model=TestResult)
async def test_rule(
    rule_id: str,
    body: TestRequest,
    principal: AdminKey,
    state: StateDep,
    engine: EngineDep,
    tenant: TenantQuery = None,
) -> Any:
    """Evaluate a rule over a past range of stored logs: when would it have fired and resolved?"""
    tenant_id = acting_tenant(principal, tenant, "its own tenant's rules")
    async with state.pool.connection() as conn:
        stored = _existing(await store.get_rule(conn, tenant_id, rule_id), rule_id)
    end = body.end or datetime.now(UTC)
    start = body.start if body.start.tzinfo else body.start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if end <= start:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="'to' must be after 'from'")
    if end - start > timedelta(days=31):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="test a rule over at most 31 days at once")
    from core.alerts.backtest import BacktestUnavailable, backtest

    try:
        result = await backtest(state.settings, stored.rule, start, end, fetch=_tier_reader(engine))
    except BacktestUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    return TestResult(rule_id=rule_id, start=start, end=end, **result)
