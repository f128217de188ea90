//! Durable state behind one interface, [`Store`], on two backends: embedded SQLite and PostgreSQL.
//!
//! The queries are written once ([`sql_store`]) over a tiny [`Backend`] interface that each
//! database implements ([`sqlite`], [`postgres`]): a read, and an atomic write of several
//! statements. Every change of configuration is written in the same transaction as its audit
//! entry, so the audit log cannot miss one.

pub mod backend;
pub mod cache;
pub mod event_cache;
pub mod migrations;
pub mod postgres;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
pub mod url;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::event_type::EventType;
use crate::domain::page::Page;
use crate::domain::tenant::TenantId;
use crate::domain::token::Role;
use crate::domain::webhook::{Format, SealedSecrets, Webhook};

pub use backend::{Backend, Dialect};
pub use sql_store::SqlStore;
pub use url::DatabaseUrl;

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

/// An accepted event, before it is stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub event_ref: String,
    pub event_type: String,
    pub ordering_key: Option<String>,
    /// The `data` object exactly as published (shared, not copied, by the deliveries handed
    /// over at publish).
    pub data: bytes::Bytes,
    pub created_at: i64,
}

/// One webhook an event fans out to.
#[derive(Debug, Clone)]
pub struct Target {
    pub webhook_id: Uuid,
    pub start: DeliveryStart,
}

/// The state a new delivery starts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStart {
    /// Due now: the dispatcher claims it.
    Pending,
    /// The webhook is inactive: the delivery waits until it is re-enabled.
    Held,
    /// Already leased to the publishing process, whose dispatcher had room for it: it is handed
    /// over in memory, with no claim. Should that process die, the lease expires like any other.
    Leased { claimer: String, lease_until: i64 },
}

impl DeliveryStart {
    fn state(&self) -> &'static str {
        match self {
            DeliveryStart::Pending => "pending",
            DeliveryStart::Held => "held",
            DeliveryStart::Leased { .. } => "leased",
        }
    }

    fn lease(&self) -> (Option<i64>, Option<&str>) {
        match self {
            DeliveryStart::Leased { claimer, lease_until } => (Some(*lease_until), Some(claimer.as_str())),
            _ => (None, None),
        }
    }
}

/// The answer to a publish (the original one, for a repeated `event_ref`).
#[derive(Debug, Clone)]
pub struct Published {
    pub event_id: Uuid,
    pub event_ref: String,
    pub deliveries: u64,
    /// The event_ref was already published: nothing new was created.
    pub duplicate: bool,
    /// The deliveries created leased to the publisher ([`DeliveryStart::Leased`]): (webhook, seq).
    pub leased: Vec<(Uuid, i64)>,
}

/// A delivery leased to this process for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    pub tenant_id: String,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    /// The event's payload, shared by all its deliveries in this process.
    pub data: bytes::Bytes,
    pub created_at: i64,
}

/// One attempt, as logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The `X-Tocsin-Delivery` value.
    pub id: Uuid,
    pub delivery_seq: i64,
    pub tenant_id: String,
    pub webhook_id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    /// The format the request was rendered in.
    pub format: Format,
    pub attempt_no: u32,
    pub success: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response_ms: i64,
    /// JSON object of the request headers (signatures included, never a secret).
    pub request_headers: String,
    /// When the request was rendered and sent (its `emitted_at`); the body is rendered again
    /// from the event for display rather than stored.
    pub dispatched_at: i64,
    pub response_body: Vec<u8>,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// Retry at this time (held instead while the webhook is inactive).
    Retry(i64),
    Failed,
}

/// The result of an attempt, written in one transaction with its effects on the webhook.
#[derive(Debug, Clone)]
pub struct Completion {
    pub attempt: AttemptRecord,
    pub next: NextStep,
    /// The lease this process holds; a delivery whose lease passed to another process is not touched.
    pub claimer: String,
    /// Test deliveries do not move the circuit breaker.
    pub counts_for_breaker: bool,
    /// The webhook's failure counter was 0 when the delivery was claimed: a success need not
    /// reset it (saves a write per delivery; a failure in between is reset by a later success).
    pub counter_was_zero: bool,
    /// The endpoint answered 410 Gone: deactivate at once.
    pub gone: bool,
    pub failure_threshold: u32,
}

