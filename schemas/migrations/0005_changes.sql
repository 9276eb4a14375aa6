-- Kubernetes changes and change correlation. See dataflows/src/changes/ (detection, diffs) and
-- dataflows/src/views/correlation.rs (impact, regressions, suspects and their score).
-- Secret values never reach these tables: diffs carry key names and keyed hashes (hmac:...).

CREATE TABLE IF NOT EXISTS change_event (
    tenant       text        NOT NULL,
    change_id    text        NOT NULL,  -- hash of the object and its resourceVersion
    resource     text        NOT NULL,  -- the object: urn:k8s:deploy:<ns>/<name>, urn:k8s:configmap:...
    service      text        NOT NULL,  -- the service it maps to: urn:k8s:svc:<ns>/<name>
    kind         text        NOT NULL,  -- Deployment, ConfigMap, Secret, Pod (events) ...
    change_type  text        NOT NULL,  -- image env command resources rollout scale metadata configmap secret service deleted event:<Reason>
    detected_at  timestamptz NOT NULL,
    summary      text        NOT NULL,
    diff         jsonb       NOT NULL,  -- [{field, change, old?, new?}]
    PRIMARY KEY (tenant, change_id)
);
CREATE INDEX IF NOT EXISTS change_event_service_time ON change_event (tenant, service, detected_at);

CREATE TABLE IF NOT EXISTS change_impact (
    tenant       text             NOT NULL,
    change_id    text             NOT NULL,
    resource     text             NOT NULL,  -- the service measured
    signal       text             NOT NULL,  -- err_rate p95_ms calls error_logs new_patterns metric:<name>
    relation     text             NOT NULL,  -- self callee caller (of the changed service)
    detected_at  timestamptz      NOT NULL,
    before       double precision,
    after        double precision,
    delta        double precision,
    score        double precision NOT NULL,
    PRIMARY KEY (tenant, change_id, resource, signal)
);

CREATE TABLE IF NOT EXISTS regression (
    tenant         text             NOT NULL,
    regression_id  text             NOT NULL,
    service        text             NOT NULL,
    signal         text             NOT NULL,
    started_at     timestamptz      NOT NULL,
    cleared_at     timestamptz,                -- null while open
    baseline       double precision NOT NULL,
    peak           double precision NOT NULL,
    PRIMARY KEY (tenant, regression_id)
);

CREATE TABLE IF NOT EXISTS regression_suspect (
    tenant           text             NOT NULL,
    regression_id    text             NOT NULL,
    change_id        text             NOT NULL,
    service          text             NOT NULL,  -- the regressed service
    signal           text             NOT NULL,
    started_at       timestamptz      NOT NULL,
    changed_service  text             NOT NULL,
    change_type      text             NOT NULL,
    detected_at      timestamptz      NOT NULL,
    rank             bigint           NOT NULL,  -- 1 = most likely
    score            double precision NOT NULL,
    hops             bigint           NOT NULL,  -- 0 = the service itself
    evidence         jsonb            NOT NULL,
    PRIMARY KEY (tenant, regression_id, change_id)
);
CREATE INDEX IF NOT EXISTS regression_suspect_service ON regression_suspect (tenant, service, rank);
