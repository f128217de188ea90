//! Webhook pages: list, add and edit forms, overview, test, enable/disable, rotate, delete.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use uuid::Uuid;

use super::{ago, api_error_page, csrf_input, error_page, field, page, url_markup, FormPost, Session};
use crate::destinations;
use crate::domain::event_type::{EventType, EventTypePattern};
use crate::domain::page::Page;
use crate::domain::secret::Secret;
use crate::domain::time::{now_ms, rfc3339_ms, rfc3339_secs};
use crate::domain::webhook::Webhook;
use crate::http::api::error::ApiError;
use crate::service::deliveries as deliveries_ops;
use crate::service::webhooks::{self as webhook_ops, WebhookInput};
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
        @if w.is_active { span.badge.ok { "Active" } }
        @else {
            span.badge.bad title="Disabled" {
                "Disabled" @if let Some(r) = &w.disabled_reason { " (" (r.replace('_', " ")) ")" }
            }
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

pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    let (hooks, total) = match state.store.list_webhooks(&session.who.tenant, Page { page: 1, per_page: 100 }).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let mut rows = Vec::new();
    for w in hooks {
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
            div.panel {
                @if rows.is_empty() {
                    p.muted { "No webhooks yet." @if session.is_admin() { " Add one to start delivering events." } }
                } @else {
                    div.table-wrap { table #webhooks {
                        thead { tr {
                            th { "Name" } th { "Endpoint" } th.hide-narrow { "Format" } th.hide-narrow { "Events" }
                            th { "Status" } th { "Success (24 h)" } th.hide-narrow { "Last delivery" }
                        } }
                        tbody {
                            @for (w, s) in &rows {
                                tr data-webhook=(w.id) {
                                    td { a href={ "/ui/webhooks/" (w.id) } { (w.name) } }
                                    td { (url_markup(&w.url.as_str())) }
                                    td.hide-narrow { (w.format.as_str()) }
                                    td.hide-narrow {
                                        @for p in &w.event_types { span.chip { (p.as_string()) } }
                                    }
                                    td { (status_badge(w)) }
                                    td { (rate(s)) span.muted { " · " (s.attempts) " calls" } }
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
                    p.muted { (total) " webhooks" }
                }
            }
        },
    )
}

/// What the add/edit form shows (the user's input, kept across a validation error).
#[derive(Default)]
struct FormValues {
    name: String,
    url: String,
    description: String,
    format: String,
    events: Vec<String>,
    secret: String,
    retry_count: String,
    timeout_ms: String,
    max_per_second: String,
    owner_email: String,
    headers: String,
}

impl FormValues {
    fn of(w: &Webhook) -> Self {
        Self {
            name: w.name.clone(),
            url: w.url.as_str(),
            description: w.description.clone().unwrap_or_default(),
            format: w.format.as_str().into(),
            events: w.event_types.iter().map(EventTypePattern::as_string).collect(),
            secret: String::new(),
            retry_count: w.retry_count.to_string(),
            timeout_ms: w.timeout_ms.to_string(),
            max_per_second: w.max_per_second.map(|m| m.to_string()).unwrap_or_default(),
            owner_email: w.owner_email.clone().unwrap_or_default(),
            // Header values are never shown again; keep the names so people see what is set.
            headers: String::new(),
        }
    }

    fn from_form(form: &[(String, String)]) -> Self {
        let f = |k: &str| field(form, k).unwrap_or_default().to_string();
        Self {
            name: f("name"),
            url: f("url"),
            description: f("description"),
            format: f("format"),
            events: form.iter().filter(|(k, _)| k == "event_types").map(|(_, v)| v.clone()).collect(),
            secret: f("secret"),
            retry_count: f("retry_count"),
            timeout_ms: f("timeout_ms"),
            max_per_second: f("max_per_second"),
            owner_email: f("owner_email"),
            headers: f("headers"),
        }
    }

    /// The API input; `editing` leaves out what the user left empty.
    fn to_input(&self, editing: bool) -> Result<WebhookInput, ApiError> {
        let number = |raw: &str, name: &str| -> Result<Option<i64>, ApiError> {
            let raw = raw.trim();
            if raw.is_empty() {
                return Ok(None);
            }
            raw.parse::<i64>().map(Some).map_err(|_| ApiError::invalid(name, "enter a whole number"))
        };
        let mut headers = BTreeMap::new();
        for (i, line) in self.headers.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let (k, v) = line.split_once(':').ok_or_else(|| {
                ApiError::invalid("headers", format!("line {}: write each header as Name: value", i + 1))
            })?;
            headers.insert(k.trim().to_string(), v.trim().to_string());
        }
        let text = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        Ok(WebhookInput {
            name: if editing { text(&self.name) } else { Some(self.name.trim().to_string()) },
            url: if editing { text(&self.url) } else { Some(self.url.trim().to_string()) },
            secret: text(&self.secret),
            // Nothing checked: the configured default subscription (normally all events).
            event_types: (!self.events.is_empty()).then(|| self.events.clone()),
            format: text(&self.format),
            retry_count: number(&self.retry_count, "retry_count")?,
            timeout_ms: number(&self.timeout_ms, "timeout_ms")?,
            retry_delays_ms: None,
            headers: if editing && headers.is_empty() { None } else { Some(headers) },
            is_active: None,
            description: Some(self.description.trim().to_string()),
            max_per_second: number(&self.max_per_second, "max_per_second")?,
            owner_email: Some(self.owner_email.trim().to_string()),
        })
    }
}

/// Which form field an API error belongs to.
fn field_of(e: &ApiError) -> String {
    let f = e.field.clone().unwrap_or_default();
    if f.starts_with("event_types") {
        "event_types".into()
    } else if f.starts_with("headers") {
        "headers".into()
    } else {
        f
    }
}

/// The family of an event type: the part before the first dot.
fn family(name: &str) -> &str {
    name.split_once('.').map_or("other", |(f, _)| f)
}

fn webhook_form(
    session: &Session,
    types: &[EventType],
    v: &FormValues,
    error: Option<&ApiError>,
    action: &str,
    editing: bool,
) -> Markup {
    let err_field = error.map(field_of).unwrap_or_default();
    let err = |name: &str| -> Markup {
        html! {
            @if err_field == name {
                @if let Some(e) = error { p.error id={ "err-" (name) } role="alert" { (e.message) } }
            }
        }
    };
    let cls = |name: &str| if err_field == name { "field-error" } else { "" };
    let selected: HashSet<&str> = v.events.iter().map(String::as_str).collect();
    let mut families: BTreeMap<&str, Vec<&EventType>> = BTreeMap::new();
    for t in types.iter().filter(|t| !t.name.starts_with("webhook.") || t.name == "webhook.disabled") {
        families.entry(family(&t.name)).or_default().push(t);
    }
    html! {
        @if let Some(e) = error {
            @if err_field.is_empty() { div.flash-bad role="alert" { (e.message) } }
        }
        form #webhook-form method="post" action=(action) novalidate {
            (csrf_input(session))
            fieldset {
                legend { "Endpoint" }
                div class=(cls("name")) {
                    label for="name" { "Webhook name" }
                    input #name type="text" name="name" value=(v.name) required placeholder="SOC – critical findings";
                    (err("name"))
                }
                div class=(cls("url")) {
                    label for="url" { "Endpoint URL" }
                    input #url type="text" name="url" value=(v.url) required placeholder="https://siem.example.com/hook";
                    p.hint { "http(s)://…, or syslog+udp://, syslog+tcp://, syslog+tls:// host:port for a syslog receiver." }
                    (err("url"))
                }
                div class=(cls("format")) {
                    label for="format" { "Format" }
                    select #format name="format" {
                        @for f in destinations::formats() {
                            option value=(f.as_str()) selected[v.format == f.as_str() || (v.format.is_empty() && f == destinations::default_format())] { (f.as_str()) }
                        }
                    }
                    (err("format"))
                }
                div class=(cls("description")) {
                    label for="description" { "Description" }
                    input #description type="text" name="description" value=(v.description);
                    (err("description"))
                }
            }
            fieldset class=(cls("event_types")) {
                legend { "Events" }
                (err("event_types"))
                p.hint { "Leave everything unchecked for the deployment's default subscription (all events unless configured otherwise)." }
                label.check {
                    input #ev-all type="checkbox" name="event_types" value="*" checked[selected.contains("*")];
                    span { strong { "All events" } " " span.muted { "(*) including types added later" } }
                }
                @for (fam, list) in &families {
                    div.family {
                        h3 { (fam) }
                        @if *fam != "other" {
                            @let pattern = format!("{fam}.*");
                            label.check {
                                input type="checkbox" name="event_types" value=(pattern) checked[selected.contains(pattern.as_str())];
                                span { "All " code { (pattern) } " events" }
                            }
                        }
                        @for t in list {
                            label.check {
                                input type="checkbox" name="event_types" value=(t.name) checked[selected.contains(t.name.as_str())];
                                span { code { (t.name) } " " span.muted { (t.description) } }
                            }
                        }
                    }
                }
            }
            details open[!err_field.is_empty() && !["name", "url", "format", "event_types", "description"].contains(&err_field.as_str())] {
                summary { "Advanced settings" }
                div class=(cls("secret")) {
                    label for="secret" { "Signing secret" }
                    input #secret type="text" name="secret" value=(v.secret) autocomplete="off"
                        placeholder=(if editing { "leave empty to keep the current secret" } else { "leave empty to generate a strong one" });
                    p.hint { "For splunk_hec this is the HEC token." }
                    (err("secret"))
                }
                div class=(cls("retry_count")) {
                    label for="retry_count" { "Retry attempts (0–10)" }
                    input #retry_count type="number" name="retry_count" min="0" max="10" value=(if v.retry_count.is_empty() { "3" } else { &v.retry_count });
                    (err("retry_count"))
                }
                div class=(cls("timeout_ms")) {
                    label for="timeout_ms" { "Timeout (ms, 1000–30000)" }
                    input #timeout_ms type="number" name="timeout_ms" min="1000" max="30000" value=(if v.timeout_ms.is_empty() { "5000" } else { &v.timeout_ms });
                    (err("timeout_ms"))
                }
                div class=(cls("max_per_second")) {
                    label for="max_per_second" { "Rate limit (deliveries per second, empty for none)" }
                    input #max_per_second type="number" name="max_per_second" min="1" value=(v.max_per_second);
                    (err("max_per_second"))
                }
                div class=(cls("owner_email")) {
                    label for="owner_email" { "Owner email (told when the webhook is disabled)" }
                    input #owner_email type="email" name="owner_email" value=(v.owner_email);
                    (err("owner_email"))
                }
                div class=(cls("headers")) {
                    label for="headers" { "Custom headers (one per line: Name: value)" }
                    textarea #headers name="headers" placeholder="Authorization: Bearer …" { (v.headers) }
                    @if editing { p.hint { "Leave empty to keep the headers already set; their values are never shown again." } }
                    (err("headers"))
                }
            }
            p {
                button.primary #save type="submit" { (if editing { "Save changes" } else { "Create webhook" }) }
                " "
                a.btn href="/ui/webhooks" { "Cancel" }
            }
        }
    }
}

