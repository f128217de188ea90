//! A webhook's overview (endpoint, events, signatures, stats, chart, recent deliveries) and
//! the actions taken from it: test, enable/disable, rotate the secret, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::super::flash::Flash;
use super::super::{ago, api_error_page, csrf_input, field, page, pretty_json, url_markup, FormPost, Session};
use super::form::shown_secret;
use super::{admin_only, load, parse_id, rate, shown_url, status_badge, DAY_MS};
use crate::domain::page::Page;
use crate::domain::time::{now_ms, rfc3339_secs};
use crate::domain::webhook::Webhook;
use crate::http::api::error::ApiError;
use crate::profile::Profile;
use crate::service::deliveries as deliveries_ops;
use crate::service::webhooks::{self as webhook_ops, WebhookInput};
use crate::service::AppState;
use crate::store::AttemptRecord;

/// A test's outcome, as the overview shows it after the redirect.
fn test_flash(a: &AttemptRecord) -> Flash {
    let status = a.http_status.map(|s| format!("HTTP {s}"));
    if a.success {
        Flash::ok(format!("Test event delivered. {} in {} ms.", status.unwrap_or_else(|| "Sent".into()), a.response_ms))
    } else {
        let mut text = "Test event failed.".to_string();
        if let Some(s) = status {
            text.push_str(&format!(" {s}."));
        }
        if let Some(e) = &a.error {
            text.push_str(&format!(" {e}"));
        }
        Flash::bad(text)
    }
}

/// The service's own headers of this webhook's deliveries, in the order they are sent.
fn headers_sent(profile: &Profile, w: &Webhook) -> Vec<(String, &'static str)> {
    let (h, sig) = (&profile.headers, &profile.signature);
    let mut out = Vec::new();
    let mut add = |name: &Option<axum::http::HeaderName>, what| {
        if let Some(n) = name {
            out.push((n.as_str().to_string(), what));
        }
    };
    add(&h.event, "the event type");
    add(&h.delivery, "unique per call");
    add(&h.timestamp, "dispatch time (RFC 3339)");
    add(&h.webhook_id, "this webhook's id");
    if !w.secret.is_unsigned() {
        add(&Some(sig.header.clone()), "HMAC-SHA256 of the body");
        add(&sig.previous_header, "during a rotation: the previous secret's");
    }
    if h.standard_webhooks {
        out.push(("webhook-id".into(), "Standard Webhooks: the event_ref"));
        out.push(("webhook-timestamp".into(), "Standard Webhooks: Unix seconds"));
        if !w.secret.is_unsigned() {
            out.push(("webhook-signature".into(), "Standard Webhooks: v1 signature"));
        }
    }
    out
}

