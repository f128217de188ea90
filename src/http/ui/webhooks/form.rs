//! The add and edit forms: events by family, format, secret, retries, headers, limits.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::super::flash::{Flash, ShownSecret};
use super::super::{api_error_page, csrf_input, field, page, FormPost, Session};
use super::problems::{anchor_of, field_of, human, label_of};
use super::{admin_only, load, parse_id};
use crate::destinations;
use crate::domain::event_type::{EventType, EventTypePattern};
use crate::domain::secret::Secret;
use crate::domain::webhook::Webhook;
use crate::http::api::error::ApiError;
use crate::profile::Profile;
use crate::service::webhooks::{self as webhook_ops, WebhookInput};
use crate::service::AppState;

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
    /// Seconds between tries; empty: the profile's schedule.
    retry_delay: String,
    timeout_ms: String,
    max_per_second: String,
    owner_email: String,
    /// `hmac-sha256` or `ed25519` (chosen at creation).
    signing_algorithm: String,
    /// empty, or info … critical.
    min_severity: String,
    /// A CEL expression, or empty.
    filter: String,
    headers: String,
    /// Editing: the names of the custom headers set (their values are never shown again).
    header_names: Vec<String>,
    /// Editing: remove every custom header.
    clear_headers: bool,
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
            retry_delay: match w.retry_delays_ms.as_deref() {
                Some([0, delay]) => (delay / 1000).to_string(),
                _ => String::new(),
            },
            timeout_ms: w.timeout_ms.to_string(),
            max_per_second: w.max_per_second.map(|m| m.to_string()).unwrap_or_default(),
            owner_email: w.owner_email.clone().unwrap_or_default(),
            signing_algorithm: w.signing_algorithm.as_str().into(),
            min_severity: w.min_severity.map(|s| s.name().to_string()).unwrap_or_default(),
            filter: w.filter.as_ref().map(|f| f.source().to_string()).unwrap_or_default(),
            // Header values are never shown again; keep the names so people see what is set.
            headers: String::new(),
            header_names: w.headers.iter().map(|(k, _)| k.clone()).collect(),
            clear_headers: false,
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
            retry_delay: f("retry_delay"),
            timeout_ms: f("timeout_ms"),
            max_per_second: f("max_per_second"),
            owner_email: f("owner_email"),
            signing_algorithm: f("signing_algorithm"),
            min_severity: f("min_severity"),
            filter: f("filter"),
            headers: f("headers"),
            header_names: form.iter().filter(|(k, _)| k == "header_name").map(|(_, v)| v.clone()).collect(),
            clear_headers: field(form, "clear_headers").is_some(),
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
            // Nothing checked: on a new webhook, the configured default subscription (normally all
            // events); on an edit, a mistake to point out (not a silent "keep what was there").
            event_types: (editing || !self.events.is_empty()).then(|| self.events.clone()),
            format: text(&self.format),
            retry_count: number(&self.retry_count, "retry_count")?,
            timeout_ms: number(&self.timeout_ms, "timeout_ms")?,
            // The first attempt is immediate; each retry waits the delay.
            retry_delays_ms: number(&self.retry_delay, "retry_delays_ms")?
                .map(|secs| vec![0, secs.saturating_mul(1000)]),
            headers: if editing && headers.is_empty() && !self.clear_headers { None } else { Some(headers) },
            is_active: None,
            description: Some(self.description.trim().to_string()),
            max_per_second: number(&self.max_per_second, "max_per_second")?,
            owner_email: Some(self.owner_email.trim().to_string()),
            signing_algorithm: if editing { None } else { text(&self.signing_algorithm) },
            verify: None,
            // Empty clears them on an edit.
            min_severity: Some(self.min_severity.trim().to_string()),
            filter: Some(self.filter.trim().to_string()),
        })
    }
}

