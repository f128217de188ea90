//! Webhook pages: the list here; the add and edit forms (`form.rs`); the overview and its
//! actions: test, enable/disable, rotate, delete (`overview.rs`).

mod form;
mod overview;
mod problems;
mod try_filter;

pub use form::{create, edit, edit_form, new_form};
pub use overview::{delete, delete_confirm, overview, rotate, rotate_confirm, send_test, toggle, verify};
pub use try_filter::try_filter;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use uuid::Uuid;

use super::{ago, api_error_page, error_page, page, url_markup, Session};
use crate::domain::page::Page;
use crate::domain::time::{now_ms, rfc3339_ms, rfc3339_secs};
use crate::domain::webhook::Webhook;
use crate::http::api::error::ApiError;
use crate::service::AppState;
use crate::store::{AttemptRecord, WebhookStats};

const DAY_MS: i64 = 86_400_000;

fn parse_id(raw: &str) -> Result<Uuid, Response> {
    raw.parse().map_err(|_| error_page(StatusCode::NOT_FOUND, "No such webhook."))
}

async fn load(state: &AppState, s: &Session, id: &str) -> Result<Webhook, Response> {
    let id = parse_id(id)?;
    match state.store.get_webhook(&s.who.tenant, id).await {
        Ok(Some(w)) => Ok(w),
        Ok(None) => Err(error_page(StatusCode::NOT_FOUND, "No such webhook.")),
        Err(e) => Err(api_error_page(e)),
    }
}

pub fn status_badge(w: &Webhook) -> Markup {
    html! {
        @match state_of(w) {
            "failing" if w.circuit_open_until.is_some() => {
                span.badge.warn title="Its circuit is open: deliveries wait and are probed" { "Failing" }
            }
            "failing" => span.badge.warn title="Its last attempts failed; they are retried" {
                "Failing (" (w.failure_count) " in a row)"
            },
            "active" => span.badge.ok { "Active" },
            _ => span.badge.bad title="Disabled" {
                "Disabled" @if let Some(r) = &w.disabled_reason { " (" (r.replace('_', " ")) ")" }
            },
        }
    }
}

fn rate(stats: &WebhookStats) -> String {
    if stats.attempts == 0 {
        "–".into()
    } else {
        format!("{:.1}%", stats.successes as f64 * 100.0 / stats.attempts as f64)
    }
}

/// The list's search: words in the name, URL or format, and a state.
#[derive(Default, serde::Deserialize)]
pub struct ListFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
}

/// A webhook's state as the list filters and colours it.
fn state_of(w: &Webhook) -> &'static str {
    if !w.is_active {
        "disabled"
    } else if w.circuit_open_until.is_some() || w.failure_count > 0 {
        "failing"
    } else {
        "active"
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    axum::extract::Query(filter): axum::extract::Query<ListFilter>,
) -> Response {
    let (hooks, total) = match state.store.list_webhooks(&session.who.tenant, Page { page: 1, per_page: 1000 }).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let words = filter.q.trim().to_lowercase();
    let shown = hooks.into_iter().filter(|w| {
        let text = format!("{} {} {}", w.name, shown_url(w, &session), w.format.as_str()).to_lowercase();
        (words.is_empty() || words.split_whitespace().all(|word| text.contains(word)))
            && (filter.state.is_empty() || filter.state == state_of(w))
    });
    let mut rows = Vec::new();
    for w in shown {
        let stats = state.store.webhook_stats(&session.who.tenant, w.id, now_ms() - DAY_MS).await.unwrap_or_default();
        rows.push((w, stats));
    }
    page(
        "Webhooks",
        &session,
        html! {
            div.toolbar {
                h1 { "Webhooks" }
                @if session.is_admin() { a.btn.primary #add-webhook href="/ui/webhooks/new" { "Add webhook" } }
            }
            @if total > 0 {
                form.panel.filters #webhook-filter method="get" action="/ui/webhooks" {
                    div.search {
                        label.visually-hidden for="q" { "Search webhooks" }
                        input #q type="search" name="q" value=(filter.q) placeholder="Search by name, URL or format";
                        label.visually-hidden for="state" { "State" }
                        select #state name="state" {
                            @for (value, label) in [("", "Any state"), ("active", "Active"), ("failing", "Failing"), ("disabled", "Disabled")] {
                                option value=(value) selected[filter.state == value] { (label) }
                            }
                        }
                        button type="submit" { "Filter" }
                    }
                }
            }
            div.panel {
                @if total == 0 {
                    p.muted { "No webhooks yet." @if session.is_admin() { " Add one to start delivering events." } }
                } @else if rows.is_empty() {
                    p.muted #no-match { "No webhook matches. " a href="/ui/webhooks" { "Show all" } }
                } @else {
                    div.table-wrap { table #webhooks {
                        thead { tr {
                            th { "Name" } th { "Endpoint" } th.hide-narrow { "Format" } th.hide-narrow { "Events" }
                            th { "Status" } th { "Success (24 h)" } th.hide-narrow { "Last delivery" }
                        } }
                        tbody {
                            @for (w, s) in &rows {
                                tr data-webhook=(w.id) data-state=(state_of(w)) class={ "state-" (state_of(w)) } {
                                    td { a href={ "/ui/webhooks/" (w.id) } { (w.name) } }
                                    td { (url_markup(&shown_url(w, &session))) }
                                    td.hide-narrow { (w.format.as_str()) }
                                    td.hide-narrow {
                                        @for p in &w.event_types { span.chip { (p.as_string()) } }
                                    }
                                    td { (status_badge(w)) }
                                    td { (rate(s)) span.muted { " · " (super::chart::plural(s.attempts, "call")) } }
                                    td.hide-narrow {
                                        @match s.last_success_at.max(s.last_failure_at) {
                                            Some(t) => span title=(rfc3339_secs(t)) { (ago(t)) },
                                            None => span.muted { "never" },
                                        }
                                    }
                                }
                            }
                        }
                    } }
                    p.muted { (rows.len()) " of " (super::chart::plural(total, "webhook")) }
                }
            }
        },
    )
}

fn admin_only(s: &Session) -> Result<(), Response> {
    if s.is_admin() {
        Ok(())
    } else {
        Err(api_error_page(ApiError::forbidden("admin")))
    }
}

pub fn attempt_status(a: &AttemptRecord) -> Markup {
    html! { @if a.success { span.badge.ok { "Success" } } @else { span.badge.bad { "Failed" } } }
}

/// A webhook's URL as the signed-in person may see it (tokens in it only for admins).
pub fn shown_url(w: &Webhook, session: &Session) -> String {
    if session.who.sees_credentials() {
        w.url.as_str()
    } else {
        w.url.masked()
    }
}

/// The time of an attempt, for tables.
pub fn when(ms: i64) -> Markup {
    html! { span title=(rfc3339_ms(ms)) { (rfc3339_secs(ms).replace('T', " ").replace('Z', " UTC")) } }
}
