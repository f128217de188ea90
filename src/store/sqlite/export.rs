//! Reading a whole SQLite store in one consistent pass, table by table (for `tocsin
//! migrate-store`): one connection holds one read transaction from the first row to the last, so
//! every table is read as of the same commit, while a server may go on writing.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{db_err, to_value};
use crate::store::sql::Value;
use crate::store::StoreError;

/// Tables that hold nothing worth moving: the schema's own bookkeeping, the dashboard's sessions
/// (signed in again after the move) and the servers' heartbeats.
const NOT_COPIED: &[&str] = &["schema_migrations", "ui_sessions", "servers"];

/// A read transaction over a SQLite store.
pub struct Snapshot {
    conn: Connection,
}

impl Snapshot {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err)?;
        // A deferred transaction starts reading at its first SELECT, and keeps that view.
        conn.execute_batch("BEGIN").map_err(db_err)?;
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(())).map_err(db_err)?;
        Ok(Self { conn })
    }

    /// The tables to copy, with their columns.
    pub fn tables(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let mut names = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(db_err)?;
        let names: Vec<String> =
            names.query_map([], |r| r.get(0)).map_err(db_err)?.collect::<Result<_, _>>().map_err(db_err)?;
        let mut out = Vec::new();
        for name in names.into_iter().filter(|n| !NOT_COPIED.contains(&n.as_str())) {
            let mut info = self.conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid").map_err(db_err)?;
            let columns: Vec<String> =
                info.query_map([&name], |r| r.get(0)).map_err(db_err)?.collect::<Result<_, _>>().map_err(db_err)?;
            // Names go into SQL text: only those Tocsin's own schema uses (a file made to look
            // like a store cannot smuggle SQL into the target).
            if let Some(odd) = std::iter::once(&name).chain(&columns).find(|n| !is_plain_name(n)) {
                return Err(StoreError::Corrupt(format!("the source has a table or column named {odd:?}")));
            }
            out.push((name, columns));
        }
        Ok(out)
    }

    /// Up to `limit` rows of `table` after the row with rowid `after`, in rowid order, with the
    /// last rowid read.
    pub fn rows(
        &self,
        table: &str,
        columns: &[String],
        after: i64,
        limit: usize,
    ) -> Result<(Vec<Vec<Value>>, i64), StoreError> {
        let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let sql = format!(
            "SELECT rowid, {} FROM \"{table}\" WHERE rowid > ?1 ORDER BY rowid LIMIT {limit}",
            quoted.join(", ")
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt.query([after]).map_err(db_err)?;
        let (mut out, mut last) = (Vec::new(), after);
        while let Some(row) = rows.next().map_err(db_err)? {
            last = row.get(0).map_err(db_err)?;
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(to_value(row.get_ref(i + 1).map_err(db_err)?));
            }
            out.push(values);
        }
        Ok((out, last))
    }
}

/// Lower-case letters, digits and `_`, as every name in Tocsin's schema.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
