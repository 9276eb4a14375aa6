//! `<view>_history`: a view's Parquet output on object storage as a table.
//!
//! The Parquet sink writes `<prefix>/<view>/date=YYYY-MM-DD/hour=HH/<view>-YYYYMMDDTHHMMSSZ.parquet`
//! (one object per final window, see `connectors/src/parquet/sink.rs`); each history table is a
//! DataFusion `ListingTable` over `<prefix>/<view>/` with the hive partition columns `date` and
//! `hour` (text, as in the object keys) after the view's own columns. Objects are listed at every
//! query, so a window written a moment ago is visible at once.
//!
//! Pruning: filters on `date`/`hour` select the partitions to list; so do filters on `bucket`
//! (the window start the partition is named after): `bucket >= T` adds
//! `date > D OR (date = D AND hour >= H)` for T's date D and hour H, `bucket <= T` the mirror
//! image, `bucket = T` both. Other filters (`tenant`, `resource` ...) go down to the Parquet
//! reader, which skips row groups by their statistics. A tenant token's query gets a filter on
//! its tenant above the Parquet scan, whatever the SQL says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, ScalarValue, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, col, lit};
use datafusion::physical_expr::expressions::{BinaryExpr as PhysicalBinary, Column, Literal};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use observebridge_connectors::parquet::ObjectStoreConfig;
use url::Url;

use crate::catalog::QueryScope;
use crate::error::ServeError;
use crate::live::DIM_RESOURCE;

/// The hive partition columns of every history table, in key order.
pub const PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

const HOUR_MICROS: i64 = 3_600_000_000;

/// The column whose value names a row's partition (the window start of windowed views).
const TIME_COLUMN: &str = "bucket";

/// Where history is read from, and the history tables built so far.
#[derive(Debug)]
pub(crate) struct History {
    /// `s3://bucket/prefix` or `file:///abs/dir`, without a trailing `/`.
    base: String,
    tables: Mutex<HashMap<String, Arc<HistoryTable>>>,
}

impl History {
    /// Builds the object store of `cfg` and registers it with the query runtime.
    pub(crate) fn new(cfg: &ObjectStoreConfig, runtime: &RuntimeEnv) -> Result<History, ServeError> {
        let (store, prefix) = cfg.build()?;
        let engine = |e: String| ServeError::Engine(format!("history at {}: {e}", cfg.url));
        let (root, base) = if cfg.url.starts_with("s3://") {
            let parsed = Url::parse(&cfg.url).map_err(|e| engine(e.to_string()))?;
            let bucket = parsed.host_str().unwrap_or_default();
            let root = format!("s3://{bucket}");
            let base = if prefix.as_ref().is_empty() { root.clone() } else { format!("{root}/{}", prefix.as_ref()) };
            (root, base)
        } else {
            // A local directory: the store is the whole file system, the prefix its absolute path.
            ("file:///".to_string(), format!("file:///{}", prefix.as_ref()))
        };
        let root = Url::parse(&root).map_err(|e| engine(e.to_string()))?;
        runtime.register_object_store(&root, store);
        tracing::info!(base, "history tables read parquet from here");
        Ok(History { base, tables: Mutex::new(HashMap::new()) })
    }

    /// Whether a table has a history table (every view; not `dim_resource`).
    pub(crate) fn has_history(view: &str) -> bool {
        view != DIM_RESOURCE
    }

    /// The history table of `view`, whose rows have `schema`.
    pub(crate) fn table(&self, view: &str, schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(table) = tables.get(view)
            && table.file_schema == schema
        {
            return Ok(Arc::clone(table) as Arc<dyn TableProvider>);
        }
        let url = ListingTableUrl::parse(format!("{}/{view}/", self.base))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(PARTITION_COLUMNS.iter().map(|c| (c.to_string(), DataType::Utf8)).collect());
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(Arc::clone(&schema));
        let table = Arc::new(HistoryTable { file_schema: schema, inner: Arc::new(ListingTable::try_new(config)?) });
        tables.insert(view.to_string(), Arc::clone(&table));
        Ok(table)
    }
}

/// A view's history: a listing table of its Parquet objects, tenant-scoped.
#[derive(Debug)]
struct HistoryTable {
    file_schema: SchemaRef,
    inner: Arc<ListingTable>,
}

