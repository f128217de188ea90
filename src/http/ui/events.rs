//! The Events page: an event found by its event_ref, its data, and every webhook's delivery of
//! it with where that delivery stands (delivered, next retry at, gave up, held), with a manual
//! redelivery for admins.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::flash::Flash;
use super::{api_error_page, csrf_input, field, page, pre, pretty_json, FormPost, Session};
use crate::domain::event_ref::is_event_ref;
use crate::domain::page::Page;
use crate::domain::time::{now_ms, rfc3339_secs};
use crate::service::deliveries as deliveries_ops;
use crate::service::AppState;
use crate::store::DeliveryState;

#[derive(Deserialize)]
pub struct Search {
    #[serde(default, rename = "ref")]
    event_ref: String,
}

fn utc(ms: i64) -> String {
    rfc3339_secs(ms).replace('T', " ").replace('Z', " UTC")
}

/// Where a delivery stands, in words (the marker Svix and GitHub show).
fn marker(d: &DeliveryState) -> Markup {
    match d.state.as_str() {
        "succeeded" => html! { span.badge.ok { "Delivered" } " " span.muted { (utc(d.updated_at)) } },
        "failed" => {
            html! { span.badge.bad { "Gave up" } " " span.muted { "after " (super::chart::plural(d.attempts as u64, "attempt")) } }
        }
        "held" => {
            html! { span.badge.warn { "Held" } " " span.muted { "the webhook is disabled; sent when it is enabled" } }
        }
        "pending" if d.attempts > 0 => html! {
            span.badge.warn { "Retrying" } " " span.muted { "next attempt " (utc(d.next_attempt_at)) }
        },
        "pending" if d.next_attempt_at > now_ms() => {
            html! { span.badge.neutral { "Scheduled" } " " span.muted { (utc(d.next_attempt_at)) } }
        }
        "pending" => html! { span.badge.neutral { "Queued" } },
        _ => html! { span.badge.neutral { "Sending" } },
    }
}

pub async fn search(State(state): State<AppState>, session: Session, Query(q): Query<Search>) -> Response {
    let tenant = &session.who.tenant;
    let wanted = q.event_ref.trim().to_string();
    let found = if wanted.is_empty() {
        None
    } else {
        match state.store.get_event(tenant, &wanted).await {
            Ok(e) => Some(e),
            Err(e) => return api_error_page(e),
        }
    };
    let (hooks, _) = state.store.list_webhooks(tenant, Page { page: 1, per_page: 1000 }).await.unwrap_or_default();
    let names: HashMap<_, _> = hooks.iter().map(|w| (w.id, w.name.clone())).collect();
    let admin = session.is_admin();
    page(
        "Events",
        &session,
        html! {
            h1 { "Events" }
            div.panel {
                form #event-search method="get" action="/ui/events" {
                    label for="ref" { "Find an event by its event_ref" }
                    div.search {
                        input #ref type="search" name="ref" value=(wanted) placeholder="e.g. quarantine-2026-12-07-0001";
                        button.primary type="submit" { "Find" }
                    }
                }
            }
            @match &found {
                None if !wanted.is_empty() => div.panel #no-event { p { "No event with event_ref " code { (wanted) } " in this tenant." } },
                None => {},
                Some(Some(e)) => {
                    div.panel #event {
                        h2 { code { (e.event_type) } " · " (e.event_ref) }
                        dl.kv {
                            dt { "Published" } dd { (utc(e.created_at)) }
                            @if let Some(k) = &e.ordering_key { dt { "Ordering key" } dd { code { (k) } } }
                            dt { "Deliveries" } dd { (e.deliveries.len()) }
                        }
                        h2.spaced { "Deliveries" }
                        @if e.deliveries.is_empty() && e.filtered.is_empty() {
                            p.muted { "No webhook was subscribed to this event when it was published." }
                        } @else {
                            div.table-wrap { table #event-deliveries {
                                thead { tr { th { "Webhook" } th { "State" } th { "Attempts" } th.hide-narrow { "Last answer" } th {} } }
                                tbody {
                                    @for id in &e.filtered {
                                        tr.filtered {
                                            td { a href={ "/ui/webhooks/" (id) } { (names.get(id).cloned().unwrap_or_else(|| "(deleted webhook)".into())) } }
                                            td { span.badge.neutral { "Filtered out" } " " span.muted { "its filter left this event out" } }
                                            td { "0" } td.hide-narrow {} td {}
                                        }
                                    }
                                    @for (i, d) in e.deliveries.iter().enumerate() {
                                        tr {
                                            td { a href={ "/ui/webhooks/" (d.webhook_id) "/deliveries" } {
                                                (names.get(&d.webhook_id).cloned().unwrap_or_else(|| "(deleted webhook)".into())) }
                                                // Deliveries are in the order made: a later one to the same
                                                // webhook was asked for by hand.
                                                @if e.deliveries[..i].iter().any(|p| p.webhook_id == d.webhook_id) {
                                                    " " span.badge.neutral.redelivery { "manual redelivery" }
                                                }
                                            }
                                            td { (marker(d)) }
                                            td { (d.attempts) }
                                            td.hide-narrow {
                                                @match (d.last_status, &d.last_error) {
                                                    (_, Some(err)) => span.muted { (err) },
                                                    (Some(s), None) => { "HTTP " (s) }
                                                    (None, None) => span.muted { "–" },
                                                }
                                            }
                                            td {
                                                @if admin && names.contains_key(&d.webhook_id) {
                                                    form.inline method="post" action="/ui/events/redeliver" {
                                                        (csrf_input(&session))
                                                        input type="hidden" name="ref" value=(e.event_ref);
                                                        input type="hidden" name="webhook" value=(d.webhook_id);
                                                        button type="submit" { "Redeliver" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            } }
                        }
                        h2.spaced { "Data" }
                        (pre(&pretty_json(&e.data)))
                    }
                },
                Some(None) => div.panel #no-event { p { "No event with event_ref " code { (wanted) } " in this tenant." } },
            }
        },
    )
}

pub async fn redeliver(State(state): State<AppState>, post: FormPost) -> Response {
    let event_ref = field(&post.form, "ref").unwrap_or_default().to_string();
    if !is_event_ref(&event_ref) {
        // Not echoed into the redirect: it may be any length.
        return post.done(
            &state,
            "/ui/events",
            Flash::bad("That is not an event_ref (1 to 128 printable characters)."),
        );
    }
    let back = format!("/ui/events?{}", serde_urlencoded::to_string([("ref", &event_ref)]).unwrap_or_default());
    let Ok(webhook) = field(&post.form, "webhook").unwrap_or_default().parse() else {
        return post.done(&state, &back, Flash::bad("No such webhook."));
    };
    match deliveries_ops::redeliver_event(&state, &post.session.who, webhook, &event_ref, None).await {
        Ok(w) => {
            post.done(&state, &back, Flash::ok(format!("Redelivery to {} queued: it is sent again shortly.", w.name)))
        }
        Err(e) => api_error_page(e),
    }
}
