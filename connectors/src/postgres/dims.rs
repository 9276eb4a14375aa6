//! `dim_tenant` and `dim_resource`, maintained from the upserted rows of any table that has a
//! `tenant` and a `resource` (URN) column.

use std::collections::{BTreeMap, BTreeSet};

use arrow::record_batch::RecordBatch;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::columns::{qualified, string_values};
use super::error::PostgresError;

/// A resource URN split into the parts `dim_resource` keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceName {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// Columns that hold resource URNs (also what the SQL layer's live `dim_resource` reads).
pub const RESOURCE_COLUMNS: [&str; 3] = ["resource", "src", "dst"];

/// Kind recorded for a resource whose name is not a URN of a known shape.
const UNKNOWN_KIND: &str = "unknown";

/// Splits `urn:<scheme>:<kind>:<namespace>/<name>` (`urn:k8s:svc:shop/checkout`), its form
/// without a namespace (`urn:k8s:node:node-1`) and `urn:<kind>:<name>` (`urn:host:node-1`, where
/// the name is everything after the kind: `urn:db:postgres/orders` is named `postgres/orders`).
/// Anything else keeps the whole string as its name, with kind `unknown`.
pub fn parse_urn(urn: &str) -> ResourceName {
    let unknown = || ResourceName {
        kind: UNKNOWN_KIND.to_owned(),
        namespace: None,
        name: urn.to_owned(),
    };
    let Some(rest) = urn.strip_prefix("urn:") else {
        return unknown();
    };
    let parts: Vec<&str> = rest.splitn(3, ':').collect();
    let (kind, namespace, name) = match parts.as_slice() {
        [_, kind, path] => match path.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() => (*kind, Some(namespace), name),
            _ => (*kind, None, *path),
        },
        [kind, name] => (*kind, None, *name),
        _ => return unknown(),
    };
    if kind.is_empty() || name.is_empty() {
        return unknown();
    }
    ResourceName {
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

/// The tenants and resources seen in one frontier's upserts, deduplicated and sorted (so that
/// concurrent writers lock dimension rows in the same order).
#[derive(Debug, Default)]
pub(crate) struct Dims {
    tenants: BTreeSet<String>,
    resources: BTreeMap<(String, String), ResourceName>,
}

impl Dims {
    /// Adds the `tenant` values of `upserts`, and the URNs of its resource columns (`resource`,
    /// and the call views' `src` and `dst`), if it has such string columns.
    pub(crate) fn collect(&mut self, table: &str, upserts: &RecordBatch) {
        let Some(tenants) = upserts.column_by_name("tenant") else {
            return;
        };
        let Some(tenants) = string_values(tenants) else {
            tracing::debug!(table, data_type = %tenants.data_type(), "tenant column is not a string; no dimensions");
            return;
        };
        let resources: Vec<Vec<Option<&str>>> = RESOURCE_COLUMNS
            .iter()
            .filter_map(|c| upserts.column_by_name(c).and_then(string_values))
            .collect();
        for (row, tenant) in tenants.iter().enumerate() {
            let Some(tenant) = tenant else { continue };
            if !self.tenants.contains(*tenant) {
                self.tenants.insert((*tenant).to_owned());
            }
            for column in &resources {
                let Some(urn) = column[row] else { continue };
                self.resources
                    .entry(((*tenant).to_owned(), urn.to_owned()))
                    .or_insert_with(|| parse_urn(urn));
            }
        }
    }

    /// Upserts the collected rows: new tenants are added, resources get `first_seen` on
    /// insert and `last_seen` bumped to the transaction time.
    pub(crate) async fn write(
        self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<(), PostgresError> {
        fn statement_error(table: &'static str) -> impl FnOnce(sqlx::Error) -> PostgresError {
            move |source| PostgresError::Statement {
                action: "upsert",
                table: table.to_owned(),
                source,
            }
        }
        if !self.tenants.is_empty() {
            let sql = format!(
                "INSERT INTO {} (tenant) SELECT tenant FROM UNNEST($1::text[]) AS r(tenant) \
                 ON CONFLICT (tenant) DO NOTHING",
                qualified(schema, "dim_tenant")
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(self.tenants.into_iter().collect::<Vec<_>>())
                .execute(&mut *conn)
                .await
                .map_err(statement_error("dim_tenant"))?;
        }
        if !self.resources.is_empty() {
            let n = self.resources.len();
            let (mut tenants, mut urns, mut kinds, mut namespaces, mut names) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for ((tenant, urn), parsed) in self.resources {
                tenants.push(tenant);
                urns.push(urn);
                kinds.push(parsed.kind);
                namespaces.push(parsed.namespace);
                names.push(parsed.name);
            }
            let sql = format!(
                "INSERT INTO {} (tenant, urn, kind, namespace, name, first_seen, last_seen) \
                 SELECT tenant, urn, kind, namespace, name, now(), now() \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                      AS r(tenant, urn, kind, namespace, name) \
                 ON CONFLICT (tenant, urn) DO UPDATE SET last_seen = EXCLUDED.last_seen",
                qualified(schema, "dim_resource")
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(tenants)
                .bind(urns)
                .bind(kinds)
                .bind(namespaces)
                .bind(names)
                .execute(&mut *conn)
                .await
                .map_err(statement_error("dim_resource"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(kind: &str, namespace: Option<&str>, name: &str) -> ResourceName {
        ResourceName {
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn urns() {
        assert_eq!(
            parse_urn("urn:k8s:svc:shop/checkout"),
            parsed("svc", Some("shop"), "checkout")
        );
        assert_eq!(
            parse_urn("urn:k8s:deploy:shop/cart-v2"),
            parsed("deploy", Some("shop"), "cart-v2")
        );
        assert_eq!(
            parse_urn("urn:k8s:node:node-1"),
            parsed("node", None, "node-1")
        );
        assert_eq!(parse_urn("urn:host:node-1"), parsed("host", None, "node-1"));
        assert_eq!(
            parse_urn("urn:ext:api.stripe.com"),
            parsed("ext", None, "api.stripe.com")
        );
        assert_eq!(
            parse_urn("urn:db:postgres/orders"),
            parsed("db", None, "postgres/orders")
        );
        assert_eq!(
            parse_urn("urn:k8s:svc:a/b:c"),
            parsed("svc", Some("a"), "b:c")
        );
    }

    #[test]
    fn malformed_urns_keep_the_whole_name() {
        for raw in ["checkout", "urn:", "urn:host", "urn::x", "urn:host:", ""] {
            assert_eq!(parse_urn(raw), parsed("unknown", None, raw), "{raw:?}");
        }
    }
}
