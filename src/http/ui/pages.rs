//! Sign-in and sign-out, the event-type catalogue, the audit log.

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
    if let Some(raw) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = state.store.delete_session(sha256(raw.as_bytes())).await {
            // The cookie is cleared below; the session row expires on its own.
            tracing::warn!(error = %e, "cannot delete a dashboard session");
        }
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().append(SET_COOKIE, clear_cookie(&headers, SESSION_COOKIE).1);
    r
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
    let page_req = Page { page: 1, per_page: 100 };
    let (records, total) = match state.store.list_audit(&session.who.tenant, page_req).await {
        Ok(r) => r,
        Err(e) => return super::api_error_page(e),
    };
    page(
        "Audit log",
        &session,
        html! {
            h1 { "Audit log" }
            div.panel {
                p.muted { "Every change of configuration, newest first (" (records.len()) " of " (total) ")." }
                div.table-wrap { table {
                    thead { tr { th { "When" } th { "Who" } th { "What" } th { "Target" } th.hide-narrow { "Details" } } }
                    tbody {
                        @for r in &records {
                            tr {
                                td { (rfc3339_secs(r.entry.at)) }
                                td { code { (r.entry.actor) } }
                                td { (r.entry.action) }
                                td { code { (r.entry.target) } }
                                td.hide-narrow { code { (r.entry.details.to_string()) } }
                            }
                        }
                    }
                } }
            }
        },
    )
}
