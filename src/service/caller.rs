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

/// Resolves a presented bearer token (constant-time comparison of its digest).
pub async fn authenticate(state: &AppState, presented: &str) -> ServiceResult<Principal> {
    let digest = token_digest(presented);
    let (record, stored) = state.store.find_token(digest).await?.ok_or(ServiceError::Unauthorized)?;
    if !constant_time_eq(&stored, &digest) {
        return Err(ServiceError::Unauthorized);
    }
    Ok(Principal { token_id: record.id, tenant: record.tenant_id, role: record.role })
}
