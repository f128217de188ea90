//! Tenant-wide settings as a use case: reading them (admins and viewers) and changing them
//! (admins, audited).

use super::{AppState, Principal, ServiceResult};
use crate::domain::webhook::parse_owner_email;
use crate::domain::FieldError;

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
