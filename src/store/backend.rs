//! What a database must offer the shared queries.

use async_trait::async_trait;

use super::sql::{Row, Stmt, StmtResult, Value};
use super::StoreError;

/// How soon a write must survive a power loss. Every committed write survives a crash of the
/// process; the difference is only whether the commit waits for the disk (fsync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Answered only once on stable storage: accepted events, configuration, audit.
    Synced,
    /// May be lost with the last fraction of a second before a power loss, because losing it only
    /// repeats work: a lost claim is claimed again, a lost attempt record is attempted again
    /// (at least once, never lost). It becomes durable with the next synced commit or checkpoint.
    Deferred,
    /// Deferred, and nothing waits on it to go on (an attempt's record: the attempt's slot is
    /// already free): the writer may hold it a moment to commit it together with more writes.
    Background,
}

impl Durability {
    /// Whether the commit must reach stable storage before it is answered.
    pub fn is_synced(self) -> bool {
        self == Durability::Synced
    }
}

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

    /// Runs a read-only statement that finds at most a row or two by a unique key in a small
    /// table (a token by its digest): where a backend can, at once on the caller's thread, since
    /// handing it to another thread and back costs more than the read. By default, as `query`.
    async fn point_query(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        self.query(sql, params).await
    }

    /// Runs a read-only statement that finds rows by key in a table that grows with history (a
    /// claim's events by id) with an index plan, where a backend's plan could otherwise depend on
    /// how small the table was when the plan was made. By default, as `query`.
    async fn query_by_key(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        self.query(sql, params).await
    }

    /// Runs statements in one transaction: all of them take effect, or none.
    async fn write_with(&self, stmts: Vec<Stmt>, durability: Durability) -> Result<Vec<StmtResult>, StoreError>;

    /// A synced write (see [`Durability`]).
    async fn write(&self, stmts: Vec<Stmt>) -> Result<Vec<StmtResult>, StoreError> {
        self.write_with(stmts, Durability::Synced).await
    }

    /// From now on, the heads of the chains this backend moves are signed by `cipher`.
    fn sign_heads_with(&self, cipher: crate::crypto::Cipher);

    /// Applies the migrations not yet applied, in order, each in its own transaction.
    async fn migrate(&self, migrations: &'static [(i64, &'static str)]) -> Result<Vec<i64>, StoreError>;
}
