//! Durable state behind one interface, [`Store`], on two backends: embedded SQLite and PostgreSQL.
//!
//! The queries are written once ([`sql_store`]) over a tiny [`Backend`] interface that each
//! database implements ([`sqlite`], [`postgres`]): a read, and an atomic write of several
//! statements. Every change of configuration is written in the same transaction as its audit
//! entry, so the audit log cannot miss one.

pub mod backend;
pub mod migrations;
pub mod postgres;
pub mod sql;
pub mod sql_store;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::config::DatabaseUrl;
use crate::domain::event_type::EventType;
use crate::domain::page::Page;
use crate::domain::tenant::TenantId;
use crate::domain::token::Role;
use crate::domain::webhook::{SealedSecrets, Webhook};

pub use backend::{Backend, Dialect};
pub use sql_store::SqlStore;

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

/// An API token as listed (never its value or digest).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub role: Role,
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// One management change: who did what to which object.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub tenant_id: TenantId,
    /// `token:<id>` or `cli` or `system`.
    pub actor: String,
    /// e.g. `webhook.create`.
    pub action: String,
    /// e.g. `webhook:<id>`.
    pub target: String,
    /// Names of changed fields and other non-secret facts.
    pub details: serde_json::Value,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

/// A change of a webhook's `is_active` flag, with its side effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Unchanged,
    /// Re-enabled: the failure counter and the reason are cleared.
    Enable,
    /// Disabled by a person (`disabled_reason: "manual"`).
    Disable,
}

/// The one storage interface the API and the dispatcher use.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations; returns the versions applied now.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    fn dialect(&self) -> Dialect;

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Inserts `key` if absent; true when this call inserted it (exactly one caller wins).
    async fn meta_insert(&self, key: &str, value: &str) -> Result<bool, StoreError>;

    /// Stores a token by digest; a second token with the same digest is ignored (false).
    async fn insert_token(
        &self,
        token: &TokenRecord,
        digest: [u8; 32],
        audit: Option<AuditEntry>,
    ) -> Result<bool, StoreError>;
    /// Stores the bootstrap admin token if no bootstrap has happened yet (across all processes
    /// sharing the database); true when this call did it.
    async fn bootstrap_token(&self, token: &TokenRecord, digest: [u8; 32]) -> Result<bool, StoreError>;
    /// The live (not revoked) token with this digest.
    async fn find_token(&self, digest: [u8; 32]) -> Result<Option<(TokenRecord, Vec<u8>)>, StoreError>;
    async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, StoreError>;
    async fn revoke_token(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError>;

    /// The tenant's own event types (the configured catalogue is added by the caller).
    async fn list_event_types(&self, tenant: &TenantId) -> Result<Vec<EventType>, StoreError>;
    /// Creates or replaces; true when created.
    async fn upsert_event_type(&self, tenant: &TenantId, et: &EventType, audit: AuditEntry)
        -> Result<bool, StoreError>;
    async fn delete_event_type(&self, tenant: &TenantId, name: &str, audit: AuditEntry) -> Result<bool, StoreError>;

    async fn insert_webhook(&self, webhook: &Webhook, audit: AuditEntry) -> Result<(), StoreError>;
    async fn get_webhook(&self, tenant: &TenantId, id: Uuid) -> Result<Option<Webhook>, StoreError>;
    /// Newest first, with the total count.
    async fn list_webhooks(&self, tenant: &TenantId, page: Page) -> Result<(Vec<Webhook>, u64), StoreError>;
    /// Writes the configuration fields of `webhook` (not its counters or secrets).
    async fn update_webhook(
        &self,
        webhook: &Webhook,
        activation: Activation,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;
    async fn update_secrets(
        &self,
        tenant: &TenantId,
        id: Uuid,
        secrets: &SealedSecrets,
        audit: AuditEntry,
    ) -> Result<bool, StoreError>;
    async fn delete_webhook(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError>;

    /// Newest first, with the total count.
    async fn list_audit(&self, tenant: &TenantId, page: Page) -> Result<(Vec<AuditRecord>, u64), StoreError>;
}

/// Opens the configured database (creating the SQLite file and its directory when needed).
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqlStore::new(sqlite::SqliteBackend::open(path)?)),
        DatabaseUrl::Postgres(url) => Arc::new(SqlStore::new(postgres::PgBackend::connect(url).await?)),
    })
}
