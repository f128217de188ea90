//! API tokens (stored as SHA-256 digests only) and the dashboard's sessions, which stand on them.

use std::sync::Arc;

use uuid::Uuid;

use super::backend::Backend;
use super::coalesce::Coalescer;
use super::sql::{Row, Stmt, Value};
use super::sql_store::{audit_stmt, corrupt};
use super::{AuditEntry, Store, StoreError, TokenRecord};
use crate::crypto::constant_time_eq;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::Role;
use crate::params;

impl Store {
    pub async fn insert_token(
        &self,
        t: &TokenRecord,
        digest: [u8; 32],
        audit: Option<AuditEntry>,
    ) -> Result<bool, StoreError> {
        let mut stmts = vec![Stmt::new(
            "INSERT INTO api_tokens (id, tenant_id, role, name, prefix, digest, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (digest) DO NOTHING",
            params![t.id, t.tenant_id.as_str(), t.role.as_str(), &t.name, &t.prefix, &digest[..], t.created_at],
        )];
        stmts.extend(audit.as_ref().map(audit_stmt));
        let r = self.db.write(stmts).await?;
        Ok(r[0].affected == 1)
    }

    pub async fn bootstrap_token(&self, t: &TokenRecord, digest: [u8; 32]) -> Result<bool, StoreError> {
        // The meta row goes first: a concurrent bootstrap waits on its key, then inserts nothing.
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO meta (key, value) VALUES ('bootstrapped', $1) ON CONFLICT (key) DO NOTHING",
                    params![t.id],
                ),
                Stmt::new(
                    "INSERT INTO api_tokens (id, tenant_id, role, name, prefix, digest, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'bootstrapped' AND value = $1)",
                    params![t.id, t.tenant_id.as_str(), t.role.as_str(), &t.name, &t.prefix, &digest[..], t.created_at],
                ),
            ])
            .await?;
        Ok(r[1].affected == 1)
    }

    /// The live (unrevoked) token with this digest, read afresh for every request so that a
    /// revocation, made by any server, applies to the next request. On PostgreSQL the lookups
    /// of concurrent requests are read together (see [`TokenLookups`]).
    pub async fn find_token(&self, digest: [u8; 32]) -> Result<Option<FoundToken>, StoreError> {
        if let Some(lookups) = &self.token_lookups {
            return lookups.submit(digest).await;
        }
        const SQL: &str = "SELECT id, tenant_id, role, name, prefix, created_at, revoked_at, digest \
                           FROM api_tokens WHERE digest = $1 AND revoked_at IS NULL";
        let rows = self.db.point_query(SQL, params![&digest[..]]).await?;
        rows.first().map(found_token).transpose()
    }

    /// The live token of a publish. On PostgreSQL a token read once is kept by this process, and
    /// the publishes that use it read nothing per request: `true` says it was kept, and then the
    /// publish carries its id ([`super::NewEvent::live_token`]), so that its own insert takes its
    /// events only while the token is live. A revocation made by any server so applies to the
    /// next publish without a read of its own (a round trip and a statement per request, the
    /// largest share of PostgreSQL's statements on two servers, docs/performance.md s27).
    /// SQLite reads the token afresh: a read of the local file on the request's own thread.
    pub async fn find_publisher_token(&self, digest: [u8; 32]) -> Result<Option<(FoundToken, bool)>, StoreError> {
        let Some(kept) = &self.kept_tokens else { return Ok(self.find_token(digest).await?.map(|f| (f, false))) };
        if let Some(found) = kept.get(&digest) {
            return Ok(Some((found, true)));
        }
        let found = self.find_token(digest).await?;
        if let Some(f) = &found {
            kept.keep(digest, f.clone());
        }
        Ok(found.map(|f| (f, false)))
    }

    /// Forgets a kept token (one a publish found revoked, or one revoked here).
    pub fn forget_token(&self, id: Uuid) {
        if let Some(kept) = &self.kept_tokens {
            kept.forget(id);
        }
    }

    pub async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, StoreError> {
        const SQL: &str = "SELECT id, tenant_id, role, name, prefix, created_at, revoked_at \
                           FROM api_tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC";
        let rows = self.db.query(SQL, params![tenant.as_str()]).await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn revoke_token(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
                    params![audit.at, tenant.as_str(), id],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        self.forget_token(id);
        Ok(r[0].affected == 1)
    }
}

impl Store {
    pub async fn create_session(
        &self,
        digest: [u8; 32],
        token_id: Uuid,
        csrf: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .write(vec![
                Stmt::new("DELETE FROM ui_sessions WHERE expires_at < $1", params![now_ms()]),
                Stmt::new(
                    "INSERT INTO ui_sessions (digest, token_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    params![&digest[..], token_id, csrf, now_ms(), expires_at],
                ),
            ])
            .await
            .map(|_| ())
    }