async fn catalogue_for(state: &AppState, s: &Session) -> Vec<EventType> {
    let own = state.store.list_event_types(&s.who.tenant).await.unwrap_or_default();
    state.catalogue.merged(own)
}

fn admin_only(s: &Session) -> Result<(), Response> {
    if s.is_admin() {
        Ok(())
    } else {
        Err(api_error_page(ApiError::forbidden("admin")))
    }
}

pub async fn new_form(State(state): State<AppState>, session: Session) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let types = catalogue_for(&state, &session).await;
    let v = FormValues::default();
    page(
        "Add webhook",
        &session,
        html! { h1 { "Add webhook" } div.panel { (webhook_form(&session, &types, &v, None, "/ui/webhooks", false)) } },
    )
}

fn secret_panel(secret: &Secret, heading: &str) -> Markup {
    html! {
        div.panel #secret-panel {
            h2 { (heading) }
            div.notice role="alert" { strong { "Copy this signing secret now." } " It will not be shown again." }
            div.secret {
                code #new-secret { (secret.expose()) }
                button #copy-secret type="button" data-copy="new-secret" { "Copy" }
            }
            p.hint { "Verify " code { "X-Tocsin-Signature" } " (HMAC-SHA256 of the body) or the Standard Webhooks "
                code { "webhook-signature" } " header with it." }
        }
    }
}

