//! Live view snapshots: every registered view as of the last complete frontier.
//!
//! The engine's coordinator calls [`LiveViews::apply`] once per frontier, right after Postgres and
//! Parquet made it durable. Every query takes [`LiveViews::snapshot`]: an `Arc` of an immutable
//! [`Snapshot`] holding every table at one frontier. `apply` builds the next snapshot beside the
//! current one and swaps the `Arc` under a write lock held for one pointer store, so a query sees
//! all of a frontier or none of it, and neither side waits for the other's work.
//!
//! # Storage
//!
//! A table is a list of immutable chunks (Arrow batches) plus, per chunk, which of its rows are
//! live. An apply appends its upserts as a new chunk and clears the live bit of every row whose
//! key was upserted again or deleted; the key -> (chunk, row) index holds keys in arrow's row
//! format ([`RowConverter`]), so a view may have any key columns. A snapshot shares the chunks
//! (reference-counted buffers) and copies only the live bitmaps of the chunks the apply touched,
//! so publishing costs in proportion to the change, not to the table. When a table has more than
//! [`MAX_CHUNKS`] chunks, or more dead rows than live ones, its chunks are compacted into one.
//!
//! # Retention
//!
//! The engine never retracts a window once it is final (Postgres keeps its rows too); its
//! Parquet output has them. So that memory does not grow with uptime, rows whose window start
//! (`bucket`), or whose closing time (`valid_to`, for intervals like `topo_edge_time`), is older
//! than the frontier's watermark minus the retention ([`LiveViews::set_retention`], default
//! [`DEFAULT_RETENTION`]) leave the live table; `<view>_history` still has them. Each chunk
//! knows the smallest time it holds, so a frontier only looks at chunks that have something to
//! drop.
//!
//! # `dim_resource`
//!
//! Like the Postgres sink, every apply derives `dim_resource` (tenant, urn, kind, namespace, name,
//! first_seen, last_seen) from the URN columns (`resource`, `src`, `dst`) of the upserted rows,
//! with the sink's own URN parser; `first_seen`/`last_seen` are the wall-clock times of the
//! applies that first and last saw the resource. Rows are never deleted, as in Postgres.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{concat_batches, filter, filter_record_batch, min};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use observebridge_connectors::postgres::{RESOURCE_COLUMNS, parse_urn};
use observebridge_connectors::sink::{Frontier, TableChanges};

use crate::error::LiveError;

/// The name of the live dimension table derived from every view's URN columns.
pub const DIM_RESOURCE: &str = "dim_resource";

/// A table is compacted once it has more chunks than this (each apply that changes it adds one).
pub const MAX_CHUNKS: usize = 16;

/// How long a window stays in the live tables after the watermark passed its start.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Columns that date a row for retention, in order of preference: a window start, the end of
/// an interval (null while open: kept).
const TIME_COLUMNS: [&str; 2] = ["bucket", "valid_to"];

/// Dead rows below this count never trigger a compaction on their own.
const MIN_DEAD_FOR_COMPACTION: usize = 4096;

/// Live view snapshots. See the module docs.
#[derive(Debug)]
pub struct LiveViews {
    writer: Mutex<Writer>,
    current: RwLock<Arc<Snapshot>>,
}

/// Every table at one frontier. Immutable: queries hold it for as long as they run.
#[derive(Debug, Default)]
pub struct Snapshot {
    epoch: Option<u64>,
    watermark_ms: Option<i64>,
    tables: BTreeMap<String, Arc<TableSnapshot>>,
}

/// One table of a [`Snapshot`].
#[derive(Debug)]
pub struct TableSnapshot {
    schema: SchemaRef,
    key_columns: Vec<String>,
    chunks: Vec<Chunk>,
    rows: usize,
}

/// A batch of a table and which of its rows are live (`None`: all of them).
#[derive(Clone, Debug)]
pub struct Chunk {
    pub batch: RecordBatch,
    pub live: Option<BooleanBuffer>,
}

#[derive(Debug)]
struct Writer {
    tables: BTreeMap<String, TableState>,
    /// Rows older than the watermark minus this leave the live tables (`None`: never).
    retention: Option<Duration>,
    /// (tenant, urn) -> first_seen (µs), for `dim_resource`.
    resources: HashMap<(String, String), i64>,
}