/// A retry schedule as people read it: `immediately, 30 s, 2 min, …`.
fn schedule_text(schedule: &[std::time::Duration]) -> String {
    let step = |d: &std::time::Duration| match d.as_secs() {
        0 => "immediately".to_string(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    };
    schedule.iter().map(step).collect::<Vec<_>>().join(", ")
}

/// The family of an event type: the part before the first dot.
fn family(name: &str) -> &str {
    name.split_once('.').map_or("other", |(f, _)| f)
}

fn webhook_form(
    session: &Session,
    ctx: &FormContext,
    v: &FormValues,
    error: Option<&ApiError>,
    action: &str,
    editing: bool,
) -> Markup {
    // Every problem, by form field (the first one for a field that has several).
    let mut problems: Vec<(String, String)> = Vec::new();
    for p in error.map(ApiError::problems).unwrap_or_default() {
        let field = field_of(&p.field);
        if !problems.iter().any(|(f, _)| *f == field) {
            problems.push((field, human(&p.field, &p.message)));
        }
    }
    // In the order of the wizard's steps.
    const ORDER: [&str; 15] = [
        "name",
        "url",
        "description",
        "event_types",
        "min_severity",
        "filter",
        "format",
        "retry_count",
        "retry_delays_ms",
        "timeout_ms",
        "max_per_second",
        "signing_algorithm",
        "secret",
        "headers",
        "owner_email",
    ];
    problems.sort_by_key(|(f, _)| ORDER.iter().position(|o| o == f).unwrap_or(ORDER.len()));
    let problem = |name: &str| problems.iter().find(|(f, _)| f == name).map(|(_, m)| m.clone());
    let err = |name: &str| -> Markup {
        html! { @if let Some(m) = problem(name) { p.error id={ "err-" (name) } role="alert" { (m) } } }
    };
    let cls = |name: &str| if problem(name).is_some() { "field-error" } else { "" };
    let selected: HashSet<&str> = v.events.iter().map(String::as_str).collect();
    let mut families: BTreeMap<&str, Vec<&EventType>> = BTreeMap::new();
    for t in ctx.types.iter().filter(|t| !t.name.starts_with("webhook.") || t.name == "webhook.disabled") {
        families.entry(family(&t.name)).or_default().push(t);
    }
    html! {
        @if let Some(e) = error {
            @if problems.is_empty() {
                div.flash-bad role="alert" { (e.message) }
            } @else {
                div.flash-bad #problems role="alert" {
                    strong { (if problems.len() == 1 { "One thing to fix:" } else { "Some things to fix:" }) }
                    ul {
                        @for (field, message) in &problems {
                            li { a href={ "#" (anchor_of(field)) } { (label_of(field)) } ": " (message) }
                        }
                    }
                }
            }
        }
        // Five steps (endpoint → events → format and delivery → security and headers → review).
        // Without the script they are one page; with it (`app.js`) one step shows at a time.
        form #webhook-form method="post" action=(action) novalidate data-wizard data-editing[editing] {
            (csrf_input(session))
            fieldset.step #step-endpoint {
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
                div class=(cls("description")) {
                    label for="description" { "Description" }
                    input #description type="text" name="description" value=(v.description);
                    (err("description"))
                }
            }
            fieldset.step #event_types class=(cls("event_types")) {
                legend { "Events" }
                (err("event_types"))
                @if editing {
                    p.hint { "Check at least one event, or All events." }
                } @else {
                    p.hint { "Leave everything unchecked for the deployment's default subscription (all events unless configured otherwise)." }
                }
                div.event-search hidden {
                    label for="event-filter" { "Find an event type" }
                    input #event-filter type="search" placeholder="quarantined, alert, finding…" autocomplete="off";
                }
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
            fieldset.step #step-filters {
                legend { "Filters" }
                p.hint { "Optional: deliver only the subscribed events that pass both." }
                div class=(cls("min_severity")) {
                    label for="min_severity" { "Minimum severity" }
                    select #min_severity name="min_severity" {
                        option value="" selected[v.min_severity.is_empty()] { "any severity" }
                        @for level in ["low", "medium", "high", "critical"] {
                            option value=(level) selected[v.min_severity == level] { (level) " and above" }
                        }
                    }
                    p.hint { "The severity the formats show (Slack, Teams, CEF), derived from the event's data by its type." }
                    (err("min_severity"))
                }
                div class=(cls("filter")) {
                    label for="filter" { "Filter expression (CEL)" }
                    textarea #filter name="filter" rows="2" placeholder=r#"data.phish_score >= 90 && data.source == "auto""# { (v.filter) }
                    p.hint { "Over " code { "event" } ", " code { "severity" } ", " code { "tenant_id" } " and " code { "data" }
                        ". An event the expression cannot be evaluated for (a missing field) is not delivered." }
                    (err("filter"))
                    p { button #try-filter type="button" hidden data-action="/ui/webhooks/try-filter" { "Try it on the last 20 events" } }
                    div #filter-try aria-live="polite" {}
                }
            }
            fieldset.step #step-delivery {
                legend { "Format and delivery" }
                div class=(cls("format")) {
                    label for="format" { "Format" }
                    select #format name="format" {
                        @for f in destinations::formats() {
                            option value=(f.as_str()) selected[v.format == f.as_str() || (v.format.is_empty() && f == destinations::default_format())] { (f.as_str()) }
                        }
                    }
                    p.hint { "json: signed JSON webhooks · slack, teams: chat messages · cef, syslog: SIEMs (over syslog+… URLs or HTTP) · splunk_hec: Splunk's HTTP Event Collector · ocsf, splunk_hec_ocsf: OCSF events for security data lakes (over HTTP, syslog+… URLs or HEC)." }
                    (err("format"))
                }
                div class=(cls("retry_count")) {
                    label for="retry_count" { "Retry attempts (0–10)" }
                    input #retry_count type="number" name="retry_count" min="0" max="10" value=(if v.retry_count.is_empty() { ctx.profile.webhooks.retry_count.to_string() } else { v.retry_count.clone() });
                    (err("retry_count"))
                }
                div class=(cls("retry_delays_ms")) {
                    label for="retry_delay" { "Retry delay (seconds between tries)" }
                    input #retry_delay type="number" name="retry_delay" min="0" max="86400" value=(v.retry_delay)
                        placeholder={ "empty: " (schedule_text(&ctx.profile.webhooks.retry_schedule)) };
                    (err("retry_delays_ms"))
                }
                div class=(cls("timeout_ms")) {
                    label for="timeout_ms" { "Timeout (ms, 1000–30000)" }
                    input #timeout_ms type="number" name="timeout_ms" min="1000" max="30000" value=(if v.timeout_ms.is_empty() { ctx.profile.webhooks.timeout_ms.to_string() } else { v.timeout_ms.clone() });
                    (err("timeout_ms"))
                }
                div class=(cls("max_per_second")) {
                    label for="max_per_second" { "Rate limit (deliveries per second, empty for none)" }
                    input #max_per_second type="number" name="max_per_second" min="1" value=(v.max_per_second);
                    (err("max_per_second"))
                }
            }
            fieldset.step #step-security {
                legend { "Security and headers" }
                div class=(cls("signing_algorithm")) {
                    label for="signing_algorithm" { "Signature" }
                    @if editing {
                        input #signing_algorithm type="text" value=(v.signing_algorithm) disabled;
                        p.hint { "Chosen when the webhook was created." }
                    } @else {
                        select #signing_algorithm name="signing_algorithm" {
                            option value="hmac-sha256" selected[v.signing_algorithm != "ed25519"] { "HMAC-SHA256 with a shared secret (seed style and Standard Webhooks v1)" }
                            option value="ed25519" selected[v.signing_algorithm == "ed25519"] { "Ed25519: Tocsin keeps the private key, receivers verify with the public key (Standard Webhooks v1a)" }
                        }
                    }
                    (err("signing_algorithm"))
                }
                div class=(cls("secret")) {
                    label for="secret" { "Signing secret (the HEC token for splunk_hec and splunk_hec_ocsf)" }
                    input #secret type="text" name="secret" value=(v.secret) autocomplete="off"
                        placeholder=(if editing {
                            "leave empty to keep the current secret"
                        } else if ctx.profile.signature.optional {
                            "optional: leave empty to send deliveries unsigned"
                        } else {
                            "leave empty to generate a strong one"
                        });
                    p.hint { "Webhooks are signed with it; syslog destinations carry no signature. splunk_hec needs its HEC token here." }
                    (err("secret"))
                }
                div class=(cls("headers")) {
                    label for="headers" { "Custom headers (one per line: Name: value)" }
                    textarea #headers name="headers" placeholder="Authorization: Bearer …" { (v.headers) }
                    @if editing && !v.header_names.is_empty() {
                        p.hint { "Set now: " @for (i, n) in v.header_names.iter().enumerate() { @if i > 0 { ", " } code { (n) } }
                            ". Their values are never shown again; lines written here replace them all." }
                        @for n in &v.header_names { input type="hidden" name="header_name" value=(n); }
                        label.check {
                            input #clear_headers type="checkbox" name="clear_headers" value="1" checked[v.clear_headers];
                            span { "Remove every custom header" }
                        }
                    } @else if editing {
                        p.hint { "No custom headers are set." }
                    }
                    (err("headers"))
                }
                div class=(cls("owner_email")) {
                    label for="owner_email" { "Owner email (told when the webhook is disabled)" }
                    input #owner_email type="email" name="owner_email" value=(v.owner_email);
                    (err("owner_email"))
                }
            }
            fieldset.step #step-review {
                legend { "Review" }
                dl.kv #review {}
                p.hint.no-script { "Check the values above, then save." }
                p {
                    button.primary #save type="submit" { (if editing { "Save changes" } else { "Create webhook" }) }
                    " "
                    a.btn href="/ui/webhooks" { "Cancel" }
                }
            }
        }
    }
}

