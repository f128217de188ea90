//! What a database must offer the shared queries.

use async_trait::async_trait;

use super::sql::{Row, Stmt, StmtResult, Value};
use super::StoreError;

/// Where the SQL of the two databases differs, queries choose by dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn dialect(&self) -> Dialect;

    /// Runs a read-only statement.
    async fn query(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError>;

    /// Runs statements in one transaction: all of them take effect, or none.
    async fn write(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, StoreError>;

    /// Applies the migrations not yet applied, in order, each in its own transaction.
    async fn migrate(&self, migrations: &'static [(i64, &'static str)]) -> Result<Vec<i64>, StoreError>;
}
