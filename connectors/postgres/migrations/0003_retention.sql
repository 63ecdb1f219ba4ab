-- Retention per tenant and the log of every deletion a retention sweep made.

-- A tenant's own days per tier; NULL keeps the default from settings (core/retention.py).
CREATE TABLE tenant_retention (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    hot_days        integer CHECK (hot_days >= 0),
    warm_days       integer CHECK (warm_days >= 0),
    archive_days    integer CHECK (archive_days >= 1),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What was deleted (or, for a dry run, would have been), why and how much. tenant_id is NULL for
-- what all tenants share (a whole daily index), and not a foreign key: the log outlives tenants.
CREATE TABLE retention_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    tier            text NOT NULL CHECK (tier IN ('hot', 'warm', 'cold')),
    tenant_id       text,
    target          text NOT NULL,
    reason          text NOT NULL,
    records         bigint,
    bytes           bigint,
    dry_run         boolean NOT NULL
);
CREATE INDEX retention_log_tenant ON retention_log (tenant_id, at DESC);