impl LiveViews {
    /// An empty set of views; `dim_resource` is registered already.
    pub fn new() -> Arc<Self> {
        let mut tables = BTreeMap::new();
        match TableState::new(DIM_RESOURCE, dim_resource_schema(), &["tenant", "urn"]) {
            Ok(dims) => {
                tables.insert(DIM_RESOURCE.to_string(), dims);
            }
            // Its keys are in its schema; were they not, queries would only lack the table.
            Err(error) => tracing::error!(%error, "dim_resource is not available"),
        }
        let writer = Writer { tables, retention: Some(DEFAULT_RETENTION), resources: HashMap::new() };
        let snapshot = Snapshot { epoch: None, watermark_ms: None, tables: writer.tables.iter().map(|(n, t)| (n.clone(), Arc::clone(&t.published))).collect() };
        Arc::new(LiveViews { writer: Mutex::new(writer), current: RwLock::new(Arc::new(snapshot)) })
    }

    /// Declares a view table (its Arrow schema and primary-key column names) before any apply.
    /// Registering the same view again with the same schema and keys does nothing; with another
    /// schema it is refused. The table is queryable (empty) from now on.
    pub fn register(&self, view: &str, schema: SchemaRef, key_columns: &[&str]) -> Result<(), LiveError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = writer.tables.get(view) {
            let same_keys = existing.key_columns.iter().map(String::as_str).eq(key_columns.iter().copied());
            if same_fields(&existing.schema, &schema) && same_keys {
                return Ok(());
            }
            return Err(LiveError::Schema { view: view.to_string(), message: "is registered already with another schema or other key columns".into() });
        }
        if view.is_empty() || !view.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(LiveError::Schema { view: view.to_string(), message: "a view name is lowercase letters, digits and '_'".into() });
        }
        let table = TableState::new(view, schema, key_columns)?;
        writer.tables.insert(view.to_string(), table);
        let current = self.snapshot();
        let snapshot = Snapshot {
            epoch: current.epoch,
            watermark_ms: current.watermark_ms,
            tables: writer.tables.iter().map(|(n, t)| (n.clone(), Arc::clone(&t.published))).collect(),
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        tracing::debug!(view, "live view registered");
        Ok(())
    }

    /// How long rows stay live after the watermark passed their time (see the module docs);
    /// `None` keeps every row. Takes effect at the next apply.
    pub fn set_retention(&self, retention: Option<Duration>) {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).retention = retention;
    }

    /// Applies one frontier's changes to every table at once: readers see all of it or none.
    ///
    /// `changes` may hold several entries for one table (one per epoch and worker); they are
    /// applied in order. Every entry is checked (view registered, columns and types) before
    /// anything changes, so an error leaves the snapshot as it was.
    pub fn apply(&self, frontier: &Frontier, changes: &[TableChanges]) -> Result<(), LiveError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            let table = writer.tables.get(&change.table).ok_or_else(|| LiveError::UnknownView { view: change.table.clone() })?;
            if change.table == DIM_RESOURCE {
                return Err(LiveError::Schema { view: change.table.clone(), message: "is derived from the other views; it takes no changes".into() });
            }
            table.check(change)?;
        }
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for change in changes {
            let Some(table) = writer.tables.get_mut(&change.table) else { continue };
            table.delete(&change.deletes)?;
            table.upsert(&change.upserts)?;
            collect_resources(&change.upserts, &mut seen);
        }
        if !seen.is_empty() {
            let batch = writer.dim_rows(seen).map_err(|source| LiveError::Arrow { view: DIM_RESOURCE.into(), source })?;
            if let Some(dim) = writer.tables.get_mut(DIM_RESOURCE) {
                dim.upsert(&batch)?;
            }
        }
        let cutoff_us = match (frontier.watermark_ms, writer.retention) {
            // `i64::MAX`: every input ended; keep what is there for the last queries.
            (Some(wm), Some(retention)) if wm != i64::MAX => Some(wm.saturating_sub(retention.as_millis() as i64).saturating_mul(1000)),
            _ => None,
        };
        let mut tables = BTreeMap::new();
        for (name, table) in writer.tables.iter_mut() {
            if let Some(cutoff) = cutoff_us {
                table.evict_before(cutoff)?;
            }
            table.maybe_compact()?;
            tables.insert(name.clone(), table.publish());
        }
        let snapshot = Snapshot { epoch: Some(frontier.epoch), watermark_ms: frontier.watermark_ms, tables };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        Ok(())
    }

    /// Epoch of the last applied frontier.
    pub fn frontier(&self) -> Option<u64> {
        self.snapshot().epoch
    }

    /// The current snapshot: every table at the last applied frontier. Cheap (an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Snapshot {
    /// Epoch of the frontier this snapshot is at (`None` before the first apply).
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The event-time watermark of that frontier (ms).
    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark_ms
    }

    pub fn table(&self, name: &str) -> Option<&Arc<TableSnapshot>> {
        self.tables.get(name)
    }

    /// Registered tables (views and `dim_resource`), sorted.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