pub async fn create(State(state): State<AppState>, FormPost { session, form }: FormPost) -> Response {
    let v = FormValues::from_form(&form);
    let result = match v.to_input(false) {
        Ok(input) => webhook_ops::create(&state, &session.who, input).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok((w, secret)) => page(
            "Webhook created",
            &session,
            html! {
                h1 { "Webhook created" }
                (secret_panel(&secret, &format!("{} is ready", w.name)))
                p { a.btn.primary #to-overview href={ "/ui/webhooks/" (w.id) } { "Go to the webhook" } }
            },
        ),
        Err(e) if e.status == StatusCode::FORBIDDEN => api_error_page(e),
        Err(e) => {
            let types = catalogue_for(&state, &session).await;
            let mut r = page(
                "Add webhook",
                &session,
                html! { h1 { "Add webhook" } div.panel { (webhook_form(&session, &types, &v, Some(&e), "/ui/webhooks", false)) } },
            );
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}

pub async fn edit_form(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let w = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let types = catalogue_for(&state, &session).await;
    let action = format!("/ui/webhooks/{}/edit", w.id);
    page(
        "Edit webhook",
        &session,
        html! { h1 { "Edit " (w.name) } div.panel { (webhook_form(&session, &types, &FormValues::of(&w), None, &action, true)) } },
    )
}

pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FormPost { session, form }: FormPost,
) -> Response {
    let uuid = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = FormValues::from_form(&form);
    let result = match v.to_input(true) {
        Ok(input) => webhook_ops::update(&state, &session.who, uuid, input).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(w) => Redirect::to(&format!("/ui/webhooks/{}", w.id)).into_response(),
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => api_error_page(e),
        Err(e) => {
            let types = catalogue_for(&state, &session).await;
            let action = format!("/ui/webhooks/{uuid}/edit");
            let mut r = page(
                "Edit webhook",
                &session,
                html! { h1 { "Edit webhook" } div.panel { (webhook_form(&session, &types, &v, Some(&e), &action, true)) } },
            );
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}

pub fn attempt_status(a: &AttemptRecord) -> Markup {
    html! { @if a.success { span.badge.ok { "Success" } } @else { span.badge.bad { "Failed" } } }
}

/// What an action on the overview left to show.
enum Notice {
    None,
    Test(Box<AttemptRecord>),
    Secret(Secret, i64),
}

fn test_result(a: &AttemptRecord) -> Markup {
    html! {
        @if a.success {
            div.flash-ok role="status" {
                strong { "Test event delivered." } " HTTP " (a.http_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into()))
                " in " (a.response_ms) " ms."
            }
        } @else {
            div.flash-bad role="status" {
                strong { "Test event failed." } " "
                @if let Some(s) = a.http_status { "HTTP " (s) ". " }
                (a.error.clone().unwrap_or_default())
            }
        }
    }
}

async fn overview_page(state: &AppState, session: &Session, w: Webhook, notice: Notice) -> Response {
    let tenant = &session.who.tenant;
    let since = now_ms() - DAY_MS;
    let stats = state.store.webhook_stats(tenant, w.id, since).await.unwrap_or_default();
    let buckets = state.store.attempt_histogram(tenant, w.id, since, 3_600_000).await.unwrap_or_default();
    let (recent, total) =
        state.store.list_attempts(tenant, w.id, Page { page: 1, per_page: 10 }, None).await.unwrap_or_default();
    let prefix = &state.settings.header_prefix;
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
            @if let Notice::Secret(secret, until) = &notice {
                (secret_panel(secret, "New signing secret"))
                p.hint { "The previous secret keeps signing until " (rfc3339_secs(*until)) "." }
            }
            div.grid {
                div.panel {
                    h2 { "Endpoint" }
                    dl.kv {
                        dt { "URL" } dd { (url_markup(&w.url.as_str())) }
                        dt { "Format" } dd { (w.format.as_str()) }
                        dt { "Retries" } dd { (w.retry_count) " · timeout " (w.timeout_ms) " ms" }
                        @if let Some(m) = w.max_per_second { dt { "Rate limit" } dd { (m) " / s" } }
                        @if let Some(r) = &w.disabled_reason { dt { "Disabled because" } dd { (r.replace('_', " ")) } }
                        dt { "Failures in a row" } dd { (w.failure_count) }
                        @if let Some(o) = &w.owner_email { dt { "Owner" } dd { (o) } }
                        @if let Some(d) = &w.description { dt { "Description" } dd { (d) } }
                    }
                    h2 style="margin-top:1rem" { "Subscribed events" }
                    p { @for p in &w.event_types { span.chip { (p.as_string()) } } }
                }
                div.panel {
                    h2 { "Security" }
                    dl.kv {
                        dt { "Signatures" }
                        dd { code { (prefix) "-Signature" } " (sha256 HMAC, hex) and Standard Webhooks " code { "webhook-signature" } " (v1)" }
                        dt { "Secret" } dd { "set " (secret_age) @if let Some(t) = grace { " · previous secret valid until " (rfc3339_secs(t)) } }
                    }
                    @if admin {
                        form.inline method="post" action={ "/ui/webhooks/" (w.id) "/rotate" } {
                            (csrf_input(session))
                            button #rotate type="submit" { "Rotate secret" }
                        }
                    }
                    h2 style="margin-top:1rem" { "Headers sent" }
                    dl.kv #headers-sent {
                        @for name in ["Event", "Delivery", "Timestamp", "Webhook-Id", "Signature"] {
                            dt { code { (prefix) "-" (name) } } dd.muted { "set per delivery" }
                        }
                        @for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                            dt { code { (name) } } dd.muted { "Standard Webhooks" }
                        }
                        @for (k, v) in w.headers.masked() { dt { code { (k) } } dd { (v) } }
                    }
                }
            }
            div.panel {
                h2 { "Last 24 hours" }
                div.stats {
                    div.stat { div.v #success-rate { (rate(&stats)) } div.k { "success rate" } }
                    div.stat { div.v { (stats.attempts) } div.k { "calls" } }
                    div.stat { div.v { (stats.failures) } div.k { "failures" } }
                    div.stat { div.v { (stats.p50_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "–".into())) } div.k { "p50 response" } }
                    div.stat { div.v { (stats.p95_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "–".into())) } div.k { "p95 response" } }
                    div.stat { div.v { (stats.last_success_at.map(ago).unwrap_or_else(|| "never".into())) } div.k { "last success" } }
                }
                div.chart { (super::raw(super::chart::svg(&buckets, since))) }
            }
            div.panel {
                div.toolbar {
                    h2 { "Recent deliveries" }
                    a #all-deliveries href={ "/ui/webhooks/" (w.id) "/deliveries" } { "All deliveries (" (total) ")" }
                }
                (super::deliveries::attempts_table(&w, &recent))
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
                        @if let Notice::Test(a) = &notice { (test_result(a)) }
                    }
                }
                div.panel.danger-zone {
                    h2 { "Danger zone" }
                    p { "Deleting a webhook removes it and its delivery history. It cannot be undone." }
                    a.btn.danger #delete href={ "/ui/webhooks/" (w.id) "/delete" } { "Delete webhook" }
                }
            }
        },
    )
}

