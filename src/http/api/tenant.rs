//! `/api/v1/tenant`: the caller's tenant's own settings.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
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
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    /// An email address, or null (or empty) to clear it.
    pub contact_email: Option<String>,
}

#[utoipa::path(get, path = "/tenant", tag = "tenant",
    responses((status = 200, body = TenantView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_tenant(State(state): State<AppState>, who: Principal) -> ApiResult<Json<TenantView>> {
    let contact_email = ops::contact(&state, &who).await?;
    Ok(Json(TenantView { id: who.tenant.to_string(), contact_email }))
}

#[utoipa::path(put, path = "/tenant", tag = "tenant", request_body = TenantInput,
    responses((status = 200, body = TenantView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_tenant(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<TenantInput>,
) -> ApiResult<Json<TenantView>> {
    let contact_email = ops::set_contact(&state, &who, input.contact_email.as_deref()).await?;
    Ok(Json(TenantView { id: who.tenant.to_string(), contact_email }))
}