impl TableSnapshot {
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn key_columns(&self) -> &[String] {
        &self.key_columns
    }

    /// Live rows.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// The chunks; a chunk's rows are live where its bitmap is set.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The live rows as batches (one per chunk that has any).
    pub fn batches(&self) -> Result<Vec<RecordBatch>, ArrowError> {
        self.chunks
            .iter()
            .map(|c| match &c.live {
                None => Ok(c.batch.clone()),
                Some(live) => filter_record_batch(&c.batch, &BooleanArray::new(live.clone(), None)),
            })
            .collect()
    }
}

/// Where a key's live row is.
#[derive(Clone, Copy, Debug)]
struct Loc {
    chunk: u32,
    row: u32,
}

#[derive(Debug)]
struct ChunkState {
    batch: RecordBatch,
    live: Vec<bool>,
    live_count: usize,
    /// The smallest time (µs) of a live row in the table's time column, if it has one.
    min_time: Option<i64>,
    /// The bitmap last published, while no row changed since (`Some(None)`: all live).
    published: Option<Option<BooleanBuffer>>,
}

impl ChunkState {
    fn new(batch: RecordBatch, time_column: Option<usize>) -> Self {
        let n = batch.num_rows();
        let min_time = time_column.and_then(|c| batch.column(c).as_primitive_opt::<TimestampMicrosecondType>().and_then(min));
        ChunkState { batch, live: vec![true; n], live_count: n, min_time, published: None }
    }

    fn mask(&mut self) -> Option<BooleanBuffer> {
        if let Some(mask) = &self.published {
            return mask.clone();
        }
        let mask = (self.live_count < self.live.len()).then(|| BooleanBuffer::from(self.live.as_slice()));
        self.published = Some(mask.clone());
        mask
    }
}

/// The writer's side of one table.
#[derive(Debug)]
struct TableState {
    name: String,
    schema: SchemaRef,
    key_columns: Vec<String>,
    key_indices: Vec<usize>,
    /// The column that dates a row for retention (µs timestamps only).
    time_column: Option<usize>,
    converter: RowConverter,
    index: HashMap<Box<[u8]>, Loc>,
    chunks: Vec<ChunkState>,
    published: Arc<TableSnapshot>,
    dirty: bool,
}

