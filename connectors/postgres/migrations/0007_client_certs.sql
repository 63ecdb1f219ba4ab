-- Client certificates that identify a tenant, as keys do: the API and the syslog receiver accept
-- a TLS client whose certificate's SHA-256 fingerprint is registered here (`strata tenant cert-add`).
-- The fingerprint, not the subject, is what is trusted: a CA may issue another certificate with
-- the same subject, but never one with the same fingerprint.
CREATE TABLE client_certs (
    fingerprint     text PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    subject         text NOT NULL DEFAULT '',
    scopes          text[] NOT NULL DEFAULT ARRAY['ingest'],
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    last_used_at    timestamptz
);
CREATE INDEX client_certs_tenant ON client_certs (tenant_id);
