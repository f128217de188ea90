//! Who is asking: a live token's tenant and role, and the checks every use case makes of it.

use uuid::Uuid;

use super::{AppState, ServiceError, ServiceResult};
use crate::crypto::constant_time_eq;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::{token_digest, Role};
use crate::store::AuditEntry;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: Uuid,
    pub tenant: TenantId,
    pub role: Role,
}

impl Principal {
    /// Refuses unless the caller's role is one of `roles`.
    pub fn require(&self, roles: &[Role]) -> ServiceResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<_> = roles.iter().map(Role::as_str).collect();
            Err(ServiceError::Forbidden(names.join(" or ")))
        }
    }

    pub fn admin(&self) -> ServiceResult<()> {
        self.require(&[Role::Admin])
    }

    /// Admins and viewers may read configuration and history.
    pub fn reader(&self) -> ServiceResult<()> {
        self.require(&[Role::Admin, Role::Viewer])
    }

    /// Whether the caller may see credentials in configuration (a URL's tokens): admins only.
    pub fn sees_credentials(&self) -> bool {
        self.role == Role::Admin
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// An audit entry of a change this caller makes.
    pub fn audit(&self, action: &str, target: String, details: serde_json::Value) -> AuditEntry {
        AuditEntry {
            tenant_id: self.tenant.clone(),
            actor: self.actor(),
            action: action.to_string(),
            target,
            details,
            at: now_ms(),
        }
    }
}

/// The caller of a publish. On PostgreSQL its token may come from this process's copy rather
/// than from a read for this request ([`crate::store::Store::find_publisher_token`]); such a
/// caller is confirmed by its publish's own insert, which stores nothing for a token no longer
/// live, and any other answer (an invalid event, a batch with nothing valid) is given only after
/// the token is read afresh ([`Publisher::refuse`], [`Publisher::confirm`]): a revoked token is
/// answered 401, never with what its request would have got.
#[derive(Debug)]
pub struct Publisher {
    who: Principal,
    digest: [u8; 32],
    /// The token was not read from the database for this request.
    kept: bool,
}

impl std::ops::Deref for Publisher {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.who
    }
}

impl Publisher {
    /// The token the publish's insert must find live: set when it was kept, not read.
    pub fn live_token(&self) -> Option<Uuid> {
        self.kept.then_some(self.who.token_id)
    }

    /// Confirms a kept token by reading it afresh (a revoked one is forgotten: 401).
    pub async fn confirm(&self, state: &AppState) -> ServiceResult<()> {
        if !self.kept {
            return Ok(());
        }
        match read_live(state, self.digest).await {
            Err(ServiceError::Unauthorized) => {
                state.store.forget_token(self.who.token_id);
                Err(ServiceError::Unauthorized)
            }
            read => read.map(|_| ()),
        }
    }

    /// What to answer instead of `error`: `error` itself once the token is confirmed, else the
    /// refusal of the token.
    pub async fn refuse<E: From<ServiceError>>(&self, state: &AppState, error: E) -> E {
        match self.confirm(state).await {
            Ok(()) => error,
            Err(refused) => refused.into(),
        }
    }
}

/// Resolves the bearer token of a publish (see [`Publisher`]).
pub async fn authenticate_publisher(state: &AppState, presented: &str) -> ServiceResult<Publisher> {
    let digest = token_digest(presented);
    let ((record, stored), kept) = state.store.find_publisher_token(digest).await?.ok_or(ServiceError::Unauthorized)?;
    if !constant_time_eq(&stored, &digest) {
        return Err(ServiceError::Unauthorized);
    }
    Ok(Publisher { who: Principal { token_id: record.id, tenant: record.tenant_id, role: record.role }, digest, kept })
}

/// Resolves a presented bearer token (constant-time comparison of its digest).
pub async fn authenticate(state: &AppState, presented: &str) -> ServiceResult<Principal> {
    let record = read_live(state, token_digest(presented)).await?;
    Ok(Principal { token_id: record.id, tenant: record.tenant_id, role: record.role })
}

/// The live token with this digest, read afresh (the stored digest compared in constant time).
async fn read_live(state: &AppState, digest: [u8; 32]) -> ServiceResult<crate::store::TokenRecord> {
    let (record, stored) = state.store.find_token(digest).await?.ok_or(ServiceError::Unauthorized)?;
    if !constant_time_eq(&stored, &digest) {
        return Err(ServiceError::Unauthorized);
    }
    Ok(record)
}
