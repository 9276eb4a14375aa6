//! From Arrow batches to set-based SQL.
//!
//! Every Arrow column of a batch is bound as ONE Postgres array parameter, and the statement
//! unnests the arrays side by side into rows and casts each to its table column's type:
//!
//! ```sql
//! INSERT INTO "s"."metric_1m" ("bucket", "tenant", "labels", ...)
//! SELECT CAST(u."bucket" AS timestamp with time zone), CAST(u."tenant" AS text),
//!        CAST(u."labels" AS jsonb), ...
//! FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], ...) AS u("bucket", "tenant", "labels", ...)
//! ON CONFLICT ("bucket", "tenant", ...) DO UPDATE SET "labels" = EXCLUDED."labels", ...
//! ```
//!
//! so a batch costs one round trip whatever its size, and the column types come from the
//! catalog rather than from the view (a `jsonb` column takes Arrow `Utf8` holding JSON).

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres};

use super::error::PostgresError;

/// A query being built, with its array parameters bound one by one.
pub(crate) type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The columns of one table as the catalog has them: name -> type as `format_type` prints it
/// (`timestamp with time zone`, `jsonb`, `character varying(64)`), usable in a `CAST`.
#[derive(Debug)]
pub(crate) struct TableColumns {
    types: HashMap<String, String>,
}

impl TableColumns {
    /// Reads the columns of `schema.table`; `None` if there is no such table (or view).
    pub(crate) async fn load(
        conn: &mut PgConnection,
        schema: &str,
        table: &str,
    ) -> Result<Option<Self>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2
                AND c.relkind IN ('r', 'p', 'v', 'f')
                AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(schema)
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        Ok((!rows.is_empty()).then(|| Self {
            types: rows.into_iter().collect(),
        }))
    }

    fn sql_type(
        &self,
        table: &str,
        column: &str,
        part: &'static str,
    ) -> Result<&str, PostgresError> {
        self.types
            .get(column)
            .map(String::as_str)
            .ok_or_else(|| PostgresError::UnknownColumn {
                table: table.to_owned(),
                column: column.to_owned(),
                part,
            })
    }
}

/// `INSERT .. SELECT FROM UNNEST(..) ON CONFLICT (keys) DO UPDATE SET <every non-key column>`
/// for the columns of `batch`, in their order; bind them with [`bind_batch`].
pub(crate) fn upsert_sql(
    schema: &str,
    table: &str,
    key_columns: &[String],
    batch: &RecordBatch,
    columns: &TableColumns,
) -> Result<String, PostgresError> {
    let part = "upserts";
    check_keys_present(table, key_columns, batch, part)?;
    let unnest = unnest_clause(table, batch, columns, part, "u")?;
    let names = quoted_columns(batch);
    let keys: Vec<String> = key_columns.iter().map(|k| quote_ident(k)).collect();
    let updates: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .filter(|f| !key_columns.contains(f.name()))
        .map(|f| format!("{0} = EXCLUDED.{0}", quote_ident(f.name())))
        .collect();
    let on_conflict = if updates.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    Ok(format!(
        "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}",
        qualified(schema, table),
        names.join(", "),
        unnest.casts.join(", "),
        unnest.from,
        keys.join(", "),
        on_conflict
    ))
}

/// The batch's column names, quoted, in order.
fn quoted_columns(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| quote_ident(f.name())).collect()
}

/// `INSERT INTO <schema.table> (<columns of batch>) SELECT .. FROM UNNEST(..)`, no conflict
/// handling (a replay's staging table).
pub(crate) fn insert_sql(
    schema: &str,
    table: &str,
    columns_of: &str,
    batch: &RecordBatch,
    columns: &TableColumns,
) -> Result<String, PostgresError> {
    let unnest = unnest_clause(columns_of, batch, columns, "rows", "u")?;
    let names = quoted_columns(batch);
    Ok(format!(
        "INSERT INTO {} ({}) SELECT {} FROM {}",
        qualified(schema, table),
        names.join(", "),
        unnest.casts.join(", "),
        unnest.from
    ))
}

/// `DELETE .. USING UNNEST(..) WHERE <every key column matches>`; `batch` holds the key columns.
pub(crate) fn delete_sql(
    schema: &str,
    table: &str,
    key_columns: &[String],
    batch: &RecordBatch,
    columns: &TableColumns,
) -> Result<String, PostgresError> {
    let part = "deletes";
    check_keys_present(table, key_columns, batch, part)?;
    let unnest = unnest_clause(table, batch, columns, part, "d")?;
    let conditions: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .zip(&unnest.casts)
        .filter(|(f, _)| key_columns.contains(f.name()))
        .map(|(f, cast)| format!("t.{} = {}", quote_ident(f.name()), cast))
        .collect();
    Ok(format!(
        "DELETE FROM {} AS t USING {} WHERE {}",
        qualified(schema, table),
        unnest.from,
        conditions.join(" AND ")
    ))
}

