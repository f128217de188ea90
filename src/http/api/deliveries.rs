//! Delivery history, test events, redelivery and statistics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{int_param, page_params, ApiPath, ApiQuery};
use crate::domain::time::rfc3339_ms;
use crate::service::deliveries::{self as ops, PreviewInput};
use crate::service::webhooks::{self as webhooks, parse_id};
use crate::service::{AppState, Principal, ServiceError};
use crate::store::AttemptRecord;

/// One attempt as the log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// The `X-Tocsin-Delivery` value of this attempt.
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    pub attempt_number: u32,
    pub success: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response_ms: i64,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    /// Headers sent (signatures shown; custom header values masked; never a secret).
    #[schema(value_type = Object)]
    pub request_headers: serde_json::Value,
    /// The first 4 KiB of the response body.
    pub response_body: String,
    /// The response's headers (the first 32; cookies masked); empty without an HTTP response.
    #[schema(value_type = Object)]
    pub response_headers: serde_json::Value,
}

impl AttemptView {
    pub fn of(a: AttemptRecord) -> Self {
        Self {
            id: a.id,
            webhook_id: a.webhook_id,
            event_ref: a.event_ref,
            event_type: a.event_type,
            attempt_number: a.attempt_no,
            success: a.success,
            http_status: a.http_status,
            error: a.error,
            response_ms: a.response_ms,
            created_at: rfc3339_ms(a.created_at),
            next_attempt_at: a.next_attempt_at.map(rfc3339_ms),
            request_headers: serde_json::from_str(&a.request_headers).unwrap_or_default(),
            response_body: String::from_utf8_lossy(&a.response_body).into_owned(),
            response_headers: serde_json::from_str(&a.response_headers).unwrap_or_else(|_| serde_json::json!({})),
        }
    }
}

/// One attempt with the body it sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptDetail {
    #[serde(flatten)]
    pub attempt: AttemptView,
    /// The request body, rendered again from the event exactly as at dispatch.
    pub request_body: String,
}

