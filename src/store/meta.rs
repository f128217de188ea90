//! Housekeeping: migrations, liveness, and a small key-value table of the store's own facts
//! (the master-key check, whether the bootstrap token was made).

use super::backend::Dialect;
use super::sql::Stmt;
use super::{migrations, Store, StoreError};
use crate::params;

impl Store {
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let list = match self.db.dialect() {
            Dialect::Sqlite => migrations::sqlite(),
            Dialect::Postgres => migrations::postgres(),
        };
        self.db.migrate(list).await
    }

    /// Migrations this binary has that the database has not applied yet (none: up to date).
    pub async fn unapplied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows = self.db.query("SELECT version FROM schema_migrations", vec![]).await?;
        let applied: Vec<i64> = rows.iter().map(|r| r.int("version")).collect::<Result<_, _>>()?;
        let list = match self.db.dialect() {
            Dialect::Sqlite => migrations::sqlite(),
            Dialect::Postgres => migrations::postgres(),
        };
        Ok(list.iter().map(|(v, _)| *v).filter(|v| !applied.contains(v)).collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.query("SELECT 1", vec![]).await.map(|_| ())
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self.db.query("SELECT value FROM meta WHERE key = $1", params![key]).await?;
        rows.first().map(|r| r.text("value")).transpose()
    }

    pub async fn meta_insert(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![Stmt::new(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )])
            .await?;
        Ok(r[0].affected == 1)
    }
}
