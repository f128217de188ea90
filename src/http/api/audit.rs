//! `/api/v1/audit-log`: every management change, newest first. Admins only.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::{page_params, ApiQuery};
use super::webhooks::PageQuery;
use crate::domain::time::rfc3339_ms;
use crate::service::AppState;
use crate::service::Principal;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditView>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[utoipa::path(get, path = "/audit-log", tag = "audit",
    params(("page" = Option<u32>, Query), ("per_page" = Option<u32>, Query)),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditList>> {
    who.admin()?;
    let page = page_params(&q.page, &q.per_page, 50)?;
    let (records, total) = state.store.list_audit(&who.tenant, page).await?;
    let data = records
        .into_iter()
        .map(|r| AuditView {
            id: r.id,
            actor: r.entry.actor,
            action: r.entry.action,
            target: r.entry.target,
            details: r.entry.details,
            at: rfc3339_ms(r.entry.at),
        })
        .collect();
    Ok(Json(AuditList { data, page: page.page, per_page: page.per_page, total }))
}
