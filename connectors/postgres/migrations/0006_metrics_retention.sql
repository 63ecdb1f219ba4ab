-- Retention of log metrics per resolution (docs/metrics.md) as tiers of the tenant's retention.

-- A tenant's own days per resolution; NULL keeps the default from settings. Only shorter than the
-- default: the sweep drops whole indices at the default (core/retention.py check_override).
ALTER TABLE tenant_retention
    ADD COLUMN metrics_1m_days integer CHECK (metrics_1m_days >= 1),
    ADD COLUMN metrics_1h_days integer CHECK (metrics_1h_days >= 1),
    ADD COLUMN metrics_1d_days integer CHECK (metrics_1d_days >= 1);

ALTER TABLE retention_log DROP CONSTRAINT retention_log_tier_check;
ALTER TABLE retention_log ADD CONSTRAINT retention_log_tier_check
    CHECK (tier IN ('hot', 'warm', 'cold', 'metrics'));
