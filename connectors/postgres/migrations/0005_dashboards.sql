-- Saved dashboards of the web app, per tenant.

-- A dashboard's panels are one validated JSON list (api/routers/dashboards.py is its schema), so a
-- new panel option needs no migration. A name is unique within its tenant, so the page can offer
-- dashboards by name.
CREATE TABLE dashboards (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    panels          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