async fn overview_page(state: &AppState, session: &Session, w: Webhook) -> Response {
    let tenant = &session.who.tenant;
    let since = now_ms() - DAY_MS;
    let stats = state.store.webhook_stats(tenant, w.id, since).await.unwrap_or_default();
    let buckets = state.store.attempt_histogram(tenant, w.id, since, 3_600_000).await.unwrap_or_default();
    let (recent, total) =
        state.store.list_attempts(tenant, w.id, Page { page: 1, per_page: 10 }, None).await.unwrap_or_default();
    let profile = state.shown_profile(tenant).await;
    let example = deliveries_ops::preview(state, &session.who, &w.id.to_string(), Default::default()).await.ok();
    let admin = session.is_admin();
    let secret_age = ago(w.secret.rotated_at);
    let grace = w.secret.previous_expires_at.filter(|t| *t > now_ms() && w.secret.previous.is_some());
    page(
        &w.name,
        session,
        html! {
            div.toolbar {
                h1 { (w.name) " " (status_badge(&w)) }
                @if admin {
                    div {
                        a.btn #edit href={ "/ui/webhooks/" (w.id) "/edit" } { "Edit" }
                        " "
                        form.inline method="post" action={ "/ui/webhooks/" (w.id) "/toggle" } {
                            (csrf_input(session))
                            @if w.is_active { button #disable type="submit" { "Disable" } }
                            @else { button.primary #enable type="submit" { "Enable" } }
                        }
                    }
                }
            }
            div.grid {
                div.panel {
                    h2 { "Endpoint" }
                    dl.kv {
                        dt { "URL" } dd { (url_markup(&shown_url(&w, session))) }
                        dt { "Format" } dd { (w.format.as_str()) }
                        dt { "Retries" } dd { (w.retry_count) " · timeout " (w.timeout_ms) " ms" }
                        @if let Some(m) = w.max_per_second { dt { "Rate limit" } dd { (m) " / s" } }
                        @if let Some(min) = w.min_severity { dt { "Minimum severity" } dd { (min.name()) } }
                        @if let Some(f) = &w.filter { dt { "Filter" } dd { code { (f.source()) } } }
                        @if w.verification != crate::domain::webhook::Verification::NotRequired {
                            dt { "Ownership" }
                            dd #verification {
                                (w.verification.as_str())
                                @if w.verification == crate::domain::webhook::Verification::Pending {
                                    " · deliveries are held until the endpoint answers the challenge"
                                    @if admin {
                                        form.inline method="post" action={ "/ui/webhooks/" (w.id) "/verify" } {
                                            (csrf_input(session))
                                            " " button #verify type="submit" { "Verify now" }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(r) = &w.disabled_reason { dt { "Disabled because" } dd { (r.replace('_', " ")) } }
                        dt { "Failures in a row" } dd { (w.failure_count) }
                        @if let Some(o) = &w.owner_email { dt { "Owner" } dd { (o) } }
                        @if let Some(d) = &w.description { dt { "Description" } dd { (d) } }
                    }
                    h2.spaced { "Subscribed events" }
                    p { @for p in &w.event_types { span.chip { (p.as_string()) } } }
                }
                div.panel {
                    h2 { "Security" }
                    dl.kv {
                        dt { "Contract" } dd #profile { (profile.product) " (profile " code { (profile.name) } ")" br; span.muted { (profile.description) } }
                        @if w.secret.is_unsigned() {
                            dt { "Signatures" } dd #unsigned { "none: this webhook has no signing secret (rotate to set one)" }
                        } @else if let Some(public) = &w.secret.public_key {
                            dt { "Signatures" }
                            dd { "Ed25519: Standard Webhooks " code { "webhook-signature" } " (v1a) over " code { "id.timestamp.body" } }
                            dt { "Public key" }
                            dd #public-key {
                                code { (public) }
                                br; span.muted { "Not a secret. Also at " code { "GET /api/v1/webhooks/" (w.id) "/public-keys" } " (JWKS)." }
                            }
                            dt { "Key" } dd { "made " (secret_age) @if let Some(t) = grace { " · previous key signs until " (rfc3339_secs(t)) } }
                        } @else {
                            dt { "Signatures" }
                            dd {
                                code { (profile.signature.header.as_str()) } " (HMAC-SHA256 of the body, hex)"
                                @if profile.headers.standard_webhooks { " and Standard Webhooks " code { "webhook-signature" } " (v1)" }
                            }
                            dt { "Secret" } dd { "set " (secret_age) @if let Some(t) = grace { " · previous secret valid until " (rfc3339_secs(t)) } }
                        }
                    }
                    @if admin {
                        a.btn #rotate href={ "/ui/webhooks/" (w.id) "/rotate" } { "Rotate secret" }
                    }
                    h2.spaced { "Headers sent" }
                    dl.kv #headers-sent {
                        dt { code { "User-Agent" } } dd { (profile.headers.user_agent.to_str().unwrap_or_default()) }
                        @for (name, what) in headers_sent(&profile, &w) { dt { code { (name) } } dd.muted { (what) } }
                        @for (k, v) in w.headers.masked() { dt { code { (k) } } dd { (v) } }
                    }
                }
            }
            @if let Some((_, chosen, rendered)) = &example {
                div.panel {
                    h2 { "Body example" }
                    p.muted { "A " code { (chosen.name) } " event as this webhook receives it (" (rendered.content_type) ")." }
                    pre #body-example { (pretty_json(&rendered.body)) }
                }
            }
            div.panel {
                h2 { "Last 24 hours" }
                div.stats {
                    div.stat { div.v #success-rate { (rate(&stats)) } div.k { "success rate" } }
                    div.stat { div.v { (stats.attempts) } div.k { (if stats.attempts == 1 { "call" } else { "calls" }) } }
                    div.stat { div.v { (stats.failures) } div.k { "failures" } }
                    div.stat { div.v { (stats.p50_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "–".into())) } div.k { "p50 response" } }
                    div.stat { div.v { (stats.p95_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "–".into())) } div.k { "p95 response" } }
                    div.stat { div.v { (stats.last_success_at.map(ago).unwrap_or_else(|| "never".into())) } div.k { "last success" } }
                }
                figure.chart {
                    (super::super::raw(super::super::chart::svg(&buckets, since)))
                    figcaption.muted { span { "24 h ago" } span #chart-caption { (super::super::chart::caption(&buckets)) } span { "now" } }
                }
            }
            div.panel {
                div.toolbar {
                    h2 { "Recent deliveries" }
                    a #all-deliveries href={ "/ui/webhooks/" (w.id) "/deliveries" } { "All deliveries (" (total) ")" }
                }
                (super::super::deliveries::attempts_table(&w, &recent))
            }
            @if admin {
                div.panel {
                    h2 { "Send test event" }
                    p.muted { "Sends a " code { "webhook.test" } " event through the normal delivery path, signed like any other." }
                    form #test-form method="post" action={ "/ui/webhooks/" (w.id) "/test" } data-inplace="test-result" {
                        (csrf_input(session))
                        button.primary #send-test type="submit" { "Send test event" }
                    }
                    div #test-result aria-live="polite" {
                    }
                }
                div.panel.danger-zone {
                    h2 { "Danger zone" }
                    p { "Deleting a webhook removes it and its pending deliveries. Its past attempts stay in the tamper-evident delivery log until retention prunes them. It cannot be undone." }
                    a.btn.danger #delete href={ "/ui/webhooks/" (w.id) "/delete" } { "Delete webhook" }
                }
            }
        },
    )
}

pub async fn overview(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match load(&state, &session, &id).await {
        Ok(w) => overview_page(&state, &session, w).await,
        Err(r) => r,
    }
}

pub async fn toggle(State(state): State<AppState>, Path(id): Path<String>, post: FormPost) -> Response {
    let w = match load(&state, &post.session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let input = WebhookInput { is_active: Some(!w.is_active), ..Default::default() };
    match webhook_ops::update(&state, &post.session.who, w.id, input).await {
        Ok(_) => {
            let done = if w.is_active { "disabled: events wait for it (held)" } else { "enabled" };
            post.done(&state, &format!("/ui/webhooks/{}", w.id), Flash::ok(format!("Webhook {} {done}.", w.name)))
        }
        Err(e) => api_error_page(e),
    }
}

pub async fn send_test(state: State<AppState>, id: Path<String>, form: FormPost) -> Response {
    act_and_show(state, id, form, Action::Test).await
}

pub async fn rotate(state: State<AppState>, id: Path<String>, form: FormPost) -> Response {
    act_and_show(state, id, form, Action::Rotate).await
}

/// What a button of the overview does before the overview shows it.
enum Action {
    /// Send a test event and show its attempt.
    Test,
    /// Rotate the secret and show the new one, once.
    Rotate,
}

/// Runs an action on webhook `id`, then leads back to its overview, which shows the outcome.
async fn act_and_show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: FormPost,
    action: Action,
) -> Response {
    let uuid = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let who = &post.session.who;
    let flash = match action {
        Action::Test => deliveries_ops::send_test(&state, who, uuid).await.map(|a| test_flash(&a)),
        Action::Rotate => match webhook_ops::rotate(&state, who, uuid, None).await {
            Ok((secret, until)) => {
                let profile = state.shown_profile(&who.tenant).await;
                let note = format!("The previous secret keeps signing until {} (UTC).", rfc3339_secs(until));
                Ok(Flash::ok("The signing secret was rotated.").with_secret(shown_secret(
                    &secret,
                    "New signing secret",
                    &profile,
                    Some(note),
                )))
            }
            Err(e) => Err(e),
        },
    };
    match flash {
        Ok(flash) => post.done(&state, &format!("/ui/webhooks/{uuid}"), flash),
        Err(e) => api_error_page(e),
    }
}

/// Asks before rotating: a rotation changes what receivers must verify with.
pub async fn rotate_confirm(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let w = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let grace = state.settings.secret_grace.as_secs() / 3600;
    page(
        "Rotate secret",
        &session,
        html! {
            h1 { "Rotate the secret of " (w.name) "?" }
            div.panel {
                p { "A new signing secret is made and shown once. For the next " (grace) " h deliveries carry "
                    "signatures with both the new and the current secret, so receivers can switch without "
                    "missing a delivery; then only the new one signs." }
                form method="post" action={ "/ui/webhooks/" (w.id) "/rotate" } {
                    (csrf_input(&session))
                    p {
                        button #confirm-rotate type="submit" { "Rotate secret" }
                        " "
                        a.btn href={ "/ui/webhooks/" (w.id) } { "Cancel" }
                    }
                }
            }
        },
    )
}

pub async fn delete_confirm(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let w = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    delete_page(&session, &w, None)
}

fn delete_page(session: &Session, w: &Webhook, error: Option<&str>) -> Response {
    page(
        "Delete webhook",
        session,
        html! {
            h1 { "Delete " (w.name) "?" }
            div.panel.danger-zone {
                p { "This deletes the webhook " strong { (w.name) } " (" (url_markup(&w.url.as_str())) ") and its pending deliveries; its past attempts stay in the delivery log until retention prunes them. "
                    "Events are no longer delivered to it. This cannot be undone." }
                form method="post" action={ "/ui/webhooks/" (w.id) "/delete" } {
                    (csrf_input(session))
                    label for="confirm" { "Type the webhook's name to confirm: " strong { (w.name) } }
                    input #confirm type="text" name="confirm" autocomplete="off" required;
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    p {
                        button.danger #confirm-delete type="submit" { "Delete " (w.name) }
                        " "
                        a.btn href={ "/ui/webhooks/" (w.id) } { "Cancel" }
                    }
                }
            }
        },
    )
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>, post: FormPost) -> Response {
    let (session, form) = (&post.session, &post.form);
    let w = match load(&state, session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if !session.is_admin() {
        return api_error_page(ApiError::forbidden("admin"));
    }
    if field(form, "confirm").map(str::trim) != Some(w.name.as_str()) {
        let mut r = delete_page(session, &w, Some("The name does not match; nothing was deleted."));
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return r;
    }
    match webhook_ops::delete(&state, &session.who, w.id).await {
        Ok(()) => post.done(&state, "/ui/webhooks", Flash::ok(format!("Webhook {} deleted.", w.name))),
        Err(e) => api_error_page(e),
    }
}

/// "Verify now": challenges the endpoint again; back to the overview with the outcome.
pub async fn verify(State(state): State<AppState>, Path(id): Path<String>, post: FormPost) -> Response {
    let uuid = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let flash = match webhook_ops::verify(&state, &post.session.who, uuid).await {
        Ok(_) => Flash::ok("The endpoint proved its ownership: deliveries flow."),
        Err(e) => Flash::bad(ApiError::from(e).message),
    };
    post.done(&state, &format!("/ui/webhooks/{uuid}"), flash)
}