    pub async fn find_session(&self, digest: [u8; 32], now: i64) -> Result<Option<(TokenRecord, String)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT t.id, t.tenant_id, t.role, t.name, t.prefix, t.created_at, t.revoked_at, s.csrf \
                 FROM ui_sessions s JOIN api_tokens t ON t.id = s.token_id \
                 WHERE s.digest = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
                params![&digest[..], now],
            )
            .await?;
        rows.first().map(|r| Ok((token_from_row(r)?, r.text("csrf")?))).transpose()
    }

    pub async fn delete_session(&self, digest: [u8; 32]) -> Result<(), StoreError> {
        self.db
            .write(vec![Stmt::new("DELETE FROM ui_sessions WHERE digest = $1", params![&digest[..]])])
            .await
            .map(|_| ())
    }
}

/// A live token's record and its stored digest (for the caller's constant-time comparison).
pub type FoundToken = (TokenRecord, Vec<u8>);

fn found_token(r: &Row) -> Result<FoundToken, StoreError> {
    Ok((token_from_row(r)?, r.bytes("digest")?))
}

/// PostgreSQL: the token lookups of concurrent requests, read with one statement. Every request
/// reads its token (a revocation applies to the next request, on every server), and on
/// PostgreSQL each statement costs a backend tens of µs and a round trip: sixteen publishing
/// connections made sixteen lookups for every sixteen publishes. A lookup queued while a read is
/// in flight waits for the next read, which starts after it was queued, so it still sees every
/// revocation committed before its request arrived.
pub(super) type TokenLookups = Coalescer<[u8; 32], Option<FoundToken>>;

/// Most lookups read by one statement.
const MAX_COMBINED_LOOKUPS: usize = 64;

pub(super) fn token_lookups(db: Arc<dyn Backend>) -> TokenLookups {
    Coalescer::new(
        1,
        MAX_COMBINED_LOOKUPS,
        Box::new(move |digests: Vec<[u8; 32]>| {
            let db = db.clone();
            Box::pin(async move {
                match find_tokens(&*db, &digests).await {
                    Ok(found) => found.into_iter().map(Ok).collect(),
                    Err(e) => digests.iter().map(|_| Err(e.clone())).collect(),
                }
            })
        }),
    )
}

/// The live tokens of `digests`, in their order (`None` for one unknown or revoked).
async fn find_tokens(db: &dyn Backend, digests: &[[u8; 32]]) -> Result<Vec<Option<FoundToken>>, StoreError> {
    const SQL: &str = "SELECT id, tenant_id, role, name, prefix, created_at, revoked_at, digest \
                       FROM api_tokens WHERE digest = ANY(CAST($1 AS BYTEA[])) AND revoked_at IS NULL";
    let list = Value::Array(digests.iter().map(|d| Value::Bytes(d.to_vec())).collect());
    let rows = db.point_query(SQL, vec![list]).await?;
    let found: Vec<FoundToken> = rows.iter().map(found_token).collect::<Result<_, _>>()?;
    Ok(digests.iter().map(|d| found.iter().find(|(_, stored)| constant_time_eq(stored, d)).cloned()).collect())
}

/// PostgreSQL: the live tokens publishes used, by digest (see [`Store::find_publisher_token`]).
/// Kept without an expiry: a token's tenant and role never change, and whether it is still live
/// is what each publish's insert checks.
#[derive(Default)]
pub(super) struct KeptTokens(std::sync::Mutex<std::collections::HashMap<[u8; 32], FoundToken>>);

/// Most tokens kept; past it the copy starts afresh (a deployment has a few per tenant).
const MAX_KEPT_TOKENS: usize = 10_000;

impl KeptTokens {
    fn get(&self, digest: &[u8; 32]) -> Option<FoundToken> {
        let kept = self.0.lock().ok()?;
        let found = kept.get(digest)?;
        // The map found it by its digest; compared again in constant time, as a read is.
        constant_time_eq(&found.1, digest).then(|| found.clone())
    }

    fn keep(&self, digest: [u8; 32], found: FoundToken) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() >= MAX_KEPT_TOKENS {
                kept.clear();
            }
            kept.insert(digest, found);
        }
    }

    fn forget(&self, id: Uuid) {
        if let Ok(mut kept) = self.0.lock() {
            kept.retain(|_, (record, _)| record.id != id);
        }
    }
}

pub(super) fn token_from_row(r: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.uuid("id")?,
        tenant_id: TenantId::parse(&r.text("tenant_id")?).map_err(|e| corrupt("tenant", e))?,
        role: Role::parse(&r.text("role")?).map_err(|e| corrupt("role", e))?,
        name: r.text("name")?,
        prefix: r.text("prefix")?,
        created_at: r.int("created_at")?,
        revoked_at: r.opt_int("revoked_at")?,
    })
}