impl TableState {
    fn new(name: &str, schema: SchemaRef, key_columns: &[&str]) -> Result<Self, LiveError> {
        let schema_error = |message: String| LiveError::Schema { view: name.to_string(), message };
        if key_columns.is_empty() {
            return Err(schema_error("has no key columns; rows are replaced by key".into()));
        }
        let key_indices = key_columns
            .iter()
            .map(|k| schema.index_of(k).map_err(|_| schema_error(format!("key column {k} is not in the schema"))))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = key_indices.iter().map(|i| SortField::new(schema.field(*i).data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(|source| LiveError::Arrow { view: name.to_string(), source })?;
        let published = Arc::new(TableSnapshot { schema: Arc::clone(&schema), key_columns: key_columns.iter().map(|k| k.to_string()).collect(), chunks: Vec::new(), rows: 0 });
        let time_column = TIME_COLUMNS
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .find(|i| matches!(schema.field(*i).data_type(), DataType::Timestamp(TimeUnit::Microsecond, _)));
        Ok(TableState {
            name: name.to_string(),
            schema,
            key_columns: key_columns.iter().map(|k| k.to_string()).collect(),
            key_indices,
            time_column,
            converter,
            index: HashMap::new(),
            chunks: Vec::new(),
            published,
            dirty: false,
        })
    }

    fn schema_error(&self, message: String) -> LiveError {
        LiveError::Schema { view: self.name.clone(), message }
    }

    /// Refuses changes that do not fit the registered schema and keys.
    fn check(&self, change: &TableChanges) -> Result<(), LiveError> {
        if !change.key_columns.is_empty() && change.key_columns != self.key_columns {
            return Err(self.schema_error(format!("changes are keyed by {:?} but the view is registered with keys {:?}", change.key_columns, self.key_columns)));
        }
        let upserts = &change.upserts;
        if upserts.num_rows() > 0 && !same_fields(&upserts.schema(), &self.schema) {
            return Err(self.schema_error(format!("upserted rows have columns {} but the view has {}", describe(&upserts.schema()), describe(&self.schema))));
        }
        let deletes = &change.deletes;
        if deletes.num_rows() > 0 {
            for (k, i) in self.key_columns.iter().zip(&self.key_indices) {
                let column = deletes.column_by_name(k).ok_or_else(|| self.schema_error(format!("deleted keys lack key column {k}")))?;
                let want = self.schema.field(*i).data_type();
                if column.data_type() != want {
                    return Err(self.schema_error(format!("deleted key column {k} is {} but the view has {want}", column.data_type())));
                }
            }
        }
        Ok(())
    }

    fn arrow(&self, source: ArrowError) -> LiveError {
        LiveError::Arrow { view: self.name.clone(), source }
    }

    /// Appends `batch` as a chunk; earlier rows with the same keys die.
    fn upsert(&mut self, batch: &RecordBatch) -> Result<(), LiveError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // Same columns and types (checked): take the registered schema, whatever the metadata.
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec()).map_err(|e| self.arrow(e))?;
        let keys: Vec<ArrayRef> = self.key_indices.iter().map(|i| Arc::clone(batch.column(*i))).collect();
        let rows = self.converter.convert_columns(&keys).map_err(|e| self.arrow(e))?;
        let chunk = u32::try_from(self.chunks.len()).map_err(|_| self.schema_error("too many chunks".into()))?;
        self.chunks.push(ChunkState::new(batch, self.time_column));
        for (row, key) in rows.iter().enumerate() {
            let loc = Loc { chunk, row: row as u32 };
            if let Some(old) = self.index.insert(key.data().into(), loc) {
                self.kill(old);
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Removes the rows with the keys of `batch` (key columns only).
    fn delete(&mut self, batch: &RecordBatch) -> Result<(), LiveError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self
            .key_columns
            .iter()
            .map(|k| batch.column_by_name(k).cloned().ok_or_else(|| self.schema_error(format!("deleted keys lack key column {k}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = self.converter.convert_columns(&keys).map_err(|e| self.arrow(e))?;
        for key in rows.iter() {
            if let Some(old) = self.index.remove(key.data()) {
                self.kill(old);
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn kill(&mut self, loc: Loc) {
        let chunk = &mut self.chunks[loc.chunk as usize];
        let live = &mut chunk.live[loc.row as usize];
        if *live {
            *live = false;
            chunk.live_count -= 1;
            chunk.published = None;
        }
    }

    /// Drops the live rows whose time is before `cutoff` (µs); rows without a time stay.
    fn evict_before(&mut self, cutoff: i64) -> Result<(), LiveError> {
        let Some(column) = self.time_column else { return Ok(()) };
        for c in 0..self.chunks.len() {
            let chunk = &self.chunks[c];
            if chunk.live_count == 0 || chunk.min_time.is_none_or(|t| t >= cutoff) {
                continue;
            }
            let Some(times) = chunk.batch.column(column).as_primitive_opt::<TimestampMicrosecondType>() else { continue };
            // Null times (open intervals) are kept.
            let old: Vec<bool> = (0..times.len()).map(|i| chunk.live[i] && times.is_valid(i) && times.value(i) < cutoff).collect();
            let mask = BooleanArray::from(old.clone());
            let keys: Vec<ArrayRef> = self.key_indices.iter().map(|i| filter(chunk.batch.column(*i), &mask)).collect::<Result<_, _>>().map_err(|e| self.arrow(e))?;
            let converted = self.converter.convert_columns(&keys).map_err(|e| self.arrow(e))?;
            for key in converted.iter() {
                self.index.remove(key.data());
            }
            let min_time = (0..times.len()).filter(|i| chunk.live[*i] && !old[*i] && times.is_valid(*i)).map(|i| times.value(i)).min();
            let chunk = &mut self.chunks[c];
            for (row, dropped) in old.iter().enumerate() {
                if *dropped {
                    chunk.live[row] = false;
                    chunk.live_count -= 1;
                }
            }
            chunk.min_time = min_time;
            chunk.published = None;
            self.dirty = true;
        }
        Ok(())
    }

    /// Compacts when there are too many chunks or too many dead rows.
    fn maybe_compact(&mut self) -> Result<(), LiveError> {
        let total: usize = self.chunks.iter().map(|c| c.live.len()).sum();
        let live: usize = self.chunks.iter().map(|c| c.live_count).sum();
        let dead = total - live;
        if self.chunks.len() > MAX_CHUNKS || (dead > live && dead >= MIN_DEAD_FOR_COMPACTION) || (live == 0 && !self.chunks.is_empty()) {
            self.compact().map_err(|e| self.arrow(e))?;
        }
        Ok(())
    }

    /// Rewrites the live rows as one chunk and points the index at their new positions.
    fn compact(&mut self) -> Result<(), ArrowError> {
        let mut parts = Vec::with_capacity(self.chunks.len());
        let mut ranks: Vec<Vec<u32>> = Vec::with_capacity(self.chunks.len());
        let mut next = 0u32;
        for chunk in &self.chunks {
            let mut chunk_ranks = Vec::with_capacity(chunk.live.len());
            for live in &chunk.live {
                chunk_ranks.push(next);
                next += u32::from(*live);
            }
            ranks.push(chunk_ranks);
            if chunk.live_count == chunk.live.len() {
                parts.push(chunk.batch.clone());
            } else if chunk.live_count > 0 {
                parts.push(filter_record_batch(&chunk.batch, &BooleanArray::from(chunk.live.clone()))?);
            }
        }
        for loc in self.index.values_mut() {
            *loc = Loc { chunk: 0, row: ranks[loc.chunk as usize][loc.row as usize] };
        }
        self.chunks = if next == 0 { Vec::new() } else { vec![ChunkState::new(concat_batches(&self.schema, &parts)?, self.time_column)] };
        self.dirty = true;
        tracing::debug!(view = %self.name, rows = next, "live view compacted");
        Ok(())
    }

    /// The table as readers see it after this apply; unchanged tables keep their snapshot.
    fn publish(&mut self) -> Arc<TableSnapshot> {
        if self.dirty {
            let chunks: Vec<Chunk> = self.chunks.iter_mut().filter(|c| c.live_count > 0).map(|c| Chunk { batch: c.batch.clone(), live: c.mask() }).collect();
            let rows = self.chunks.iter().map(|c| c.live_count).sum();
            self.published = Arc::new(TableSnapshot { schema: Arc::clone(&self.schema), key_columns: self.key_columns.clone(), chunks, rows });
            self.dirty = false;
        }
        Arc::clone(&self.published)
    }
}

impl Writer {
    /// `dim_resource` rows for the resources seen in this apply: new ones get `first_seen`, all
    /// of them `last_seen` = now.
    fn dim_rows(&mut self, seen: BTreeMap<String, BTreeSet<String>>) -> Result<RecordBatch, ArrowError> {
        let now = chrono::Utc::now().timestamp_micros();
        let n = seen.values().map(BTreeSet::len).sum();
        let (mut tenants, mut urns, mut kinds, mut namespaces, mut names, mut first) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for (tenant, urn) in seen.into_iter().flat_map(|(tenant, urns)| urns.into_iter().map(move |urn| (tenant.clone(), urn))) {
            let parsed = parse_urn(&urn);
            let first_seen = *self.resources.entry((tenant.clone(), urn.clone())).or_insert(now);
            tenants.push(tenant);
            urns.push(urn);
            kinds.push(parsed.kind);
            namespaces.push(parsed.namespace);
            names.push(parsed.name);
            first.push(first_seen);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(tenants)),
            Arc::new(StringArray::from(urns)),
            Arc::new(StringArray::from(kinds)),
            Arc::new(StringArray::from(namespaces)),
            Arc::new(StringArray::from(names)),
            Arc::new(TimestampMicrosecondArray::from(first).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        ];
        RecordBatch::try_new(dim_resource_schema(), columns)
    }
}

/// The schema of `dim_resource`, as in Postgres (`schemas/migrations/0001_foundation.sql`).
pub fn dim_resource_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("urn", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("namespace", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, false),
        Field::new("first_seen", ts.clone(), false),
        Field::new("last_seen", ts, false),
    ]))
}

/// Adds the (tenant, urn) pairs of `upserts`' URN columns to `seen` (tenant -> urns).
fn collect_resources(upserts: &RecordBatch, seen: &mut BTreeMap<String, BTreeSet<String>>) {
    let Some(tenants) = upserts.column_by_name("tenant").and_then(|c| c.as_string_opt::<i32>()) else {
        return;
    };
    let columns: Vec<&StringArray> = RESOURCE_COLUMNS.iter().filter_map(|c| upserts.column_by_name(c).and_then(|c| c.as_string_opt::<i32>())).collect();
    for column in columns {
        for row in 0..upserts.num_rows() {
            if tenants.is_null(row) || column.is_null(row) {
                continue;
            }
            let (tenant, urn) = (tenants.value(row), column.value(row));
            // Most rows repeat a pair seen a moment ago: look up before allocating.
            if seen.get(tenant).is_some_and(|urns| urns.contains(urn)) {
                continue;
            }
            seen.entry(tenant.to_string()).or_default().insert(urn.to_string());
        }
    }
}

/// Same column names and types, in order (nullability and metadata may differ).
fn same_fields(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len() && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn describe(schema: &Schema) -> String {
    let columns: Vec<String> = schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect();
    format!("({})", columns.join(", "))
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tenant", DataType::Utf8, false),
            Field::new("resource", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
        ]))
    }

    fn rows(rows: &[(&str, &str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch")
    }

    fn keys(keys: &[(&str, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("tenant", DataType::Utf8, false), Field::new("resource", DataType::Utf8, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.0))), Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.1)))],
        )
        .expect("batch")
    }

    fn change(upserts: RecordBatch, deletes: RecordBatch) -> TableChanges {
        TableChanges { table: "t".into(), key_columns: vec!["tenant".into(), "resource".into()], upserts, deletes }
    }

    fn frontier(epoch: u64) -> Frontier {
        Frontier { job: "test".into(), epoch, watermark_ms: None, positions: serde_json::Value::Null }
    }

    /// The live rows of `t`, sorted.
    fn contents(live: &LiveViews) -> Vec<(String, String, i64)> {
        let snapshot = live.snapshot();
        let mut out = Vec::new();
        for batch in snapshot.table("t").expect("t").batches().expect("batches") {
            let (t, r, v) = (batch.column(0).as_string::<i32>(), batch.column(1).as_string::<i32>(), batch.column(2).as_any().downcast_ref::<Int64Array>().expect("i64"));
            for i in 0..batch.num_rows() {
                out.push((t.value(i).to_string(), r.value(i).to_string(), v.value(i)));
            }
        }
        out.sort();
        out
    }

    fn owned(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
        rows.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), *c)).collect()
    }

    #[test]
    fn upserts_replace_by_key_and_deletes_remove() {
        let live = LiveViews::new();
        live.register("t", schema(), &["tenant", "resource"]).expect("register");
        assert_eq!(live.frontier(), None);
        live.apply(&frontier(0), &[change(rows(&[("a", "x", 1), ("a", "y", 2), ("b", "x", 3)]), keys(&[]))]).expect("apply");
        live.apply(&frontier(1), &[change(rows(&[("a", "x", 10)]), keys(&[("b", "x")]))]).expect("apply");
        assert_eq!(contents(&live), owned(&[("a", "x", 10), ("a", "y", 2)]));
        assert_eq!(live.frontier(), Some(1));
        // Two entries for one table in one frontier apply in order.
        live.apply(&frontier(2), &[change(rows(&[("c", "z", 5)]), keys(&[])), change(rows(&[]), keys(&[("c", "z"), ("a", "y")]))]).expect("apply");
        assert_eq!(contents(&live), owned(&[("a", "x", 10)]));
    }

    #[test]
    fn a_held_snapshot_does_not_change() {
        let live = LiveViews::new();
        live.register("t", schema(), &["tenant", "resource"]).expect("register");
        live.apply(&frontier(0), &[change(rows(&[("a", "x", 1)]), keys(&[]))]).expect("apply");
        let held = live.snapshot();
        live.apply(&frontier(1), &[change(rows(&[("a", "x", 2)]), keys(&[]))]).expect("apply");
        let batches = held.table("t").expect("t").batches().expect("batches");
        let values: Vec<i64> = batches.iter().flat_map(|b| b.column(2).as_any().downcast_ref::<Int64Array>().expect("i64").values().to_vec()).collect();
        assert_eq!(values, vec![1]);
        assert_eq!(held.epoch(), Some(0));
        assert_eq!(contents(&live), owned(&[("a", "x", 2)]));
    }

    #[test]
    fn compaction_keeps_the_contents() {
        let live = LiveViews::new();
        live.register("t", schema(), &["tenant", "resource"]).expect("register");
        let mut expected = BTreeMap::new();
        for epoch in 0..(3 * MAX_CHUNKS as u64) {
            let batch: Vec<(String, String, i64)> = (0..50).map(|i| ("a".to_string(), format!("r{}", (i * 7 + epoch as i64 * 13) % 97), epoch as i64 * 100 + i)).collect();
            let refs: Vec<(&str, &str, i64)> = batch.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), *c)).collect();
            let delete = format!("r{}", epoch % 97);
            live.apply(&frontier(epoch), &[change(rows(&refs), keys(&[("a", delete.as_str())]))]).expect("apply");
            // A frontier's deletes apply before its upserts (a key is in at most one of them).
            expected.remove(&delete);
            expected.extend(batch.iter().map(|(_, r, v)| (r.clone(), *v)));
        }
        let want: Vec<(String, String, i64)> = expected.into_iter().map(|(r, v)| ("a".to_string(), r, v)).collect();
        assert_eq!(contents(&live), want);
        assert!(live.snapshot().table("t").expect("t").chunks().len() <= MAX_CHUNKS);
    }

    #[test]
    fn bad_changes_are_refused_and_change_nothing() {
        let live = LiveViews::new();
        live.register("t", schema(), &["tenant", "resource"]).expect("register");
        live.apply(&frontier(0), &[change(rows(&[("a", "x", 1)]), keys(&[]))]).expect("apply");
        let mut unknown = change(rows(&[("a", "x", 2)]), keys(&[]));
        unknown.table = "nope".into();
        let err = live.apply(&frontier(1), &[change(rows(&[("a", "x", 3)]), keys(&[])), unknown]).expect_err("refused");
        assert!(err.to_string().contains("view nope is not registered"), "{err}");
        let wrong = RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("tenant", DataType::Utf8, false)])), vec![Arc::new(StringArray::from(vec!["a"]))]).expect("batch");
        let err = live.apply(&frontier(1), &[change(wrong, keys(&[]))]).expect_err("refused");
        assert!(err.to_string().contains("upserted rows have columns (tenant Utf8)"), "{err}");
        assert_eq!(contents(&live), owned(&[("a", "x", 1)]));
        assert_eq!(live.frontier(), Some(0));
        assert!(live.register("t", Arc::new(Schema::new(vec![Field::new("tenant", DataType::Utf8, false)])), &["tenant"]).is_err());
        assert!(live.register("t", schema(), &["tenant", "resource"]).is_ok());
        assert!(live.register("u", schema(), &["nope"]).expect_err("refused").to_string().contains("key column nope is not in the schema"));
    }

    #[test]
    fn rows_older_than_the_retention_leave() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("tenant", DataType::Utf8, false),
        ]));
        let batch = |minutes: &[i64]| {
            let buckets = TimestampMicrosecondArray::from(minutes.iter().map(|m| m * 60_000_000).collect::<Vec<_>>()).with_timezone("UTC");
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(buckets), Arc::new(StringArray::from(vec!["a"; minutes.len()]))]).expect("batch")
        };
        let change = |minutes: &[i64]| TableChanges {
            table: "w".into(),
            key_columns: vec!["bucket".into(), "tenant".into()],
            upserts: batch(minutes),
            deletes: RecordBatch::new_empty(Arc::clone(&schema)),
        };
        let at = |epoch: u64, watermark_minute: i64| Frontier { job: "t".into(), epoch, watermark_ms: Some(watermark_minute * 60_000), positions: serde_json::Value::Null };
        let live = LiveViews::new();
        live.set_retention(Some(Duration::from_secs(600)));
        live.register("w", Arc::clone(&schema), &["bucket", "tenant"]).expect("register");
        live.apply(&at(0, 5), &[change(&[0, 1, 2, 3, 4, 5])]).expect("apply");
        assert_eq!(live.snapshot().table("w").expect("w").num_rows(), 6);
        live.apply(&at(1, 13), &[change(&[6, 12])]).expect("apply");
        // Watermark 13 minus 10 minutes: windows before minute 3 leave.
        let minutes = |live: &LiveViews| -> Vec<i64> {
            let mut out: Vec<i64> = live.snapshot().table("w").expect("w").batches().expect("batches").iter().flat_map(|b| b.column(0).as_primitive::<TimestampMicrosecondType>().values().iter().map(|v| v / 60_000_000).collect::<Vec<_>>()).collect();
            out.sort_unstable();
            out
        };
        assert_eq!(minutes(&live), vec![3, 4, 5, 6, 12]);
        // An upsert inside the retention replaces its row; one older than it leaves at once.
        live.apply(&at(2, 13), &[change(&[1, 4])]).expect("apply");
        assert_eq!(minutes(&live), vec![3, 4, 5, 6, 12]);
        live.apply(&at(3, 30), &[]).expect("apply");
        assert_eq!(minutes(&live), Vec::<i64>::new());
    }

    #[test]
    fn dim_resource_is_derived_from_urn_columns() {
        let live = LiveViews::new();
        live.register("t", schema(), &["tenant", "resource"]).expect("register");
        live.apply(&frontier(0), &[change(rows(&[("a", "urn:k8s:svc:shop/checkout", 1), ("a", "urn:db:postgresql/orders", 2), ("b", "urn:k8s:svc:shop/checkout", 3)]), keys(&[]))]).expect("apply");
        live.apply(&frontier(1), &[change(rows(&[("a", "urn:k8s:svc:shop/checkout", 4)]), keys(&[]))]).expect("apply");
        let snapshot = live.snapshot();
        let dims = snapshot.table(DIM_RESOURCE).expect("dim_resource");
        assert_eq!(dims.num_rows(), 3);
        let mut found = Vec::new();
        for batch in dims.batches().expect("batches") {
            for i in 0..batch.num_rows() {
                let s = |c: usize| {
                    let a = batch.column(c).as_string::<i32>();
                    (!a.is_null(i)).then(|| a.value(i).to_string())
                };
                found.push((s(0), s(1), s(2), s(3), s(4)));
            }
        }
        found.sort();
        let some = |x: &str| Some(x.to_string());
        assert_eq!(
            found,
            vec![
                (some("a"), some("urn:db:postgresql/orders"), some("db"), None, some("postgresql/orders")),
                (some("a"), some("urn:k8s:svc:shop/checkout"), some("svc"), some("shop"), some("checkout")),
                (some("b"), some("urn:k8s:svc:shop/checkout"), some("svc"), some("shop"), some("checkout")),
            ]
        );
    }
}
