//! The DataFusion catalog: schema `public` of catalog `observebridge` lists every live view,
//! `dim_resource` and, with history configured, every `<view>_history`.
//!
//! Tables are resolved by name at planning time, but read at physical planning time from the
//! [`QueryScope`] the query carries in its session config: the snapshot it pinned and the tenant
//! it may see. A query therefore reads every table at one frontier, and a tenant token's query
//! only ever gets its tenant's rows: the scan drops the others, whatever the SQL says.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, Scalar, StringArray};
use arrow::compute::kernels::boolean::and;
use arrow::compute::kernels::cmp::eq;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, Result, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::history::History;
use crate::live::{LiveViews, Snapshot, TableSnapshot};

/// The catalog (Postgres: database) every table is in.
pub const CATALOG: &str = "observebridge";
/// The schema every table is in.
pub const SCHEMA: &str = "public";
/// Suffix of the tables over a view's Parquet output.
pub const HISTORY_SUFFIX: &str = "_history";

/// What one query reads: the snapshot it pinned and the tenant it may see (`None`: all).
#[derive(Clone, Debug)]
pub struct QueryScope {
    pub snapshot: Arc<Snapshot>,
    pub tenant: Option<String>,
}

impl QueryScope {
    /// The scope of the query being planned, from its session config.
    pub(crate) fn of(state: &dyn Session) -> Result<Arc<QueryScope>> {
        state.config().get_extension::<QueryScope>().ok_or_else(|| DataFusionError::Internal("query has no scope (snapshot and tenant)".into()))
    }
}

/// Schema `public`: the live views, `dim_resource`, and the history tables.
#[derive(Debug)]
pub(crate) struct ViewSchema {
    live: Arc<LiveViews>,
    history: Option<Arc<History>>,
}

impl ViewSchema {
    pub(crate) fn new(live: Arc<LiveViews>, history: Option<Arc<History>>) -> Self {
        ViewSchema { live, history }
    }

    /// The view a `<view>_history` name is the history of, if history is configured.
    fn history_of<'a>(&self, name: &'a str, snapshot: &Snapshot) -> Option<&'a str> {
        let view = name.strip_suffix(HISTORY_SUFFIX)?;
        (self.history.is_some() && History::has_history(view) && snapshot.table(view).is_some()).then_some(view)
    }
}

#[async_trait]
impl SchemaProvider for ViewSchema {
    fn table_names(&self) -> Vec<String> {
        let snapshot = self.live.snapshot();
        let mut names: Vec<String> = snapshot.table_names().map(str::to_string).collect();
        if self.history.is_some() {
            names.extend(snapshot.table_names().filter(|v| History::has_history(v)).map(|v| format!("{v}{HISTORY_SUFFIX}")));
        }
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let snapshot = self.live.snapshot();
        if let Some(table) = snapshot.table(name) {
            return Ok(Some(Arc::new(LiveTable { name: name.to_string(), schema: Arc::clone(table.schema()) })));
        }
        match (self.history_of(name, &snapshot), &self.history) {
            (Some(view), Some(history)) => {
                let schema = snapshot.table(view).map(|t| Arc::clone(t.schema())).ok_or_else(|| DataFusionError::Internal(format!("view {view} vanished")))?;
                Ok(Some(history.table(view, schema)?))
            }
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        let snapshot = self.live.snapshot();
        snapshot.table(name).is_some() || self.history_of(name, &snapshot).is_some()
    }
}

/// A live view (or `dim_resource`) as a table: reads the query's snapshot.
///
/// Every filter DataFusion pushes down is evaluated here, on the snapshot's chunks, together
/// with the live bitmap and the tenant, before anything is copied: filters on `bucket`,
/// `tenant` or any other column are exact (no `FilterExec` above the scan), and only matching
/// rows of the projected columns leave the scan.
#[derive(Debug)]
pub(crate) struct LiveTable {
    name: String,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| if f.is_volatile() { TableProviderFilterPushDown::Unsupported } else { TableProviderFilterPushDown::Exact })
            .collect())
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let scope = QueryScope::of(state)?;
        let projected = project_schema(&self.schema, projection)?;
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
        let predicates = filters.iter().map(|f| state.create_physical_expr(f.clone(), &df_schema)).collect::<Result<Vec<_>>>()?;
        let batches = match scope.snapshot.table(&self.name) {
            Some(table) => scan_snapshot(table, projection, &predicates, scope.tenant.as_deref(), limit)?,
            // Registered after this query pinned its snapshot: empty at that frontier.
            None => Vec::new(),
        };
        // Spread the batches over the partitions the session runs, so aggregations use every core.
        let partitions = state.config().target_partitions().max(1).min(batches.len().max(1));
        let mut groups: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        for (i, batch) in batches.into_iter().enumerate() {
            groups[i % partitions].push(batch);
        }
        Ok(MemorySourceConfig::try_new_exec(&groups, projected, None)?)
    }
}

/// The matching live rows of a table snapshot, projected.
fn scan_snapshot(
    table: &TableSnapshot,
    projection: Option<&Vec<usize>>,
    predicates: &[Arc<dyn datafusion::physical_plan::PhysicalExpr>],
    tenant: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<RecordBatch>> {
    let tenant = match tenant {
        None => None,
        Some(t) => match table.schema().index_of("tenant") {
            Ok(i) if table.schema().field(i).data_type() == &DataType::Utf8 => Some((i, StringArray::new_scalar(t))),
            // A tenant-scoped query sees nothing of a table without tenants.
            _ => return Ok(Vec::new()),
        },
    };
    let mut out = Vec::new();
    let mut remaining = limit;
    for chunk in table.chunks() {
        if remaining == Some(0) {
            break;
        }
        let batch = &chunk.batch;
        let mut mask: Option<BooleanArray> = chunk.live.clone().map(|live| BooleanArray::new(live, None));
        if let Some((column, value)) = &tenant {
            mask = Some(conjoin(mask, eq(batch.column(*column), value as &Scalar<StringArray>)?)?);
        }
        for predicate in predicates {
            let value = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
            let value = value.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| DataFusionError::Internal(format!("filter {predicate} is not boolean")))?.clone();
            mask = Some(conjoin(mask, value)?);
        }
        let projected = match projection {
            Some(p) => batch.project(p)?,
            None => batch.clone(),
        };
        let mut rows = match &mask {
            Some(mask) => filter_record_batch(&projected, mask)?,
            None => projected,
        };
        if let Some(left) = remaining.as_mut() {
            if rows.num_rows() > *left {
                rows = rows.slice(0, *left);
            }
            *left -= rows.num_rows();
        }
        if rows.num_rows() > 0 {
            out.push(rows);
        }
    }
    Ok(out)
}

fn conjoin(mask: Option<BooleanArray>, next: BooleanArray) -> Result<BooleanArray> {
    Ok(match mask {
        None => next,
        Some(mask) => and(&mask, &next)?,
    })
}
