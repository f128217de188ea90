//! Delivery pages: the log of a webhook (filtered, paginated), one attempt in detail, redeliver.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::flash::Flash;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::webhooks::{attempt_status, when};
use super::{api_error_page, csrf_input, error_page, page, pre, pretty_json, FormPost, Session};
use crate::domain::page::Page;
use crate::domain::webhook::Webhook;
use crate::service::deliveries as deliveries_ops;
use crate::service::AppState;
use crate::store::AttemptRecord;

pub const PER_PAGE: u32 = 50;

/// The attempts table of the overview and the log page.
/// What follows a failed attempt: the next try's time, or that the delivery gave up (a test
/// event is never retried).
fn marker(a: &AttemptRecord) -> Markup {
    html! {
        @if !a.success && a.event_type != "webhook.test" {
            @match a.next_attempt_at {
                Some(at) => { " " span.muted.marker { "retry at " (when(at)) } }
                None => { " " span.muted.marker { "gave up" } }
            }
        }
    }
}

pub fn attempts_table(w: &Webhook, attempts: &[AttemptRecord]) -> Markup {
    html! {
        @if attempts.is_empty() {
            p.muted { "No deliveries yet." }
        } @else {
            div.table-wrap { table.deliveries {
                thead { tr {
                    th { "Time" } th { "Event" } th { "Status" } th { "HTTP" } th.hide-narrow { "Time taken" }
                    th.hide-narrow { "Attempt" } th.hide-narrow { "Error" }
                } }
                tbody {
                    @for (i, a) in attempts.iter().enumerate() {
                        tr data-attempt=(a.id) {
                            td { a href={ "/ui/webhooks/" (w.id) "/deliveries/" (a.id) } { (when(a.created_at)) } }
                            td {
                                code { (a.event_type) }
                                // Newest first: a first attempt of an event already attempted before
                                // (further down this page) is a redelivery.
                                @if a.attempt_no == 1 && attempts[i + 1..].iter().any(|o| o.event_ref == a.event_ref && o.delivery_seq != a.delivery_seq) {
                                    " " span.badge.neutral.redelivery { "redelivery" }
                                }
                            }
                            td { (attempt_status(a)) (marker(a)) }
                            td.http { (a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())) }
                            td.hide-narrow { (a.response_ms) " ms" }
                            td.hide-narrow { "#" (a.attempt_no) }
                            td.hide-narrow.muted { (a.error.clone().unwrap_or_default()) }
                        }
                    }
                }
            } }
        }
    }
}

#[derive(Deserialize)]
pub struct LogQuery {
    status: Option<String>,
    page: Option<u32>,
}