/// Binds every column of `batch`, in order, as one array parameter.
pub(crate) fn bind_batch<'q>(
    mut query: PgQuery<'q>,
    table: &str,
    batch: &RecordBatch,
) -> Result<PgQuery<'q>, PostgresError> {
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        query = bind_column(query, table, field.name(), array)?;
    }
    Ok(query)
}

/// The values of a string column (`Utf8`, `LargeUtf8`, `Utf8View`), or `None` for other types.
pub(crate) fn string_values(array: &ArrayRef) -> Option<Vec<Option<&str>>> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().iter().collect()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().iter().collect()),
        DataType::Utf8View => Some(array.as_string_view().iter().collect()),
        _ => None,
    }
}

/// The `SELECT` list (one cast per column) and `FROM UNNEST(...) AS alias(...)` of a statement.
struct Unnest {
    casts: Vec<String>,
    from: String,
}

fn unnest_clause(
    table: &str,
    batch: &RecordBatch,
    columns: &TableColumns,
    part: &'static str,
    alias: &str,
) -> Result<Unnest, PostgresError> {
    let schema = batch.schema();
    let mut params = Vec::with_capacity(schema.fields().len());
    let mut names = Vec::with_capacity(schema.fields().len());
    let mut casts = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let array_type = array_type(table, field.name(), field.data_type())?;
        let sql_type = columns.sql_type(table, field.name(), part)?;
        let name = quote_ident(field.name());
        params.push(format!("${}::{array_type}", i + 1));
        casts.push(format!("CAST({alias}.{name} AS {sql_type})"));
        names.push(name);
    }
    Ok(Unnest {
        casts,
        from: format!(
            "UNNEST({}) AS {alias}({})",
            params.join(", "),
            names.join(", ")
        ),
    })
}

fn check_keys_present(
    table: &str,
    key_columns: &[String],
    batch: &RecordBatch,
    part: &'static str,
) -> Result<(), PostgresError> {
    let schema = batch.schema();
    match key_columns
        .iter()
        .find(|k| schema.field_with_name(k).is_err())
    {
        Some(missing) => Err(PostgresError::MissingKeyColumn {
            table: table.to_owned(),
            column: missing.clone(),
            part,
        }),
        None => Ok(()),
    }
}

const UNSUPPORTED_HINT: &str = "Use Utf8 (cast to the column's type by Postgres, e.g. JSON text for jsonb), \
     Int16/Int32/Int64, Float32/Float64, Boolean, or Timestamp in seconds, milliseconds or microseconds.";

/// The Postgres array type an Arrow column is bound as.
fn array_type(
    table: &str,
    column: &str,
    data_type: &DataType,
) -> Result<&'static str, PostgresError> {
    let unsupported = |hint| PostgresError::UnsupportedType {
        table: table.to_owned(),
        column: column.to_owned(),
        data_type: data_type.to_string(),
        hint,
    };
    Ok(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text[]",
        DataType::Int16 => "int2[]",
        DataType::Int32 => "int4[]",
        DataType::Int64 => "int8[]",
        DataType::Float32 => "float4[]",
        DataType::Float64 => "float8[]",
        DataType::Boolean => "bool[]",
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            return Err(unsupported(
                "Postgres stores microseconds: convert the column to Timestamp(Microsecond) so no precision is dropped silently.",
            ));
        }
        // With a time zone the values are instants (UTC based whatever the zone); without one
        // they are wall-clock times.
        DataType::Timestamp(_, Some(_)) => "timestamptz[]",
        DataType::Timestamp(_, None) => "timestamp[]",
        _ => return Err(unsupported(UNSUPPORTED_HINT)),
    })
}

fn bind_column<'q>(
    query: PgQuery<'q>,
    table: &str,
    column: &str,
    array: &ArrayRef,
) -> Result<PgQuery<'q>, PostgresError> {
    // Checked again here so binding and the SQL text can never disagree.
    array_type(table, column, array.data_type())?;
    let out_of_range = |value: i64| PostgresError::OutOfRange {
        table: table.to_owned(),
        column: column.to_owned(),
        reason: format!(
            "timestamp {value} ({:?}) is outside the range chrono and Postgres support",
            array.data_type()
        ),
    };
    Ok(match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match string_values(array) {
            Some(values) => query.bind(values),
            None => return Err(unreachable_type(table, column, array)),
        },
        DataType::Int16 => query.bind(array.as_primitive::<Int16Type>().iter().collect::<Vec<_>>()),
        DataType::Int32 => query.bind(array.as_primitive::<Int32Type>().iter().collect::<Vec<_>>()),
        DataType::Int64 => query.bind(array.as_primitive::<Int64Type>().iter().collect::<Vec<_>>()),
        DataType::Float32 => query.bind(
            array
                .as_primitive::<Float32Type>()
                .iter()
                .collect::<Vec<_>>(),
        ),
        DataType::Float64 => query.bind(
            array
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>(),
        ),
        DataType::Boolean => query.bind(array.as_boolean().iter().collect::<Vec<_>>()),
        DataType::Timestamp(unit, tz) => {
            let raw: Vec<Option<i64>> = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().iter().collect(),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .collect(),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .collect(),
                TimeUnit::Nanosecond => return Err(unreachable_type(table, column, array)),
            };
            let instants = raw
                .into_iter()
                .map(|v| {
                    v.map(|v| to_instant(*unit, v).ok_or_else(|| out_of_range(v)))
                        .transpose()
                })
                .collect::<Result<Vec<Option<DateTime<Utc>>>, _>>()?;
            if tz.is_some() {
                query.bind(instants)
            } else {
                query.bind(
                    instants
                        .into_iter()
                        .map(|v| v.map(|t| t.naive_utc()))
                        .collect::<Vec<Option<NaiveDateTime>>>(),
                )
            }
        }
        _ => return Err(unreachable_type(table, column, array)),
    })
}

