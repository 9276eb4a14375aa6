-- Span views: calls between services per 5 minutes, the live call graph, its history, and the
-- graph questions on it. Written by the engine (one transaction per frontier); see
-- dataflows/src/views/{service_call_5m,call_graph_active,blast_radius}.rs for the semantics.

CREATE TABLE IF NOT EXISTS service_call_5m (
    bucket          timestamptz      NOT NULL,
    tenant          text             NOT NULL,
    src             text             NOT NULL,  -- caller URN (urn:k8s:svc:<ns>/<name>, urn:ext:user, ...)
    dst             text             NOT NULL,  -- callee URN (a service, urn:db:, urn:queue:, urn:ext:)
    connection_type text             NOT NULL,  -- direct | virtual_node | database | messaging_system
    calls           double precision NOT NULL,  -- weighted by the sampling multiplier
    errors          double precision NOT NULL,
    rps             double precision NOT NULL,
    err_rate        double precision NOT NULL,
    p50_ms          double precision NOT NULL,
    p95_ms          double precision NOT NULL,
    p99_ms          double precision NOT NULL,
    server_p50_ms   double precision,
    server_p95_ms   double precision,
    sample_ref      text,
    PRIMARY KEY (bucket, tenant, src, dst, connection_type)
);
CREATE INDEX IF NOT EXISTS service_call_5m_src_bucket ON service_call_5m (tenant, src, bucket);
CREATE INDEX IF NOT EXISTS service_call_5m_dst_bucket ON service_call_5m (tenant, dst, bucket);

CREATE TABLE IF NOT EXISTS call_graph_active (
    tenant          text             NOT NULL,
    src             text             NOT NULL,
    dst             text             NOT NULL,
    connection_type text             NOT NULL,
    first_seen      timestamptz      NOT NULL,
    last_seen       timestamptz      NOT NULL,
    calls           double precision NOT NULL,
    rps             double precision NOT NULL,
    err_rate        double precision NOT NULL,
    p95_ms          double precision NOT NULL,
    PRIMARY KEY (tenant, src, dst, connection_type)
);

CREATE TABLE IF NOT EXISTS topo_edge_time (
    tenant      text        NOT NULL,
    src         text        NOT NULL,
    dst         text        NOT NULL,
    relation    text        NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,            -- null while the edge is active
    PRIMARY KEY (tenant, src, dst, relation, valid_from)
);
CREATE INDEX IF NOT EXISTS topo_edge_time_range ON topo_edge_time (tenant, valid_from, valid_to);

CREATE TABLE IF NOT EXISTS blast_radius (
    tenant      text   NOT NULL,
    service     text   NOT NULL,
    direction   text   NOT NULL,  -- downstream: what service calls (transitively); upstream: who calls it
    affected    text   NOT NULL,
    hops        bigint NOT NULL,
    PRIMARY KEY (tenant, service, direction, affected)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('service_call_5m', 'bucket', if_not_exists => TRUE, migrate_data => TRUE);
        PERFORM add_retention_policy('service_call_5m', INTERVAL '30 days', if_not_exists => TRUE);
    END IF;
END
$$;
