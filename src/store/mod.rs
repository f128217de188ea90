//! Durable state behind one interface, [`Store`], on two backends: embedded SQLite and PostgreSQL.
//!
//! [`Store`]'s operations are grouped by aggregate, one file each (tokens and sessions, event
//! types, webhooks, events, the delivery queue, history, meta). The queries are written once, over
//! a tiny [`Backend`] interface that each database implements ([`sqlite`], [`postgres`]): a read,
//! and an atomic write of several statements. Each backend's folder also holds its own fast paths.
//! Every change of configuration is written in the same transaction as its audit entry, so the
//! audit log cannot miss one.

pub mod backend;
pub mod cache;
pub mod chain;
mod coalesce;
pub mod copy;
pub mod event_cache;
pub mod event_types;
pub mod events;
pub mod history;
pub mod ledger;
pub mod meta;
pub mod migrations;
pub mod postgres;
pub mod queue;
pub mod records;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
pub mod tenants;
pub mod tokens;
pub mod url;
pub mod webhooks;

use std::sync::Arc;

pub use backend::{Backend, Dialect};
pub use records::*;
pub use sql_store::Store;
pub use url::DatabaseUrl;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is shutting down: worth retrying later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused a statement.
    #[error("database error: {0}")]
    Database(String),
    /// A row does not read back as what was written (a column missing or of another type).
    #[error("stored data is not what was expected: {0}")]
    Corrupt(String),
    /// A uniqueness constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A publish made with a token this process had kept ([`NewEvent::live_token`]) found it
    /// revoked or gone: nothing of it was stored.
    #[error("the API token is no longer valid")]
    TokenNotLive,
}

/// Opens the configured database (creating the SQLite file and its directory when needed).
pub async fn open(url: &DatabaseUrl) -> Result<Arc<Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(Store::new(sqlite::SqliteBackend::open(path)?)),
        DatabaseUrl::Postgres(url) => Arc::new(Store::new(postgres::PgBackend::connect(url).await?)),
    })
}
