//! Durable state behind one interface, [`Store`], on two backends: embedded SQLite and PostgreSQL.
//!
//! [`Store`] is the sum of one interface per aggregate (tokens, sessions, event types, webhooks,
//! events, the delivery queue, history); bring them into scope with `use crate::store::prelude::*`.
//! The queries are written once ([`SqlStore`], in the aggregates' files) over a tiny [`Backend`]
//! interface that each database implements ([`sqlite`], [`postgres`]): a read, and an atomic
//! write of several statements. Every change of configuration is written in the same
//! transaction as its audit entry, so the audit log cannot miss one.

pub mod backend;
pub mod cache;
pub mod event_cache;
pub mod event_types;
pub mod events;
pub mod history;
pub mod meta;
pub mod migrations;
pub mod postgres;
pub mod queue;
pub mod records;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
pub mod tokens;
pub mod url;
pub mod webhooks;

use std::sync::Arc;

pub use backend::{Backend, Dialect};
pub use records::*;
pub use sql_store::SqlStore;
pub use url::DatabaseUrl;

/// Every aggregate's interface, for `use crate::store::prelude::*`.
pub mod prelude {
    pub use super::event_types::EventTypeStore;
    pub use super::events::EventStore;
    pub use super::history::HistoryStore;
    pub use super::meta::MetaStore;
    pub use super::queue::QueueStore;
    pub use super::tokens::{SessionStore, TokenStore};
    pub use super::webhooks::WebhookStore;
    pub use super::Store;
}

use prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is not what was expected: {0}")]
    Corrupt(String),
    #[error("conflict: {0}")]
    Conflict(String),
}

/// The one storage interface the layers above use: every aggregate's.
pub trait Store:
    MetaStore + TokenStore + SessionStore + EventTypeStore + WebhookStore + EventStore + QueueStore + HistoryStore
{
}

impl<T> Store for T where
    T: MetaStore + TokenStore + SessionStore + EventTypeStore + WebhookStore + EventStore + QueueStore + HistoryStore
{
}

/// Opens the configured database (creating the SQLite file and its directory when needed).
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqlStore::new(sqlite::SqliteBackend::open(path)?)),
        DatabaseUrl::Postgres(url) => Arc::new(SqlStore::new(postgres::PgBackend::connect(url).await?)),
    })
}
