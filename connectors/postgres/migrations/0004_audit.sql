-- Who changed what, and from where: keys, alert rules, retention, tenants, and every use of the
-- admin token. Each row is written in the same transaction as the change it describes, so a change
-- without its entry (or an entry without its change) cannot be committed.
-- tenant_id is not a foreign key: the trail of a removed tenant stays readable.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_id       text,
    -- 'key:<key_id>', 'admin-token' or 'cli:<os user>'; never a secret.
    actor           text NOT NULL,
    action          text NOT NULL,
    target          text NOT NULL DEFAULT '',
    details         jsonb NOT NULL DEFAULT '{}',
    client_addr     text
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_tenant_action ON audit_log (tenant_id, action, id DESC);
