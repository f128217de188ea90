//! API tokens: create (shown once), list (never their values), revoke. The API and the
//! `tocsin token` command both work through these.

use uuid::Uuid;

use super::{ServiceError, ServiceResult};
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::{PlainToken, Role};
use crate::store::{AuditEntry, Store, TokenRecord};

fn audit(tenant: &TenantId, actor: &str, action: &str, id: Uuid, details: serde_json::Value) -> AuditEntry {
    AuditEntry {
        tenant_id: tenant.clone(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: format!("token:{id}"),
        details,
        at: now_ms(),
    }
}

/// Creates a token; returns its record and its value (shown once). `actor` is who asked
/// (`token:<id>` or `cli`), for the audit log.
pub async fn create(
    store: &Store,
    tenant: &TenantId,
    role: Role,
    name: &str,
    actor: &str,
) -> ServiceResult<(TokenRecord, PlainToken)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid("name", "name must be 1 to 200 characters"));
    }
    let plain = PlainToken::generate();
    let record = TokenRecord {
        id: Uuid::now_v7(),
        tenant_id: tenant.clone(),
        role,
        name: name.to_string(),
        prefix: plain.display_prefix(),
        created_at: now_ms(),
        revoked_at: None,
    };
    let entry = audit(tenant, actor, "token.create", record.id, serde_json::json!({"role": role.as_str()}));
    store.insert_token(&record, plain.digest(), Some(entry)).await?;
    Ok((record, plain))
}

pub async fn list(store: &Store, tenant: &TenantId) -> ServiceResult<Vec<TokenRecord>> {
    Ok(store.list_tokens(tenant).await?)
}

/// Revokes a live token of the tenant; a malformed, unknown or revoked id is not found.
pub async fn revoke(store: &Store, tenant: &TenantId, id: &str, actor: &str) -> ServiceResult<Uuid> {
    let id: Uuid = id.parse().map_err(|_| ServiceError::NotFound("token"))?;
    let entry = audit(tenant, actor, "token.revoke", id, serde_json::json!({}));
    if store.revoke_token(tenant, id, entry).await? {
        Ok(id)
    } else {
        Err(ServiceError::NotFound("token"))
    }
}
