"""``strata metrics``: list, add and delete a tenant's metric rules (metrics from fields).

strata metrics rules --tenant T
strata metrics add --tenant T --name N --field latency [--service S …] [--level L …] [--q Q] [--unit ms]
strata metrics delete --tenant T RULE

The same rules as ``/v1/metrics/rules`` (docs/metrics.md), validated and audited the same way; the
field metrics job (``strata job run fieldmetrics``) picks a change up within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from infra.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    rules = sub.add_parser("rules", help="the tenant's metric rules")
    rules.add_argument("--tenant", required=True)
    add = sub.add_parser("add", help="add a metric rule")
    add.add_argument("--tenant", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--field", required=True, help="the attribute to measure: latency, bytes, status")
    add.add_argument("--service", action="append", default=[], help="only these services (repeat)")
    add.add_argument("--level", action="append", default=[], help="only these levels (repeat)")
    add.add_argument("--q", help="only records this query finds (the search language)")
    add.add_argument("--unit", default="", help="what a bare number means: ms, s, us, ns or bytes")
    delete = sub.add_parser("delete", help="delete a metric rule (what it stored stays)")
    delete.add_argument("--tenant", required=True)
    delete.add_argument("rule", help="the rule's id or name")


async def _run(args: argparse.Namespace) -> int:
    import psycopg
    from pydantic import ValidationError

    from connectors.postgres import audit
    from connectors.postgres import metric_rules as store
    from core.fieldmetrics import MetricRuleSpec

    settings = get_settings()
    async with await psycopg.AsyncConnection.connect(settings.postgres_dsn) as conn:
        if args.action == "rules":
            for stored in await store.list_rules(conn, args.tenant):
                r = stored.rule
                where = ", ".join(r.filter.services) or "every service"
                state = "" if r.enabled else "  (disabled)"
                print(
                    f"{r.id}  {r.name!r}  field {r.field}{' in ' + r.unit if r.unit else ''}  {where}{state}"
                )
            return 0
        if args.action == "add":
            body = {
                "name": args.name,
                "field": args.field,
                "unit": args.unit,
                "filter": {"services": args.service, "levels": args.level, "q": args.q},
            }
            try:
                spec = MetricRuleSpec.model_validate(body)
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    where = ".".join(str(p) for p in error["loc"])
                    print(f"strata metrics add: {where}: {error['msg']}", file=sys.stderr)
                return 2
            async with conn.transaction():
                if await store.count_rules(conn, args.tenant) >= settings.metric_rules_max_per_tenant:
                    print(
                        f"strata metrics add: {args.tenant} has {settings.metric_rules_max_per_tenant} "
                        "metric rules, the most it may have",
                        file=sys.stderr,
                    )
                    return 1
                try:
                    stored = await store.create_rule(conn, args.tenant, spec)
                except store.DuplicateName:
                    print(
                        f"strata metrics add: {args.tenant} has a rule named {args.name!r}", file=sys.stderr
                    )
                    return 1
                except psycopg.errors.ForeignKeyViolation:
                    print(f"strata metrics add: no tenant {args.tenant!r}", file=sys.stderr)
                    return 1
                await audit.record(
                    conn,
                    audit.Actor.cli(),
                    args.tenant,
                    "metric_rule.create",
                    target=stored.rule.id,
                    details={"name": spec.name, "field": spec.field, "revision": 1, "enabled": True},
                )
            print(stored.rule.id)
            return 0
        async with conn.transaction():
            found = await store.get_rule(conn, args.tenant, args.rule)
            if found is None or not await store.delete_rule(conn, args.tenant, found.rule.id):
                print(
                    f"strata metrics delete: no metric rule {args.rule!r} in {args.tenant}", file=sys.stderr
                )
                return 1
            await audit.record(
                conn, audit.Actor.cli(), args.tenant, "metric_rule.delete", target=found.rule.id
            )
        return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
