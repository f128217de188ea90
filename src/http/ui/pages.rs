//! Sign-in and sign-out, the event-type catalogue, the audit log.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;

use super::{
    clear_cookie, cookie, csrf_input, error_page, field, layout, page, set_cookie, start_session, FormPost, Session,
    LOGIN_COOKIE, SESSION_COOKIE, SESSION_MS,
};
use crate::crypto::{b64url, constant_time_eq, random_bytes, sha256};
use crate::domain::page::Page;
use crate::domain::time::rfc3339_secs;
use crate::domain::token::Role;
use crate::service::caller::authenticate;
use crate::service::AppState;

fn login_form(headers: &HeaderMap, error: Option<&str>) -> Response {
    // Login CSRF: a double-submit token, bound to a short-lived cookie.
    let token = b64url(&random_bytes::<24>());
    let body = html! {
        div.panel.login {
            h1 { "Sign in to Tocsin" }
            p.muted { "Use an API token with the admin or viewer role (" code { "tocsin token create --role viewer" } ")." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(token);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required placeholder="tsn_…";
                p { button.primary type="submit" { "Sign in" } }
            }
        }
    };
    let mut r =
        (if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK }, layout("Sign in", None, body))
            .into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(headers, LOGIN_COOKIE, &token, 600));
    r
}

pub async fn login_page(headers: HeaderMap) -> Response {
    login_form(&headers, None)
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let sent = field(&form, "csrf").unwrap_or_default();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return login_form(&headers, Some("The sign-in form expired. Try again."));
    }
    let token = field(&form, "token").unwrap_or_default().trim();
    if token.is_empty() || token.len() > 512 {
        return login_form(&headers, Some("Enter an API token."));
    }
    let who = match authenticate(&state, token).await {
        Ok(who) => who,
        Err(_) => return login_form(&headers, Some("That token is not valid.")),
    };
    if who.role == Role::Publisher {
        return login_form(
            &headers,
            Some("Publisher tokens can only publish events; sign in with an admin or viewer token."),
        );
    }
    // The session this browser had, if any, ends: a copy of its cookie signs nobody in.
    end_session(&state, &headers).await;
    let raw = match start_session(&state, &who).await {
        Ok(raw) => raw,
        Err(e) => return error_page(e.status, &e.message),
    };
    let mut r = Redirect::to("/ui/webhooks").into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(&headers, SESSION_COOKIE, &raw, SESSION_MS / 1000));
    r.headers_mut().append(SET_COOKIE, clear_cookie(&headers, LOGIN_COOKIE).1);
    r
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, _signed_in: FormPost) -> Response {
    end_session(&state, &headers).await;
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(SET_COOKIE, clear_cookie(&headers, SESSION_COOKIE).1);
    r
}

/// Deletes the session of the request's cookie, if any. Should that fail, the caller clears or
/// replaces the cookie anyway, and the session row expires on its own.
async fn end_session(state: &AppState, headers: &HeaderMap) {
    if let Some(raw) = cookie(headers, SESSION_COOKIE) {
        if let Err(e) = state.store.delete_session(sha256(raw.as_bytes())).await {
            tracing::warn!(error = %e, "cannot delete a dashboard session");
        }
    }
}

pub async fn event_types(State(state): State<AppState>, session: Session) -> Response {
    let own = match state.store.list_event_types(&session.who.tenant).await {
        Ok(o) => o,
        Err(e) => return super::api_error_page(e),
    };
    let catalogue = match state.profile_of(&session.who.tenant).await {
        Ok(profile) => profile.catalogue.clone(),
        Err(e) => return super::api_error_page(e),
    };
    let types = catalogue.merged(own);
    page(
        "Event types",
        &session,
        html! {
            h1 { "Event types" }
            div.panel {
                p.muted { "Webhooks subscribe to these names, to a family (" code { "alert.*" } "), or to everything (" code { "*" } ")." }
                div.table-wrap { table {
                    thead { tr { th { "Name" } th { "Description" } th.hide-narrow { "Schema" } th.hide-narrow { "Source" } } }
                    tbody {
                        @for t in &types {
                            tr {
                                td { code { (t.name) } }
                                td { (t.description) }
                                td.hide-narrow { @if t.schema.is_some() { span.badge.neutral { "JSON schema" } } }
                                td.hide-narrow { @if catalogue.contains(&t.name) { span.muted { "configured" } } @else { "tenant" } }
                            }
                        }
                    }
                } }
            }
            (csrf_input(&session))
        },
    )
}

pub async fn audit(State(state): State<AppState>, session: Session) -> Response {
    if !session.is_admin() {
        return error_page(StatusCode::FORBIDDEN, "The audit log is for admins.");
    }
    let tenant = &session.who.tenant;
    let page_req = Page { page: 1, per_page: 100 };
    let (records, total) = match state.store.list_audit(tenant, page_req).await {
        Ok(r) => r,
        Err(e) => return super::api_error_page(e),
    };
    // Names for the ids the log keeps: tokens, webhooks (a deleted one by the name it was created
    // with).
    let mut names: HashMap<String, String> = HashMap::new();
    for t in state.store.list_tokens(tenant).await.unwrap_or_default() {
        names.insert(format!("token:{}", t.id), format!("token “{}” ({})", t.name, t.role.as_str()));
    }
    for r in records.iter().filter(|r| r.entry.action == "webhook.create") {
        if let Some(name) = r.entry.details.get("name").and_then(|n| n.as_str()) {
            names.insert(r.entry.target.clone(), format!("webhook “{name}”"));
        }
    }
    let (hooks, _) = state.store.list_webhooks(tenant, Page { page: 1, per_page: 1000 }).await.unwrap_or_default();
    for w in hooks {
        names.insert(format!("webhook:{}", w.id), format!("webhook “{}”", w.name));
    }
    let named = |raw: &str| -> maud::Markup {
        match names.get(raw) {
            Some(name) => html! { span title=(raw) { (name) } },
            None => html! { code { (raw) } },
        }
    };
    page(
        "Audit log",
        &session,
        html! {
            h1 { "Audit log" }
            div.panel {
                p.muted { "Every change of configuration, newest first (" (records.len()) " of " (total) "). Times are UTC." }
                ol.audit #audit {
                    @for r in &records {
                        li {
                            div.audit-head {
                                strong { (r.entry.action) }
                                " · " (named(&r.entry.target))
                                span.muted.audit-when title=(rfc3339_secs(r.entry.at)) {
                                    (rfc3339_secs(r.entry.at).replace('T', " ").replace('Z', " UTC"))
                                }
                            }
                            div.muted { "by " (named(&r.entry.actor)) }
                            @if let Some(fields) = r.entry.details.as_object().filter(|f| !f.is_empty()) {
                                dl.audit-details {
                                    @for (k, v) in fields {
                                        dt { (k) }
                                        dd { @match v { serde_json::Value::String(text) => (text), other => (other.to_string()) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
