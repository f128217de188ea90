//! [`Store`]: the store over any [`Backend`]. Its queries are written once, in the files of
//! the aggregates beside this one (`tokens.rs`, `webhooks.rs`, `events.rs`, `queue.rs`,
//! `history.rs`, …); each backend's own fast paths live in its folder.

use std::sync::Arc;

use uuid::Uuid;

use super::backend::{Backend, Dialect};
use super::cache::ReadCache;
use super::chain::Chain;
use super::event_cache::EventCache;
use super::postgres::batch::PgWrites;
use super::sql::{Row, Stmt};
use super::{AuditEntry, StoreError};
use crate::crypto::Cipher;
use crate::domain::event_type::EventType;
use crate::domain::tenant::TenantId;
use crate::domain::webhook::Webhook;
use crate::params;

/// Held deliveries made pending per statement when a webhook is re-enabled: a backlog of a
/// million is released as it drains, not in one transaction (which grew the WAL and the
/// server's memory by hundreds of MiB).
pub(super) const HELD_RELEASE_CHUNK: i64 = 5000;

/// The [`Store`] over any [`Backend`].
pub struct Store {
    pub(crate) db: Arc<dyn Backend>,
    /// Copies of the reads every publish makes (see [`super::cache`]); each method that changes
    /// what they hold drops them once its write is done.
    pub(super) event_types: ReadCache<TenantId, Vec<EventType>>,
    pub(super) webhooks: ReadCache<TenantId, Vec<Webhook>>,
    pub(super) tenant_profiles: ReadCache<TenantId, Option<String>>,
    pub(super) webhooks_by_id: ReadCache<Uuid, Option<Webhook>>,
    /// Events one webhook's claim read, for the other webhooks' claims (see [`super::event_cache`]).
    /// SQLite only: on PostgreSQL a fan-out to ten was slower with it (alternating runs of (b),
    /// `--events 30000`: 7 443 and 8 173 deliveries/s without, 5 986 and 6 118 with, and more of
    /// the server's CPU per delivery), for reasons not found yet.
    pub(super) claimed_events: Option<EventCache>,
    /// PostgreSQL: the writes of concurrent callers combined into one (small publishes, records
    /// of successful attempts).
    pub(super) pg: Option<PgWrites>,
    /// PostgreSQL: the token lookups of concurrent requests read together.
    pub(super) token_lookups: Option<super::tokens::TokenLookups>,
    /// PostgreSQL: the tokens of publishes, kept (see [`Store::find_publisher_token`]).
    pub(super) kept_tokens: Option<super::tokens::KeptTokens>,
    /// Seals the values of webhooks' custom headers at rest (they often carry credentials);
    /// set once the master key is loaded (`seal_with`).
    pub(super) sealer: std::sync::OnceLock<Cipher>,
}

impl Store {
    pub fn new(db: impl Backend) -> Self {
        let sqlite = db.dialect() == Dialect::Sqlite;
        let db: Arc<dyn Backend> = Arc::new(db);
        Self {
            pg: (!sqlite).then(|| PgWrites::new(db.clone())),
            token_lookups: (!sqlite).then(|| super::tokens::token_lookups(db.clone())),
            kept_tokens: (!sqlite).then(super::tokens::KeptTokens::default),
            db,
            event_types: ReadCache::new(),
            webhooks: ReadCache::new(),
            tenant_profiles: ReadCache::new(),
            webhooks_by_id: ReadCache::new(),
            claimed_events: sqlite.then(EventCache::new),
            sealer: std::sync::OnceLock::new(),
        }
    }

    /// From now on, values of custom headers are sealed with `cipher` when written, and opened
    /// when read (values written before, in plain text, still read as they are).
    /// The chains' heads are signed with it too.
    pub fn seal_with(&self, cipher: Cipher) {
        self.db.sign_heads_with(cipher.clone());
        if self.sealer.set(cipher).is_err() {
            tracing::debug!("the store's sealer was already set");
        }
    }

    /// Drops the copies of webhooks, after a write that changed one.
    pub(super) fn webhooks_changed(&self) {
        self.webhooks.invalidate();
        self.webhooks_by_id.invalidate();
    }
}

/// The insert of an audit entry: the next link of its tenant's audit chain.
pub(super) fn audit_stmt(a: &AuditEntry) -> Stmt {
    Stmt::chained_row(
        "INSERT INTO audit_log (tenant_id, actor, action, target, details, at, chain_seq, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        params![
            a.tenant_id.as_str(),
            &a.actor,
            &a.action,
            &a.target,
            a.details.to_string(),
            a.at,
            None::<i64>,
            None::<String>,
            None::<String>
        ],
        Chain::Audit,
        [6, 7, 8],
    )
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn count(rows: &[Row]) -> Result<u64, StoreError> {
    rows.first().map(|r| r.int("n")).transpose().map(|c| c.unwrap_or(0) as u64)
}