#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{attempt_id}", tag = "deliveries",
    params(("id" = Uuid, Path), ("attempt_id" = Uuid, Path)),
    responses((status = 200, body = AttemptDetail), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_delivery(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((id, attempt_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<AttemptDetail>> {
    who.reader()?;
    let w = webhooks::get(&state, &who, &id).await?;
    let attempt_id: Uuid = attempt_id.parse().map_err(|_| ApiError::not_found("delivery attempt"))?;
    let a = state
        .store
        .get_attempt(&who.tenant, w.id, attempt_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery attempt"))?;
    let body = ops::request_body(&state, &w, &a).await?;
    Ok(Json(AttemptDetail { attempt: AttemptView::of(a), request_body: body }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    pub data: Vec<AttemptView>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub status: Option<String>,
}

fn bad_param(field: &str, message: &str) -> ApiError {
    ServiceError::bad_parameter(field, message).into()
}

#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "deliveries",
    params(("id" = Uuid, Path), ("page" = Option<u32>, Query), ("per_page" = Option<u32>, Query),
           ("status" = Option<String>, Query, description = "success or failed")),
    responses((status = 200, body = AttemptList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AttemptQuery>,
) -> ApiResult<Json<AttemptList>> {
    who.reader()?;
    let page = page_params(&q.page, &q.per_page, 25)?;
    let success = match q.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some("success") | Some("succeeded") => Some(true),
        Some("failed") | Some("failure") => Some(false),
        Some(_) => return Err(bad_param("status", "status must be success or failed")),
    };
    let w = webhooks::get(&state, &who, &id).await?;
    let (items, total) = state.store.list_attempts(&who.tenant, w.id, page, success).await?;
    Ok(Json(AttemptList {
        data: items.into_iter().map(AttemptView::of).collect(),
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecentList {
    pub data: Vec<AttemptView>,
}

/// The tenant's most recent attempts (50 by default, at most 100).
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(("limit" = Option<u32>, Query)),
    responses((status = 200, body = RecentList)), security(("bearer" = [])))]
pub async fn recent_deliveries(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<RecentQuery>,
) -> ApiResult<Json<RecentList>> {
    who.reader()?;
    let limit = int_param(&q.limit, "limit")?.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(bad_param("limit", "limit must be between 1 and 100"));
    }
    let items = state.store.recent_attempts(&who.tenant, limit as u32).await?;
    Ok(Json(RecentList { data: items.into_iter().map(AttemptView::of).collect() }))
}

/// Sends a `webhook.test` event now through the normal delivery path and answers with the attempt.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "deliveries", params(("id" = Uuid, Path)),
    responses((status = 200, body = AttemptView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn test_webhook(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AttemptView>> {
    let attempt = ops::send_test(&state, &who, parse_id(&id)?).await?;
    Ok(Json(AttemptView::of(attempt)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    pub event_ref: String,
    pub webhook_id: Uuid,
    /// queued (or held while the webhook is inactive)
    pub status: &'static str,
}

#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{attempt_id}/redeliver", tag = "deliveries",
    params(("id" = Uuid, Path), ("attempt_id" = Uuid, Path)),
    responses((status = 202, body = Redelivery), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((id, attempt_id)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<Redelivery>)> {
    let attempt_id: Uuid = attempt_id.parse().map_err(|_| ApiError::not_found("delivery attempt"))?;
    let (w, event_ref) = ops::redeliver_attempt(&state, &who, parse_id(&id)?, attempt_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Redelivery { event_ref, webhook_id: w.id, status: if w.is_active { "queued" } else { "held" } }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedFailed {
    /// Failed deliveries queued again, each for one more attempt (at most 10,000 a call).
    pub queued: u64,
}

/// Queues the webhook's failed deliveries (retries exhausted) again, oldest first.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/retry-failed", tag = "deliveries",
    params(("id" = Uuid, Path)),
    responses((status = 202, body = RetriedFailed), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn retry_failed(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<RetriedFailed>)> {
    let queued = ops::retry_failed(&state, &who, parse_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(RetriedFailed { queued })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub window: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub window: String,
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    /// successes / attempts, 0–1 (null without attempts).
    pub success_rate: Option<f64>,
    pub p50_response_ms: Option<i64>,
    pub p95_response_ms: Option<i64>,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
}

#[utoipa::path(get, path = "/webhooks/{id}/stats", tag = "deliveries",
    params(("id" = Uuid, Path), ("window" = Option<String>, Query, description = "e.g. 1h, 24h, 7d")),
    responses((status = 200, body = StatsView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn webhook_stats(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<StatsView>> {
    let window = q.window.unwrap_or_else(|| "24h".into());
    let s = ops::stats(&state, &who, &id, &window).await?;
    Ok(Json(StatsView {
        window,
        attempts: s.attempts,
        successes: s.successes,
        failures: s.failures,
        success_rate: (s.attempts > 0).then(|| s.successes as f64 / s.attempts as f64),
        p50_response_ms: s.p50_ms,
        p95_response_ms: s.p95_ms,
        last_success_at: s.last_success_at.map(rfc3339_ms),
        last_failure_at: s.last_failure_at.map(rfc3339_ms),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    pub format: crate::domain::webhook::Format,
    pub event: String,
    pub content_type: String,
    /// What would be sent (HTTP body, or the syslog message).
    pub body: String,
}

/// Renders a sample in the webhook's format without sending it.
#[utoipa::path(post, path = "/webhooks/{id}/preview", tag = "deliveries", params(("id" = Uuid, Path)),
    request_body = PreviewInput,
    responses((status = 200, body = PreviewView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<PreviewView>> {
    who.reader()?;
    let input: PreviewInput = if body.iter().all(u8::is_ascii_whitespace) {
        PreviewInput::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let (w, chosen, rendered) = ops::preview(&state, &who, &id, input).await?;
    Ok(Json(PreviewView {
        format: w.format,
        event: chosen.name.clone(),
        content_type: rendered.content_type.to_string(),
        body: String::from_utf8_lossy(&rendered.body).into_owned(),
    }))
}
