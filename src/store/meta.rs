//! Housekeeping: migrations, liveness, and a small key-value table of the store's own facts
//! (the master-key check, whether the bootstrap token was made).

use async_trait::async_trait;

use super::backend::{Backend, Dialect};
use super::sql::Stmt;
use super::{migrations, SqlStore, StoreError};
use crate::params;

/// The store's own upkeep.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Applies pending migrations; returns the versions applied now.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    fn dialect(&self) -> Dialect;
    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Inserts `key` if absent; true when this call inserted it (exactly one caller wins).
    async fn meta_insert(&self, key: &str, value: &str) -> Result<bool, StoreError>;
}

#[async_trait]
impl<B: Backend> MetaStore for SqlStore<B> {
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let list = match self.db.dialect() {
            Dialect::Sqlite => migrations::SQLITE,
            Dialect::Postgres => migrations::POSTGRES,
        };
        self.db.migrate(list).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.query("SELECT 1", vec![]).await.map(|_| ())
    }

    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self.db.query("SELECT value FROM meta WHERE key = $1", params![key]).await?;
        rows.first().map(|r| r.text("value")).transpose()
    }

    async fn meta_insert(&self, key: &str, value: &str) -> Result<bool, StoreError> {
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
