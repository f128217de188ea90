//! Tenant-wide settings as a use case: reading them (admins and viewers) and changing them
//! (admins, audited): the contact address, and the product profile the tenant speaks.

use std::sync::Arc;

use super::{AppState, Principal, ServiceError, ServiceResult};
use crate::domain::tenant::TenantId;
use crate::domain::webhook::parse_owner_email;
use crate::domain::FieldError;
use crate::profile::{Profile, Profiles};
use crate::store::{AuditEntry, Store};

/// The tenant's contact address: told about failing and disabled webhooks that name no owner.
pub async fn contact(state: &AppState, who: &Principal) -> ServiceResult<Option<String>> {
    who.reader()?;
    Ok(state.store.tenant_contact(&who.tenant).await?)
}

/// Sets (or, with `None` or an empty address, clears) the tenant's contact address.
pub async fn set_contact(state: &AppState, who: &Principal, raw: Option<&str>) -> ServiceResult<Option<String>> {
    who.admin()?;
    let contact = match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(address) => Some(parse_owner_email(address).map_err(|e| FieldError::new("contact_email", e.message))?),
        None => None,
    };
    let audit =
        who.audit("tenant.update", format!("tenant:{}", who.tenant), serde_json::json!({"fields": ["contact_email"]}));
    state.store.set_tenant_contact(&who.tenant, contact.as_deref(), audit).await?;
    Ok(contact)
}

/// The profile the tenant speaks, and whether it chose it (else it is the deployment's default).
pub async fn profile(state: &AppState, who: &Principal) -> ServiceResult<(Arc<Profile>, bool)> {
    who.reader()?;
    let chosen = state.store.tenant_profile(&who.tenant).await?;
    let profile = state.profiles.resolve(chosen.as_deref());
    let own = chosen.as_deref() == Some(profile.name.as_str());
    Ok((profile, own))
}

/// Sets the caller's tenant's profile (admins), or with `None` or an empty name returns it to the
/// deployment's default.
pub async fn set_profile(state: &AppState, who: &Principal, raw: Option<&str>) -> ServiceResult<Arc<Profile>> {
    who.admin()?;
    let audit = |name: Option<&str>| {
        who.audit("tenant.set_profile", format!("tenant:{}", who.tenant), serde_json::json!({"profile": name}))
    };
    choose_profile(&state.store, &state.profiles, &who.tenant, raw, audit).await
}

/// A profile's name as given: one the deployment has, or none (null, empty: the default).
pub fn parse_profile(profiles: &Profiles, raw: Option<&str>) -> ServiceResult<Option<Arc<Profile>>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(n) => Ok(Some(profiles.get(n).cloned().ok_or_else(|| {
            ServiceError::invalid(
                "profile",
                format!("no profile named '{n}' (there are {})", profiles.names().join(", ")),
            )
        })?)),
        None => Ok(None),
    }
}

/// Sets a tenant's profile on behalf of whoever `audit` names (the API's admin, or the CLI).
/// Every webhook of the tenant delivers in the new profile's contract from its next attempt.
pub async fn choose_profile(
    store: &Store,
    profiles: &Profiles,
    tenant: &TenantId,
    raw: Option<&str>,
    audit: impl FnOnce(Option<&str>) -> AuditEntry,
) -> ServiceResult<Arc<Profile>> {
    let chosen = parse_profile(profiles, raw)?;
    let stored = chosen.as_ref().map(|p| p.name.as_str());
    store.set_tenant_profile(tenant, stored, audit(stored)).await?;
    Ok(chosen.unwrap_or_else(|| profiles.default_profile().clone()))
}
