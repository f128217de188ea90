//! `/api/v1/audit-log`: every management change, newest first; and `/audit-log/export`, the
//! tenant's audit chain as NDJSON with its hashes, oldest first, to verify offline. Admins only.

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

/// The tenant's audit chain, oldest first, one JSON object a line: `seq`, `prev_hash`, `hash` and
/// `entry`, where `hash = hex(SHA-256(prev_hash ‖ hex(SHA-256(entry as sorted compact JSON))))`
/// (the README has a script that checks an export). Streamed a page at a time.
#[utoipa::path(get, path = "/audit-log/export", tag = "audit",
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_audit(State(state): State<AppState>, who: Principal) -> ApiResult<axum::response::Response> {
    who.admin()?;
    // The first page is read before answering, so that a database error is a JSON error.
    let first = state.store.audit_chain_page(&who.tenant, 0).await?;
    let pages = futures_util::stream::unfold(Some((first, state, who.tenant)), |next| async move {
        let (page, state, tenant) = next?;
        let last = page.last().map(|e| e.seq)?;
        let mut text = Vec::with_capacity(page.len() * 256);
        for entry in &page {
            serde_json::to_writer(&mut text, entry).ok()?;
            text.push(b'\n');
        }
        let more = match state.store.audit_chain_page(&tenant, last).await {
            Ok(more) if !more.is_empty() => Some((more, state, tenant)),
            Ok(_) => None,
            Err(e) => {
                // The answer is already under way: the export ends early, and says so in the log.
                tracing::warn!(error = %e, "audit export cut short");
                None
            }
        };
        Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from(text)), more))
    });
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/x-ndjson"),
        (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"audit-log.ndjson\""),
    ];
    Ok(axum::response::IntoResponse::into_response((headers, axum::body::Body::from_stream(pages))))
}
