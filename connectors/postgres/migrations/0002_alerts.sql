-- Alert rules, their history and the notifications owed for it (issue #7).

-- A rule's definition is one validated JSON document (jobs/alerts/rules.py is its schema), so a
-- new rule option needs no migration. revision is bumped on every change: the alerts job resets
-- a group's windows when the window or slide of its rule changed.
CREATE TABLE alert_rules (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    spec            jsonb NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    revision        integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_rules_tenant ON alert_rules (tenant_id, name);

-- Every state change of every group, written by `strata alerts notify` from the job's events.
-- event_id is a hash of (rule, group, state, window end), so a replayed event is one row.
-- rule_id is not a foreign key: the history of a deleted rule stays readable.
CREATE TABLE alert_history (
    event_id        text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id         text NOT NULL,
    rule_name       text NOT NULL,
    state           text NOT NULL CHECK (state IN ('OK', 'PENDING', 'FIRING', 'RESOLVED')),
    notify          boolean NOT NULL,
    severity        text NOT NULL,
    group_id        text NOT NULL,
    group_values    jsonb NOT NULL,
    value           double precision,
    comparison      text NOT NULL,
    threshold       double precision NOT NULL,
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    since           timestamptz,
    samples         jsonb NOT NULL DEFAULT '[]',
    reason          text NOT NULL DEFAULT '',
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_history_tenant ON alert_history (tenant_id, window_end DESC);
CREATE INDEX alert_history_rule ON alert_history (rule_id, window_end DESC);

-- The notifier's last word on each group. After a restart the job may replay a transition it had
-- already emitted (with another window end); this is what recognises it as a repeat.
CREATE TABLE alert_groups (
    rule_id         text NOT NULL,
    group_id        text NOT NULL,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    state           text NOT NULL,
    notified        boolean NOT NULL,
    window_end      timestamptz NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (rule_id, group_id)
);

-- The outbox: one row per (event, channel), retried with backoff until the receiver takes it.
-- Rows are claimed with FOR UPDATE SKIP LOCKED, so several notifiers can share the work.
CREATE TABLE alert_notifications (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL REFERENCES alert_history (event_id) ON DELETE CASCADE,
    tenant_id       text NOT NULL,
    rule_id         text NOT NULL,
    channel         jsonb NOT NULL,
    channel_key     text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (event_id, channel_key)
);
CREATE INDEX alert_notifications_due ON alert_notifications (next_attempt_at) WHERE status = 'pending';