pub async fn overview(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match load(&state, &session, &id).await {
        Ok(w) => overview_page(&state, &session, w, Notice::None).await,
        Err(r) => r,
    }
}

pub async fn toggle(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FormPost { session, .. }: FormPost,
) -> Response {
    let w = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let input = WebhookInput { is_active: Some(!w.is_active), ..Default::default() };
    match webhook_ops::update(&state, &session.who, w.id, input).await {
        Ok(_) => Redirect::to(&format!("/ui/webhooks/{}", w.id)).into_response(),
        Err(e) => api_error_page(e),
    }
}

pub async fn send_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FormPost { session, .. }: FormPost,
) -> Response {
    let uuid = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let attempt = match deliveries_ops::send_test(&state, &session.who, uuid).await {
        Ok(a) => a,
        Err(e) => return api_error_page(e),
    };
    match load(&state, &session, &id).await {
        Ok(w) => overview_page(&state, &session, w, Notice::Test(Box::new(attempt))).await,
        Err(r) => r,
    }
}

pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FormPost { session, .. }: FormPost,
) -> Response {
    let uuid = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (secret, until) = match webhook_ops::rotate(&state, &session.who, uuid).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    match load(&state, &session, &id).await {
        Ok(w) => overview_page(&state, &session, w, Notice::Secret(secret, until)).await,
        Err(r) => r,
    }
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
                p { "This deletes the webhook " strong { (w.name) } " (" (url_markup(&w.url.as_str())) ") and its delivery history. "
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

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FormPost { session, form }: FormPost,
) -> Response {
    let w = match load(&state, &session, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if !session.is_admin() {
        return api_error_page(ApiError::forbidden("admin"));
    }
    if field(&form, "confirm").map(str::trim) != Some(w.name.as_str()) {
        let mut r = delete_page(&session, &w, Some("The name does not match; nothing was deleted."));
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return r;
    }
    match webhook_ops::delete(&state, &session.who, w.id).await {
        Ok(()) => Redirect::to("/ui/webhooks").into_response(),
        Err(e) => api_error_page(e),
    }
}

/// The time of an attempt, for tables.
pub fn when(ms: i64) -> Markup {
    html! { span title=(rfc3339_ms(ms)) { (rfc3339_secs(ms).replace('T', " ").trim_end_matches('Z')) } }
}
