//! Versioned schema migrations, embedded in the binary and written once, in PostgreSQL's SQL.
//! SQLite runs the same statements with its own names for three types; everything else in
//! them is SQL both databases read alike. A database records the versions it applied, so a
//! migration, once released, is never edited: a change is a new file.

use std::sync::OnceLock;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("0001_init.sql")),
    (2, include_str!("0002_ui_sessions.sql")),
    (3, include_str!("0003_due_index_by_state.sql")),
    (4, include_str!("0004_attempt_indexes_ascending.sql")),
    (5, include_str!("0005_circuit_breaker.sql")),
    (6, include_str!("0006_servers.sql")),
    (7, include_str!("0007_tenants.sql")),
    (8, include_str!("0008_tenant_profile.sql")),
    (9, include_str!("0009_response_headers.sql")),
    (10, include_str!("0010_ed25519.sql")),
    (11, include_str!("0011_filters.sql")),
    (12, include_str!("0012_verification.sql")),
    (13, include_str!("0013_chains.sql")),
];

/// PostgreSQL's migrations: as written.
pub fn postgres() -> &'static [(i64, &'static str)] {
    MIGRATIONS
}

/// SQLite's migrations: translated once, then kept for the life of the process.
pub fn sqlite() -> &'static [(i64, &'static str)] {
    static TRANSLATED: OnceLock<Vec<(i64, &'static str)>> = OnceLock::new();
    TRANSLATED.get_or_init(|| {
        MIGRATIONS.iter().map(|(version, sql)| (*version, &*Box::leak(to_sqlite(sql).into_boxed_str()))).collect()
    })
}

/// PostgreSQL's types as SQLite names them: an identity key becomes a rowid alias (which only
/// `INTEGER PRIMARY KEY` is), 64-bit integers `INTEGER`, byte strings `BLOB`.
fn to_sqlite(sql: &str) -> String {
    sql.replace("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
        .replace("BIGINT", "INTEGER")
        .replace("BYTEA", "BLOB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_its_own_type_names_and_nothing_else_changes() {
        let pg = postgres()[0].1;
        let lite = sqlite()[0].1;
        assert!(pg.contains("seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"));
        assert!(lite.contains("seq             INTEGER PRIMARY KEY AUTOINCREMENT,"));
        assert!(!lite.contains("BIGINT") && !lite.contains("BYTEA"));
        assert_eq!(pg.lines().count(), lite.lines().count());
        assert_eq!(sqlite().len(), postgres().len());
    }

    #[test]
    fn every_migration_applies_to_a_fresh_sqlite_database() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for (version, sql) in sqlite() {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
    }
}
