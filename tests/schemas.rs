//! A view's row type, its Arrow schema (schemas/arrow/<view>.json) and its Postgres table agree,
//! column for column, and the primary keys match. The raw archive's record types agree with
//! schemas/arrow/raw_<signal>.json, and its object keys are the Parquet sink's.

mod common;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use common::*;
use observebridge_connectors::parquet::ParquetSink;
use observebridge_connectors::postgres::{PostgresConfig, PostgresSink};
use observebridge_dataflows::decode::k8s::K8sEvent;
use observebridge_dataflows::record::{LogRecord, MetricPoint, Signal, Span};
use observebridge_dataflows::views::raw_archive::{self, ArchiveRow, RawLocatorRow};
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
        DataType::Int32 => "int32".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(item) => format!("list<{}>", arrow_type_name(item.data_type())),
        DataType::Struct(fields) => {
            let fields: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.name(), arrow_type_name(f.data_type()))).collect();
            format!("struct<{}>", fields.join(", "))
        }
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

/// The schema file `schemas/arrow/<name>.json` describes `schema`, field for field; returns it.
fn check_arrow_file(name: &str, schema: &SchemaRef) -> serde_json::Value {
    let file = format!("{}/schemas/arrow/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("schema file")).expect("json");
    let fields = doc["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), schema.fields().len(), "{file}");
    for (f, spec) in schema.fields().iter().zip(fields) {
        assert_eq!(f.name(), spec["name"].as_str().expect("name"), "{file}");
        assert_eq!(arrow_type_name(f.data_type()), spec["type"].as_str().expect("type"), "{}: {}", file, f.name());
        assert_eq!(f.is_nullable(), spec["nullable"].as_bool().expect("nullable"), "{}: {}", file, f.name());
    }
    doc
}

fn check_view<R: ViewRow>() {
    let schema: SchemaRef = R::schema();
    let doc = check_arrow_file(R::VIEW, &schema);
    let fields = doc["fields"].as_array().expect("fields");
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

#[test]
fn raw_locator_row_arrow_and_postgres_agree() {
    check_view::<RawLocatorRow>();
}

/// A raw archive record type agrees with `schemas/arrow/raw_<signal>.json`.
fn check_archive<R: ArchiveRow>() {
    let name = format!("raw_{}", R::SIGNAL.name());
    let doc = check_arrow_file(&name, &R::schema());
    assert_eq!(doc["dataset"].as_str(), Some(raw_archive::dataset(R::SIGNAL)), "{name}");
}

#[test]
fn raw_archive_records_and_their_arrow_schemas_agree() {
    check_archive::<Span>();
    check_archive::<LogRecord>();
    check_archive::<MetricPoint>();
    check_archive::<K8sEvent>();
}

#[test]
fn raw_archive_keys_are_the_parquet_sinks() {
    // 2026-11-21T13:05:00Z, and a minute at the turn of a year.
    for minute in [1_795_266_300_000i64, 1_798_761_540_000, 0] {
        for signal in [Signal::Metrics, Signal::Spans, Signal::Logs, Signal::K8s] {
            assert_eq!(raw_archive::object_key(signal, minute), ParquetSink::object_key(raw_archive::dataset(signal), minute));
        }
    }
    assert_eq!(raw_archive::object_key(Signal::Spans, 1_795_266_300_000), "raw/spans/date=2026-11-21/hour=13/minute=05/spans-20261121T1305Z.parquet");
}
