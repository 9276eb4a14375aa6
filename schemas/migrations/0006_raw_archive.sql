-- The raw archive's locators: one row per Parquet object of the raw archive
-- (raw/<signal>/date=YYYY-MM-DD/hour=HH/minute=MM/<signal>-YYYYMMDDTHHMMZ.parquet, one per signal
-- and minute of event time). See dataflows/src/views/raw_archive.rs.
--
-- service_call_5m.sample_ref and log_pattern_5m.sample_ref are '<id>#<column>=<value>&...': the
-- id of a row here, and the columns that select the example record in its object
-- (trace_id and span_id for spans, line_id for logs).

CREATE TABLE IF NOT EXISTS raw_locator (
    id          text        NOT NULL,  -- xxh3-64 of object_key, 16 hex digits
    dataset     text        NOT NULL,  -- raw/spans raw/logs raw/metrics raw/k8s
    object_key  text        NOT NULL,  -- relative to the Parquet sink's root
    t_from      timestamptz NOT NULL,  -- the object's minute: [t_from, t_to)
    t_to        timestamptz NOT NULL,
    query_hint  text        NOT NULL,  -- a DuckDB / DataFusion query reading the object
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS raw_locator_dataset_time ON raw_locator (dataset, t_from);
