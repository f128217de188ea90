//! `/api/v1/tokens`: an admin manages the API tokens of its own tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::domain::time::rfc3339_ms;
use crate::domain::token::Role;
use crate::service::tokens as ops;
use crate::service::AppState;
use crate::service::Principal;
use crate::store::TokenRecord;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl TokenView {
    pub fn of(t: &TokenRecord) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            role: t.role,
            prefix: t.prefix.clone(),
            created_at: rfc3339_ms(t.created_at),
            revoked_at: t.revoked_at.map(rfc3339_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub data: Vec<TokenView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    pub name: String,
    /// admin, viewer or publisher
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub meta: TokenView,
    /// The token. Shown once.
    pub token: String,
}

#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_tokens(State(state): State<AppState>, who: Principal) -> ApiResult<Json<TokenList>> {
    who.admin()?;
    let tokens = ops::list(state.store.as_ref(), &who.tenant).await?;
    Ok(Json(TokenList { data: tokens.iter().map(TokenView::of).collect() }))
}

#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = TokenInput,
    responses((status = 201, body = CreatedToken), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(input): ApiJson<TokenInput>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    who.admin()?;
    let role = Role::parse(&input.role)?;
    let (record, plain) = ops::create(state.store.as_ref(), &who.tenant, role, &input.name, &who.actor()).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { meta: TokenView::of(&record), token: plain.expose().to_string() })))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    ops::revoke(state.store.as_ref(), &who.tenant, &id, &who.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
