//! A view's row type, its Arrow schema (schemas/arrow/<view>.json) and its Postgres table agree,
//! column for column, and the primary keys match.

mod common;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use common::*;
use observebridge_connectors::postgres::{PostgresConfig, PostgresSink};
use observebridge_dataflows::views::blast_radius::BlastRadiusRow;
use observebridge_dataflows::views::call_graph_active::{CallGraphActiveRow, TopoEdgeTimeRow};
use observebridge_dataflows::views::change_event::ChangeEventRow;
use observebridge_dataflows::views::correlation::{ChangeImpactRow, RegressionRow, RegressionSuspectRow};
use observebridge_dataflows::views::log_pattern::{LogPattern5mRow, LogPatternNewRow, LogPatternRow};
use observebridge_dataflows::views::metric_1m::Metric1mRow;
use observebridge_dataflows::views::service_call_5m::ServiceCall5mRow;
use observebridge_dataflows::views::ViewRow;

fn arrow_type_name(t: &DataType) -> String {
    match t {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => format!("timestamp[us, {tz}]"),
        DataType::Utf8 => "utf8".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "float64".into(),
        other => format!("{other:?}"),
    }
}

fn postgres_type_for(arrow: &str) -> &'static str {
    match arrow {
        "timestamp[us, UTC]" => "timestamp with time zone",
        "utf8" => "text",
        "int64" => "bigint",
        "float64" => "double precision",
        _ => "unknown",
    }
}

fn check_view<R: ViewRow>() {
    let schema: SchemaRef = R::schema();
    let file = format!("{}/schemas/arrow/{}.json", env!("CARGO_MANIFEST_DIR"), R::VIEW);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("schema file")).expect("json");
    let fields = doc["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), schema.fields().len(), "{file}");
    for (f, spec) in schema.fields().iter().zip(fields) {
        assert_eq!(f.name(), spec["name"].as_str().expect("name"), "{file}");
        assert_eq!(arrow_type_name(f.data_type()), spec["type"].as_str().expect("type"), "{}: {}", file, f.name());
        assert_eq!(f.is_nullable(), spec["nullable"].as_bool().expect("nullable"), "{}: {}", file, f.name());
    }
    let key: Vec<&str> = doc["primary_key"].as_array().expect("primary_key").iter().filter_map(|k| k.as_str()).collect();
    assert_eq!(key, R::KEY_COLUMNS);

    // The Postgres table the migrations create.
    let schema_name = unique("schemas");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let cfg: PostgresConfig = serde_yaml_ng::from_str(&format!("url: {}\nschema: {schema_name}\n", pg_url())).expect("config");
        let sink = PostgresSink::connect(&cfg).await.expect("connect");
        sink.migrate().await.expect("migrate");
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(&schema_name)
        .bind(R::VIEW)
        .fetch_all(sink.pool())
        .await
        .expect("columns");
        assert_eq!(columns.len(), fields.len(), "{} columns in postgres: {columns:?}", R::VIEW);
        for ((name, pg_type, nullable), spec) in columns.iter().zip(fields) {
            assert_eq!(name, spec["name"].as_str().expect("name"));
            let want = spec.get("postgres").and_then(|p| p.as_str()).unwrap_or_else(|| postgres_type_for(spec["type"].as_str().expect("type")));
            assert_eq!(pg_type, want, "{}.{name}", R::VIEW);
            assert_eq!(nullable == "YES", spec["nullable"].as_bool().expect("nullable"), "{}.{name}", R::VIEW);
        }
        let pk: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = ($1 || '.' || $2)::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        )
        .bind(&schema_name)
        .bind(R::VIEW)
        .fetch_all(sink.pool())
        .await
        .expect("primary key");
        assert_eq!(pk, R::KEY_COLUMNS);
    });
}

#[test]
fn metric_1m_row_arrow_and_postgres_agree() {
    check_view::<Metric1mRow>();
}

#[test]
fn service_call_5m_row_arrow_and_postgres_agree() {
    check_view::<ServiceCall5mRow>();
}

#[test]
fn call_graph_active_row_arrow_and_postgres_agree() {
    check_view::<CallGraphActiveRow>();
}

#[test]
fn topo_edge_time_row_arrow_and_postgres_agree() {
    check_view::<TopoEdgeTimeRow>();
}

#[test]
fn blast_radius_row_arrow_and_postgres_agree() {
    check_view::<BlastRadiusRow>();
}

#[test]
fn log_pattern_row_arrow_and_postgres_agree() {
    check_view::<LogPatternRow>();
}

#[test]
fn log_pattern_5m_row_arrow_and_postgres_agree() {
    check_view::<LogPattern5mRow>();
}

#[test]
fn log_pattern_new_row_arrow_and_postgres_agree() {
    check_view::<LogPatternNewRow>();
}

#[test]
fn change_event_row_arrow_and_postgres_agree() {
    check_view::<ChangeEventRow>();
}

#[test]
fn change_impact_row_arrow_and_postgres_agree() {
    check_view::<ChangeImpactRow>();
}

#[test]
fn regression_row_arrow_and_postgres_agree() {
    check_view::<RegressionRow>();
}

#[test]
fn regression_suspect_row_arrow_and_postgres_agree() {
    check_view::<RegressionSuspectRow>();
}
