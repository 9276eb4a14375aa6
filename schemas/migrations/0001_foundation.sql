-- ObserveBridge foundation: dimensions, progress, metric_1m.
-- Each view table's columns agree with its Arrow schema (schemas/arrow/<view>.json); a test checks it.

CREATE TABLE IF NOT EXISTS dim_tenant (
    tenant      text        PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dim_resource (
    tenant      text        NOT NULL,
    urn         text        NOT NULL,
    kind        text        NOT NULL,  -- svc, deploy, host, db, ext, pod, ... (the URN's third part)
    namespace   text,
    name        text        NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, urn)
);

-- One row per (job, sink): the last frontier whose changes were applied, in the same transaction
-- as those changes.
CREATE TABLE IF NOT EXISTS ob_progress (
    job         text        NOT NULL,
    sink        text        NOT NULL,
    epoch       bigint      NOT NULL,
    watermark   timestamptz,
    positions   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, sink)
);

CREATE TABLE IF NOT EXISTS metric_1m (
    bucket      timestamptz      NOT NULL,
    tenant      text             NOT NULL,
    resource    text             NOT NULL,
    metric      text             NOT NULL,
    series      text             NOT NULL,
    count       bigint           NOT NULL,
    sum         double precision NOT NULL,
    avg         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    p50         double precision NOT NULL,
    p95         double precision NOT NULL,
    p99         double precision NOT NULL,
    labels      jsonb            NOT NULL,
    PRIMARY KEY (bucket, tenant, resource, metric, series)
);
CREATE INDEX IF NOT EXISTS metric_1m_resource_bucket ON metric_1m (tenant, resource, bucket);