/// What the form offers: the event types of the tenant's profile and its own, and the profile
/// (whether a secret is optional, its default schedule).
struct FormContext {
    types: Vec<EventType>,
    profile: Arc<Profile>,
}

async fn form_context(state: &AppState, s: &Session) -> FormContext {
    let own = state.store.list_event_types(&s.who.tenant).await.unwrap_or_default();
    let profile = state.shown_profile(&s.who.tenant).await;
    FormContext { types: profile.catalogue.merged(own), profile }
}

pub async fn new_form(State(state): State<AppState>, session: Session) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let ctx = form_context(&state, &session).await;
    let v = FormValues::default();
    page(
        "Add webhook",
        &session,
        html! { h1 { "Add webhook" } div.panel { (webhook_form(&session, &ctx, &v, None, "/ui/webhooks", false)) } },
    )
}

/// A signing secret as the next page shows it, once.
pub(super) fn shown_secret(secret: &Secret, heading: &str, profile: &Profile, note: Option<String>) -> ShownSecret {
    let mut hint = format!("Verify {} (HMAC-SHA256 of the body)", profile.signature.header.as_str());
    if profile.headers.standard_webhooks {
        hint.push_str(" or the Standard Webhooks webhook-signature header");
    }
    hint.push_str(" with it.");
    if let Some(public) = secret.ed25519_public_key() {
        return ShownSecret {
            what: "public key".into(),
            once: false,
            heading: heading.to_string(),
            value: public,
            hint: "Deliveries carry webhook-signature: v1a,… (Ed25519 over id.timestamp.body); receivers verify it \
                   with this key. It also shows on the webhook's page and at GET /api/v1/webhooks/{id}/public-keys."
                .into(),
            note,
        };
    }
    ShownSecret {
        what: "signing secret".into(),
        once: true,
        heading: heading.to_string(),
        value: if secret.is_unsigned() { String::new() } else { secret.expose().to_string() },
        hint,
        note,
    }
}

