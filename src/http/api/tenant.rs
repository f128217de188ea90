//! `/api/v1/tenant`: the caller's tenant's own settings: its contact address and the product
//! profile it speaks.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::ApiJson;
use crate::service::tenant as ops;
use crate::service::{AppState, Principal};

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    /// Told about failing and disabled webhooks that name no `owner_email`.
    pub contact_email: Option<String>,
    /// The product profile in effect: the tenant's own choice, else the deployment's default.
    pub profile: String,
    /// Whether the tenant chose `profile` (false: it follows `TOCSIN_PROFILE`).
    pub profile_chosen: bool,
    /// Every profile the deployment offers.
    pub profiles_available: Vec<String>,
}

/// Only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    /// An email address, or null (or empty) to clear it.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<Option<String>>,
    /// A profile's name, or null (or empty) to follow the deployment's default.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    pub profile: Option<Option<String>>,
}

/// A field that is present, null or not: absent stays `None`, null becomes `Some(None)`.
fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn view(state: &AppState, who: &Principal) -> ApiResult<TenantView> {
    let contact_email = ops::contact(state, who).await?;
    let (profile, profile_chosen) = ops::profile(state, who).await?;
    Ok(TenantView {
        id: who.tenant.to_string(),
        contact_email,
        profile: profile.name.clone(),
        profile_chosen,
        profiles_available: state.profiles.names().into_iter().map(String::from).collect(),
    })
}

#[utoipa::path(get, path = "/tenant", tag = "tenant",
    responses((status = 200, body = TenantView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_tenant(State(state): State<AppState>, who: Principal) -> ApiResult<Json<TenantView>> {
    Ok(Json(view(&state, &who).await?))
}

#[utoipa::path(put, path = "/tenant", tag = "tenant", request_body = TenantInput,
    responses((status = 200, body = TenantView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_tenant(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<TenantInput>,
) -> ApiResult<Json<TenantView>> {
    who.admin()?;
    // Both are checked before either is written.
    if let Some(profile) = &input.profile {
        ops::parse_profile(&state.profiles, profile.as_deref())?;
    }
    if let Some(contact) = &input.contact_email {
        ops::set_contact(&state, &who, contact.as_deref()).await?;
    }
    if let Some(profile) = &input.profile {
        ops::set_profile(&state, &who, profile.as_deref()).await?;
    }
    Ok(Json(view(&state, &who).await?))
}