fn to_instant(unit: TimeUnit, value: i64) -> Option<DateTime<Utc>> {
    match unit {
        TimeUnit::Second => DateTime::from_timestamp(value, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(value),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(value),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(value)),
    }
}

/// `array_type` refused these already; kept as an error rather than a panic.
fn unreachable_type(table: &str, column: &str, array: &ArrayRef) -> PostgresError {
    PostgresError::UnsupportedType {
        table: table.to_owned(),
        column: column.to_owned(),
        data_type: array.data_type().to_string(),
        hint: UNSUPPORTED_HINT,
    }
}

/// Runs `sql` with the columns of `batch` bound; returns the number of rows it touched.
pub(crate) async fn execute_batch(
    conn: &mut PgConnection,
    sql: String,
    table: &str,
    batch: &RecordBatch,
    action: &'static str,
) -> Result<u64, PostgresError> {
    let query = bind_batch(sqlx::query(AssertSqlSafe(sql)), table, batch)?;
    let done = query
        .execute(&mut *conn)
        .await
        .map_err(|source| PostgresError::Statement {
            action,
            table: table.to_owned(),
            source,
        })?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn columns(cols: &[(&str, &str)]) -> TableColumns {
        TableColumns {
            types: cols
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        }
    }

    fn batch(fields: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let schema = Schema::new(
            fields
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            fields.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn upsert_sql_unnests_casts_and_updates_non_keys() {
        let b = batch(vec![
            ("k", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("labels", Arc::new(StringArray::from(vec!["{}"]))),
            ("v", Arc::new(Float64Array::from(vec![1.0]))),
        ]);
        let cols = columns(&[
            ("k", "text"),
            ("labels", "jsonb"),
            ("v", "double precision"),
        ]);
        let sql = upsert_sql("s", "t", &["k".to_owned()], &b, &cols).unwrap();
        assert_eq!(
            sql,
            "INSERT INTO \"s\".\"t\" (\"k\", \"labels\", \"v\") \
             SELECT CAST(u.\"k\" AS text), CAST(u.\"labels\" AS jsonb), CAST(u.\"v\" AS double precision) \
             FROM UNNEST($1::text[], $2::text[], $3::float8[]) AS u(\"k\", \"labels\", \"v\") \
             ON CONFLICT (\"k\") DO UPDATE SET \"labels\" = EXCLUDED.\"labels\", \"v\" = EXCLUDED.\"v\""
        );
    }

    #[test]
    fn delete_sql_matches_every_key() {
        let b = batch(vec![
            ("a", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec!["y"]))),
        ]);
        let cols = columns(&[("a", "text"), ("b", "text"), ("v", "bigint")]);
        let sql = delete_sql("s", "t", &["a".to_owned(), "b".to_owned()], &b, &cols).unwrap();
        assert_eq!(
            sql,
            "DELETE FROM \"s\".\"t\" AS t USING UNNEST($1::text[], $2::text[]) AS d(\"a\", \"b\") \
             WHERE t.\"a\" = CAST(d.\"a\" AS text) AND t.\"b\" = CAST(d.\"b\" AS text)"
        );
    }

    #[test]
    fn unknown_column_and_missing_key_are_named() {
        let b = batch(vec![(
            "nope",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        )]);
        let cols = columns(&[("k", "text")]);
        let err = upsert_sql("s", "t", &[], &b, &cols).unwrap_err();
        assert!(
            matches!(&err, PostgresError::UnknownColumn { column, .. } if column == "nope"),
            "{err}"
        );
        let err = upsert_sql("s", "t", &["k".to_owned()], &b, &cols).unwrap_err();
        assert!(
            matches!(&err, PostgresError::MissingKeyColumn { column, .. } if column == "k"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_type_names_table_and_column() {
        let b = batch(vec![(
            "ts",
            Arc::new(TimestampNanosecondArray::from(vec![1_i64])) as ArrayRef,
        )]);
        let cols = columns(&[("ts", "timestamp without time zone")]);
        let err = upsert_sql("s", "events", &[], &b, &cols).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`ts`") && msg.contains("`events`") && msg.contains("Timestamp(ns)"),
            "{msg}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(qualified("s", "t"), "\"s\".\"t\"");
    }
}
