//! Reading engine reports back as tables, shared by the dataflow tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use observebridge_dataflows::engine::EpochReport;

/// One cell as text: timestamps in ms since the Unix epoch, nulls as the empty string.
pub fn cell(batch: &RecordBatch, row: usize, column: &str) -> String {
    let c = batch.column_by_name(column).unwrap_or_else(|| panic!("column {column}"));
    if c.is_null(row) {
        return String::new();
    }
    match c.data_type() {
        arrow::datatypes::DataType::Timestamp(..) => (c.as_primitive::<TimestampMicrosecondType>().value(row) / 1000).to_string(),
        _ => array_value_to_string(c, row).expect("cell"),
    }
}

/// A view's table after every epoch's upserts and deletes: key cells -> column name -> cell.
pub fn table(reports: &[EpochReport], view: &str) -> BTreeMap<Vec<String>, BTreeMap<String, String>> {
    let mut t = BTreeMap::new();
    for r in reports {
        for change in r.views.iter().filter(|v| v.view == view) {
            for i in 0..change.deletes.num_rows() {
                t.remove(&change.key_columns.iter().map(|k| cell(&change.deletes, i, k)).collect::<Vec<_>>());
            }
            let schema = change.upserts.schema();
            for i in 0..change.upserts.num_rows() {
                let key = change.key_columns.iter().map(|k| cell(&change.upserts, i, k)).collect();
                let row = schema.fields().iter().map(|f| (f.name().clone(), cell(&change.upserts, i, f.name()))).collect();
                t.insert(key, row);
            }
        }
    }
    t
}
