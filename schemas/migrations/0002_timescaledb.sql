-- TimescaleDB hypertables and retention when the extension is available; skipped otherwise.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('metric_1m', 'bucket', if_not_exists => TRUE, migrate_data => TRUE);
        PERFORM add_retention_policy('metric_1m', INTERVAL '30 days', if_not_exists => TRUE);
    END IF;
END
$$;
