-- Tenants, their API keys and registered agents (issue #5).
-- A tenant id is the short name stamped on every record; it never changes once records carry it.
CREATE TABLE tenants (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name            text NOT NULL,
    -- NULL: the server-wide default (STRATA_INGEST_RATE_PER_S).
    rate_per_s      double precision CHECK (rate_per_s IS NULL OR rate_per_s >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz
);

CREATE TABLE agents (
    client_id       text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    organization    text NOT NULL,
    environment     text NOT NULL DEFAULT '',
    agent_version   text NOT NULL DEFAULT '',
    hostname        text NOT NULL DEFAULT '',
    registered_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz
);
CREATE INDEX agents_tenant ON agents (tenant_id);

-- A key is shown once as strata_<key_id>_<secret>; only sha256(secret) is kept. The secret is
-- 256 random bits, so a fast hash is enough: there is nothing to brute-force as with passwords.
CREATE TABLE api_keys (
    key_id          text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    secret_sha256   bytea NOT NULL,
    scopes          text[] NOT NULL DEFAULT ARRAY['ingest'],
    agent_id        text REFERENCES agents (client_id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Rotation keeps the old key working until expires_at, so agents can switch without a gap.
    expires_at      timestamptz,
    revoked_at      timestamptz,
    rotated_to      text REFERENCES api_keys (key_id),
    last_used_at    timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- File uploads are processed in the background; any API worker can report their progress.
CREATE TABLE upload_jobs (
    job_id          text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    service         text NOT NULL,
    filename        text NOT NULL,
    state           text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    bytes_total     bigint NOT NULL DEFAULT 0,
    bytes_read      bigint NOT NULL DEFAULT 0,
    lines           bigint NOT NULL DEFAULT 0,
    accepted        bigint NOT NULL DEFAULT 0,
    rejected        bigint NOT NULL DEFAULT 0,
    error           text,
    -- The first refused lines (line number, reason), so a user can fix the file.
    errors          jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX upload_jobs_tenant ON upload_jobs (tenant_id, created_at DESC);