#[async_trait]
impl TableProvider for HistoryTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let scope = QueryScope::of(state)?;
        let mut filters = filters.to_vec();
        let derived: Vec<Expr> = filters.iter().filter_map(partition_filter).collect();
        filters.extend(derived);
        let Some(tenant) = scope.tenant.clone() else {
            return self.inner.scan(state, projection, &filters, limit).await;
        };
        let schema = self.schema();
        let Ok(tenant_index) = schema.index_of("tenant") else {
            // A tenant-scoped query sees nothing of a table without tenants.
            return Ok(Arc::new(EmptyExec::new(project_schema(&schema, projection)?)));
        };
        filters.push(col("tenant").eq(lit(tenant.clone())));
        // Scan the requested columns plus `tenant`, keep the tenant's rows, drop `tenant` again
        // when it was not asked for.
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        let mut scanned = wanted.clone();
        if !scanned.contains(&tenant_index) {
            scanned.push(tenant_index);
        }
        let plan = self.inner.scan(state, Some(&scanned), &filters, None).await?;
        let at = scanned.iter().position(|i| *i == tenant_index).unwrap_or_default();
        let predicate = Arc::new(PhysicalBinary::new(Arc::new(Column::new("tenant", at)), Operator::Eq, Arc::new(Literal::new(ScalarValue::Utf8(Some(tenant))))));
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, plan)?);
        let exprs: Vec<ProjectionExpr> = wanted
            .iter()
            .enumerate()
            .map(|(position, index)| {
                let name = schema.field(*index).name().clone();
                ProjectionExpr { expr: Arc::new(Column::new(&name, position)), alias: name }
            })
            .collect();
        let projected: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, filtered)?);
        Ok(match limit {
            Some(n) => Arc::new(GlobalLimitExec::new(projected, 0, Some(n))),
            None => projected,
        })
    }
}

/// The partition filter implied by a filter on the time column, if it is a comparison with a
/// timestamp literal (see the module docs).
fn partition_filter(filter: &Expr) -> Option<Expr> {
    let (op, micros) = match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (time_column(left), timestamp_micros(right), time_column(right), timestamp_micros(left)) {
            (true, Some(t), _, _) => (*op, t),
            // `T <= bucket` is `bucket >= T`.
            (_, _, true, Some(t)) => (op.swap()?, t),
            _ => return None,
        },
        Expr::Between(between) if !between.negated && time_column(&between.expr) => {
            let low = timestamp_micros(&between.low)?;
            let high = timestamp_micros(&between.high)?;
            return Some(bound(Operator::GtEq, low)?.and(bound(Operator::LtEq, high)?));
        }
        _ => return None,
    };
    bound(op, micros)
}

fn bound(op: Operator, micros: i64) -> Option<Expr> {
    let at = DateTime::<Utc>::from_timestamp_micros(micros)?;
    let (date, hour) = (lit(at.format("%Y-%m-%d").to_string()), lit(at.format("%H").to_string()));
    let same_date = || col("date").eq(date.clone());
    Some(match op {
        Operator::Gt | Operator::GtEq => col("date").gt(date.clone()).or(same_date().and(col("hour").gt_eq(hour))),
        // `bucket < 13:00:00` cannot be in hour 13.
        Operator::Lt if micros.rem_euclid(HOUR_MICROS) == 0 => col("date").lt(date.clone()).or(same_date().and(col("hour").lt(hour))),
        Operator::Lt | Operator::LtEq => col("date").lt(date.clone()).or(same_date().and(col("hour").lt_eq(hour))),
        Operator::Eq => same_date().and(col("hour").eq(hour)),
        _ => return None,
    })
}

fn time_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == TIME_COLUMN)
}

/// A timestamp literal (any unit) in µs since the epoch.
fn timestamp_micros(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else { return None };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Expr {
        let micros = DateTime::parse_from_rfc3339(s).expect("time").timestamp_micros();
        lit(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
    }

    #[test]
    fn bucket_bounds_become_partition_filters() {
        let f = partition_filter(&col("bucket").gt_eq(ts("2026-11-21T13:05:00Z"))).expect("derived");
        assert_eq!(f.to_string(), r#"date > Utf8("2026-11-21") OR date = Utf8("2026-11-21") AND hour >= Utf8("13")"#);
        let f = partition_filter(&ts("2026-11-21T13:05:00Z").lt(col("bucket"))).expect("derived");
        assert!(f.to_string().starts_with(r#"date > Utf8("2026-11-21")"#), "{f}");
        let f = partition_filter(&col("bucket").lt(ts("2026-11-22T00:00:00Z"))).expect("derived");
        assert!(f.to_string().contains(r#"hour < Utf8("00")"#), "{f}");
        let f = partition_filter(&col("bucket").lt(ts("2026-11-22T00:30:00Z"))).expect("derived");
        assert!(f.to_string().contains(r#"hour <= Utf8("00")"#), "{f}");
        let f = partition_filter(&col("bucket").between(ts("2026-11-21T12:00:00Z"), ts("2026-11-21T13:00:00Z"))).expect("derived");
        assert!(f.to_string().contains(r#"hour >= Utf8("12")"#) && f.to_string().contains(r#"hour <= Utf8("13")"#), "{f}");
        assert!(partition_filter(&col("tenant").eq(lit("a"))).is_none());
        assert!(partition_filter(&col("bucket").not_eq(ts("2026-11-21T13:05:00Z"))).is_none());
    }
}
