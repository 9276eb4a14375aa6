-- Log views: the template library, its counts per 5 minutes, and templates new to a service.
-- See dataflows/src/views/log_pattern.rs for the semantics. `log_pattern` is also the library
-- the miners reload at start, so fingerprint ids survive restarts. Counts are in log_pattern_5m
-- (a restart re-reads open windows, so a running count in the library would count lines twice).

CREATE TABLE IF NOT EXISTS log_pattern (
    tenant          text        NOT NULL,
    fingerprint_id  bigint      NOT NULL,
    pattern         text        NOT NULL,  -- the template; <*> marks a variable
    sample_message  text        NOT NULL,
    severity        text        NOT NULL,  -- the worst severity seen: TRACE DEBUG INFO WARN ERROR FATAL
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    PRIMARY KEY (tenant, fingerprint_id)
);

CREATE TABLE IF NOT EXISTS log_pattern_5m (
    bucket          timestamptz NOT NULL,
    tenant          text        NOT NULL,
    resource        text        NOT NULL,
    fingerprint_id  bigint      NOT NULL,
    count_total     bigint      NOT NULL,
    count_error     bigint      NOT NULL,
    sample_ref      text,
    PRIMARY KEY (bucket, tenant, resource, fingerprint_id)
);
CREATE INDEX IF NOT EXISTS log_pattern_5m_resource_bucket ON log_pattern_5m (tenant, resource, bucket);

CREATE TABLE IF NOT EXISTS log_pattern_new (
    tenant          text        NOT NULL,
    resource        text        NOT NULL,
    fingerprint_id  bigint      NOT NULL,
    first_seen      timestamptz NOT NULL,
    PRIMARY KEY (tenant, resource, fingerprint_id)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('log_pattern_5m', 'bucket', if_not_exists => TRUE, migrate_data => TRUE);
        PERFORM add_retention_policy('log_pattern_5m', INTERVAL '30 days', if_not_exists => TRUE);
    END IF;
END
$$;