/// An event with the state of its deliveries.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub data: Vec<u8>,
    pub created_at: i64,
    pub deliveries: Vec<DeliveryState>,
}

#[derive(Debug, Clone)]
pub struct DeliveryState {
    pub seq: i64,
    pub webhook_id: Uuid,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// Attempt statistics of one webhook over a window.
#[derive(Debug, Clone, Default)]
pub struct WebhookStats {
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
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

    /// Stores events and their deliveries atomically; an `event_ref` already published in the
    /// tenant creates nothing and answers as the first publish did.
    async fn publish(&self, events: Vec<(NewEvent, Vec<Target>)>) -> Result<Vec<Published>, StoreError>;
    /// Active webhooks of every tenant (for the dispatcher).
    async fn active_webhook_ids(&self) -> Result<Vec<Uuid>, StoreError>;
    /// Every webhook of a tenant (for fan-out).
    async fn tenant_webhooks(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError>;
    /// A webhook by id alone (for the dispatcher).
    async fn webhook_by_id(&self, id: Uuid) -> Result<Option<Webhook>, StoreError>;
    /// Leases up to `limit` due pending deliveries of one webhook, respecting ordering keys.
    async fn claim(
        &self,
        webhook: Uuid,
        claimer: &str,
        limit: u32,
        lease_until: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Records an attempt and moves its delivery; true when this completion disabled the webhook.
    async fn complete(&self, c: &Completion) -> Result<bool, StoreError>;
    /// Makes the next chunk of an active webhook's held deliveries (oldest first) pending;
    /// returns how many. Re-enabling releases the first chunk; the dispatcher the rest.
    async fn release_held(&self, webhook: Uuid, now: i64) -> Result<u64, StoreError>;
    /// Makes deliveries whose lease ended before `now` pending again (their claimer died or
    /// stalled); returns how many.
    async fn expire_leases(&self, now: i64) -> Result<u64, StoreError>;
    /// Returns leased deliveries that were not attempted (on shutdown): (seq, lease id) pairs.
    async fn release(&self, leases: &[(i64, String)]) -> Result<(), StoreError>;
    /// Creates a delivery leased by `claimer`, for an attempt made right away (test events).
    async fn lease_new_delivery(
        &self,
        event_id: Uuid,
        tenant: &TenantId,
        webhook: Uuid,
        claimer: &str,
        lease_until: i64,
    ) -> Result<i64, StoreError>;
    /// A new pending delivery of an already published event (redeliver).
    async fn redeliver(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        event_ref: &str,
        audit: AuditEntry,
    ) -> Result<Option<i64>, StoreError>;
    async fn get_event(&self, tenant: &TenantId, event_ref: &str) -> Result<Option<EventRecord>, StoreError>;
    /// Attempts of a webhook, newest first; `success` filters.
    async fn list_attempts(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        page: Page,
        success: Option<bool>,
    ) -> Result<(Vec<AttemptRecord>, u64), StoreError>;
    /// The tenant's most recent attempts.
    async fn recent_attempts(&self, tenant: &TenantId, limit: u32) -> Result<Vec<AttemptRecord>, StoreError>;
    async fn get_attempt(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        id: Uuid,
    ) -> Result<Option<AttemptRecord>, StoreError>;
    async fn webhook_stats(&self, tenant: &TenantId, webhook: Uuid, since: i64) -> Result<WebhookStats, StoreError>;
    /// Deletes history older than `before`; returns the number of attempts deleted.
    async fn prune(&self, before: i64) -> Result<u64, StoreError>;

    /// Attempts of a webhook since `since`, per bucket of `bucket_ms`: (bucket start, attempts,
    /// successes, mean response ms).
    async fn attempt_histogram(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, u64, u64, i64)>, StoreError>;

    /// Dashboard sessions, by the digest of the session cookie.
    async fn create_session(
        &self,
        digest: [u8; 32],
        token_id: Uuid,
        csrf: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// The live session's token (not revoked) and CSRF secret.
    async fn find_session(&self, digest: [u8; 32], now: i64) -> Result<Option<(TokenRecord, String)>, StoreError>;
    async fn delete_session(&self, digest: [u8; 32]) -> Result<(), StoreError>;
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