async fn webhook(state: &AppState, s: &Session, id: &str) -> Result<Webhook, Response> {
    let Ok(id) = id.parse::<Uuid>() else { return Err(error_page(StatusCode::NOT_FOUND, "No such webhook.")) };
    match state.store.get_webhook(&s.who.tenant, id).await {
        Ok(Some(w)) => Ok(w),
        Ok(None) => Err(error_page(StatusCode::NOT_FOUND, "No such webhook.")),
        Err(e) => Err(api_error_page(e)),
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let w = match webhook(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let status = q.status.as_deref().unwrap_or("all");
    let filter = match status {
        "success" => Some(true),
        "failed" => Some(false),
        _ => None,
    };
    let n = q.page.unwrap_or(1).clamp(1, 100_000);
    let (attempts, total) = match state
        .store
        .list_attempts(&session.who.tenant, w.id, Page { page: n, per_page: PER_PAGE }, filter)
        .await
    {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let pages = total.div_ceil(PER_PAGE as u64).max(1) as u32;
    let link = |s: &str, p: u32| format!("/ui/webhooks/{}/deliveries?status={s}&page={p}", w.id);
    page(
        "Deliveries",
        &session,
        html! {
            p { a href={ "/ui/webhooks/" (w.id) } { "← " (w.name) } }
            div.toolbar {
                h1 { "Deliveries" }
                @if session.is_admin() {
                    form.inline method="post" action={ "/ui/webhooks/" (w.id) "/deliveries/retry-failed" } {
                        (csrf_input(&session))
                        button #retry-failed type="submit" title="Queue every delivery that gave up for one more attempt" { "Retry all failed" }
                    }
                }
            }
            div.panel {
                div.filters aria-label="Filter by status" {
                    @for (key, label) in [("all", "All"), ("success", "Succeeded"), ("failed", "Failed")] {
                        a class=(if status == key { "on" } else { "" }) href=(link(key, 1)) { (label) }
                    }
                }
                (attempts_table(&w, &attempts))
                div.pager {
                    @if n > 1 { a #prev href=(link(status, n - 1)) { "← Newer" } }
                    span.muted { "Page " (n) " of " (pages) " · " (total) " attempts" }
                    @if n < pages { a #next href=(link(status, n + 1)) { "Older →" } }
                }
            }
        },
    )
}

pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path((id, attempt)): Path<(String, String)>,
) -> Response {
    let w = match webhook(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Ok(attempt_id) = attempt.parse::<Uuid>() else { return error_page(StatusCode::NOT_FOUND, "No such delivery.") };
    let a = match state.store.get_attempt(&session.who.tenant, w.id, attempt_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No such delivery."),
        Err(e) => return api_error_page(e),
    };
    let headers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&a.request_headers).unwrap_or_default();
    let response_headers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&a.response_headers).unwrap_or_default();
    let body = deliveries_ops::request_body(&state, &w, &a).await.unwrap_or_default();
    let pretty = pretty_json(body.as_bytes());
    page(
        "Delivery",
        &session,
        html! {
            p { a href={ "/ui/webhooks/" (w.id) "/deliveries" } { "← Deliveries of " (w.name) } }
            div.toolbar {
                h1 { "Delivery " (attempt_status(&a)) }
                @if session.is_admin() {
                    form.inline method="post" action={ "/ui/webhooks/" (w.id) "/deliveries/" (a.id) "/redeliver" } {
                        (csrf_input(&session))
                        button.primary #redeliver type="submit" { "Redeliver" }
                    }
                }
            }
            div.panel {
                dl.kv {
                    dt { "Delivery id" } dd { code { (a.id) } }
                    dt { "Event" } dd { code { (a.event_type) } " · ref " code { (a.event_ref) } }
                    dt { "Time" } dd { (when(a.created_at)) }
                    dt { "Attempt" } dd { "#" (a.attempt_no) }
                    dt { "HTTP status" } dd { (a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())) }
                    dt { "Response time" } dd { (a.response_ms) " ms" }
                    @if let Some(e) = &a.error { dt { "Error" } dd { (e) } }
                    @if let Some(n) = a.next_attempt_at { dt { "Next attempt" } dd { (when(n)) } }
                }
            }
            div.grid {
                div.panel {
                    h2 { "Request headers" }
                    dl.kv { @for (k, v) in &headers { dt { code { (k) } } dd { code { (v.as_str().unwrap_or_default()) } } } }
                }
                div.panel #response {
                    h2 { "Response headers" }
                    @if response_headers.is_empty() {
                        p.muted { "None recorded (no HTTP response, or an attempt from before they were kept)." }
                    } @else {
                        dl.kv { @for (k, v) in &response_headers { dt { code { (k) } } dd { code { (v.as_str().unwrap_or_default()) } } } }
                    }
                    h2 { "Response body (first 4 KiB, as received)" }
                    (pre(&String::from_utf8_lossy(&a.response_body)))
                }
            }
            div.panel {
                h2 { "Request body" }
                (pre(&pretty))
                details #exact-body {
                    summary { "Exact bytes sent (" (body.len()) " bytes, what the signature covers)" }
                    (pre(&body))
                }
            }
        },
    )
}

pub async fn retry_failed(State(state): State<AppState>, Path(id): Path<String>, post: FormPost) -> Response {
    let Ok(id) = id.parse::<Uuid>() else { return error_page(StatusCode::NOT_FOUND, "No such webhook.") };
    let back = format!("/ui/webhooks/{id}/deliveries");
    match deliveries_ops::retry_failed(&state, &post.session.who, id).await {
        Ok(0) => post.done(&state, &back, Flash::ok("No delivery had given up: nothing to retry.")),
        Ok(n) => post.done(
            &state,
            &back,
            Flash::ok(format!(
                "{} queued for one more attempt.",
                super::chart::plural_of(n, "failed delivery", "failed deliveries")
            )),
        ),
        Err(e) => api_error_page(e),
    }
}

pub async fn redeliver(
    State(state): State<AppState>,
    Path((id, attempt)): Path<(String, String)>,
    post: FormPost,
) -> Response {
    let (Ok(id), Ok(attempt)) = (id.parse::<Uuid>(), attempt.parse::<Uuid>()) else {
        return error_page(StatusCode::NOT_FOUND, "No such delivery.");
    };
    match deliveries_ops::redeliver_attempt(&state, &post.session.who, id, attempt).await {
        Ok((w, _)) => post.done(
            &state,
            &format!("/ui/webhooks/{}/deliveries", w.id),
            Flash::ok("Redelivery queued: the event is sent again shortly; it shows below as a new attempt."),
        ),
        Err(e) => api_error_page(e),
    }
}
