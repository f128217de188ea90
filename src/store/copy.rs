//! `tocsin migrate-store`: an embedded SQLite store copied into an empty PostgreSQL one, every
//! table as of one commit of the source (one read transaction), so that `tocsin serve` on
//! PostgreSQL goes on where SQLite stopped: the same tenants, tokens, webhooks (their secrets
//! still sealed under the same master key), event types, events, deliveries (pending, held and
//! done), attempts, audit log and chains.
//!
//! All or nothing: a copy that fails part way (a lost connection, a row the target refuses)
//! empties the tables it was filling again, so that the same command can simply be run again;
//! a half-filled target would look like a store that lost data.

use std::path::Path;

use base64::Engine as _;

use super::sql::{Stmt, Value};
use super::sqlite::export::Snapshot;
use super::{Dialect, Store, StoreError};
use crate::params;

/// Rows read from the source at a time.
const CHUNK: usize = 500;
/// Most bytes of rows (as JSON) written per statement: events and bodies can be large.
const MAX_STATEMENT_BYTES: usize = 8 << 20;

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target database is not empty: its table {0} has rows; copy into a new, empty database")]
    NotEmpty(String),
    #[error("the target must be a PostgreSQL database")]
    NotPostgres,
    #[error("table {0} of the source is not in the target: are both at this version of Tocsin?")]
    UnknownTable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the copy failed: {cause}; {}", after_failure(.emptied))]
    Failed {
        cause: Box<CopyError>,
        /// Why the target could not be emptied again, if it could not.
        emptied: Option<StoreError>,
    },
}

fn after_failure(emptied: &Option<StoreError>) -> String {
    match emptied {
        None => "nothing was kept in the target: mend the cause and run the same command again".into(),
        Some(e) => format!(
            "emptying the target again failed too ({e}): drop and create the target database before the next try"
        ),
    }
}

/// A query text made once per table (statements take `&'static str`; a copy makes a few).
fn sql(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

impl Store {
    /// Copies the SQLite store at `source` into this (empty, migrated) PostgreSQL store; returns
    /// each table with the rows copied.
    pub async fn copy_from_sqlite(&self, source: &Path) -> Result<Vec<(String, u64)>, CopyError> {
        if self.db.dialect() != Dialect::Postgres {
            return Err(CopyError::NotPostgres);
        }
        let path = source.to_path_buf();
        let snapshot = tokio::task::spawn_blocking(move || Snapshot::open(&path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        let tables = snapshot.tables()?;
        for (table, _) in &tables {
            let rows = self.db.query(sql(format!("SELECT COUNT(*) AS n FROM \"{table}\"")), vec![]).await?;
            if rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0) > 0 {
                return Err(CopyError::NotEmpty(table.clone()));
            }
        }
        match self.copy_tables(snapshot, &tables).await {
            Ok(copied) => Ok(copied),
            Err(cause) => {
                let names: Vec<String> = tables.iter().map(|(t, _)| format!("\"{t}\"")).collect();
                let truncate = sql(format!("TRUNCATE {} RESTART IDENTITY", names.join(", ")));
                let emptied = self.db.write(vec![Stmt::new(truncate, vec![])]).await.err();
                Err(CopyError::Failed { cause: Box::new(cause), emptied })
            }
        }
    }

    /// Copies `tables` from the snapshot, then moves the identities past the copied rows.
    async fn copy_tables(
        &self,
        mut snapshot: Snapshot,
        tables: &[(String, Vec<String>)],
    ) -> Result<Vec<(String, u64)>, CopyError> {
        let mut copied = Vec::new();
        for (table, columns) in tables.iter().cloned() {
            let insert = self.insert_sql(&table, &columns).await?;
            let (mut after, mut count) = (0, 0u64);
            loop {
                let (t, c) = (table.clone(), columns.clone());
                let (back, read) = tokio::task::spawn_blocking(move || {
                    let read = snapshot.rows(&t, &c, after, CHUNK);
                    (snapshot, read)
                })
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                snapshot = back;
                let (rows, last) = read?;
                if rows.is_empty() {
                    break;
                }
                count += rows.len() as u64;
                after = last;
                let mut batch: Vec<String> = Vec::new();
                let mut bytes = 0;
                for row in &rows {
                    let json = row_json(&columns, row).to_string();
                    if bytes + json.len() > MAX_STATEMENT_BYTES && !batch.is_empty() {
                        self.db.write(vec![Stmt::new(insert, params![format!("[{}]", batch.join(","))])]).await?;
                        batch.clear();
                        bytes = 0;
                    }
                    bytes += json.len();
                    batch.push(json);
                }
                self.db.write(vec![Stmt::new(insert, params![format!("[{}]", batch.join(","))])]).await?;
            }
            copied.push((table, count));
        }
        self.db
            .write(vec![
                // The identities go on after the copied rows.
                Stmt::new(
                    "SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), \
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries), false)",
                    vec![],
                ),
                Stmt::new(
                    "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), \
                     (SELECT COALESCE(MAX(id), 0) + 1 FROM audit_log), false)",
                    vec![],
                ),
                // Leases of the SQLite server are void here: those deliveries are due again.
                Stmt::new(
                    "UPDATE deliveries SET state = 'pending', lease_until = NULL, leased_by = NULL \
                     WHERE state = 'leased'",
                    vec![],
                ),
            ])
            .await?;
        Ok(copied)
    }

    /// The insert of a chunk of `table`'s rows, as a JSON array unpacked by
    /// `jsonb_to_recordset` with the target's column types (byte strings travel as base64).
    async fn insert_sql(&self, table: &str, columns: &[String]) -> Result<&'static str, CopyError> {
        let rows = self
            .db
            .query(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                params![table],
            )
            .await?;
        let mut types = Vec::with_capacity(columns.len());
        for column in columns {
            let found = rows.iter().find(|r| r.text("column_name").is_ok_and(|n| &n == column));
            let data_type = match found {
                Some(r) => r.text("data_type")?,
                None => return Err(CopyError::UnknownTable(format!("{table}.{column}"))),
            };
            types.push(data_type);
        }
        let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let select: Vec<String> = columns
            .iter()
            .zip(&types)
            .map(|(c, t)| if t == "bytea" { format!("decode(x.\"{c}\", 'base64')") } else { format!("x.\"{c}\"") })
            .collect();
        let record: Vec<String> = columns
            .iter()
            .zip(&types)
            .map(|(c, t)| format!("\"{c}\" {}", if t == "bytea" { "text" } else { t.as_str() }))
            .collect();
        Ok(sql(format!(
            "INSERT INTO \"{table}\" ({}) OVERRIDING SYSTEM VALUE SELECT {} \
             FROM jsonb_to_recordset(CAST($1 AS TEXT)::jsonb) AS x({})",
            names.join(", "),
            select.join(", "),
            record.join(", ")
        )))
    }
}

/// A row as a JSON object keyed by column.
fn row_json(columns: &[String], values: &[Value]) -> serde_json::Value {
    let object = columns
        .iter()
        .zip(values)
        .map(|(c, v)| {
            let v = match v {
                Value::Null => serde_json::Value::Null,
                Value::Int(i) => (*i).into(),
                Value::Text(s) => s.clone().into(),
                Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
                // A SQLite row has no arrays.
                Value::Array(_) => serde_json::Value::Null,
            };
            (c.clone(), v)
        })
        .collect();
    serde_json::Value::Object(object)
}
