-- Rules that turn a field of matching records into metrics (docs/metrics.md, "Metrics from fields").

-- The definition is one validated JSON document (core/fieldmetrics.py MetricRuleSpec), so a new
-- option needs no migration. A name is unique within its tenant: the metrics endpoint and the
-- dashboards name a rule by its id or its name. revision goes up with every change, so a running
-- job sees that a rule changed.
CREATE TABLE metric_rules (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    spec            jsonb NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    revision        integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