pub async fn create(State(state): State<AppState>, post: FormPost) -> Response {
    let (session, v) = (&post.session, FormValues::from_form(&post.form));
    let result = match v.to_input(false) {
        Ok(input) => webhook_ops::create(&state, &session.who, input).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let profile = state.shown_profile(&session.who.tenant).await;
    match result {
        Ok((w, secret)) => {
            let shown = shown_secret(&secret, &format!("{} is ready", w.name), &profile, None);
            post.done(
                &state,
                &format!("/ui/webhooks/{}", w.id),
                Flash::ok(format!("Webhook {} created.", w.name)).with_secret(shown),
            )
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => api_error_page(e),
        Err(e) => {
            let ctx = form_context(&state, session).await;
            let mut r = page(
                "Add webhook",
                session,
                html! { h1 { "Add webhook" } div.panel { (webhook_form(session, &ctx, &v, Some(&e), "/ui/webhooks", false)) } },
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
    let ctx = form_context(&state, &session).await;
    let action = format!("/ui/webhooks/{}/edit", w.id);
    page(
        "Edit webhook",
        &session,
        html! { h1 { "Edit " (w.name) } div.panel { (webhook_form(&session, &ctx, &FormValues::of(&w), None, &action, true)) } },
    )
}

pub async fn edit(State(state): State<AppState>, Path(id): Path<String>, post: FormPost) -> Response {
    let uuid = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (session, v) = (&post.session, FormValues::from_form(&post.form));
    let result = match v.to_input(true) {
        Ok(input) => webhook_ops::update(&state, &session.who, uuid, input).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(w) => post.done(&state, &format!("/ui/webhooks/{}", w.id), Flash::ok("Changes saved.")),
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => api_error_page(e),
        Err(e) => {
            let ctx = form_context(&state, session).await;
            let action = format!("/ui/webhooks/{uuid}/edit");
            let mut r = page(
                "Edit webhook",
                session,
                html! { h1 { "Edit webhook" } div.panel { (webhook_form(session, &ctx, &v, Some(&e), &action, true)) } },
            );
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}
