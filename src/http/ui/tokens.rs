//! API tokens, for admins: the tenant's tokens by name (never their values), a new one (shown
//! once), and revocation after a confirmation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::flash::{Flash, ShownSecret};
use super::{api_error_page, csrf_input, error_page, field, page, FormPost, Session};
use crate::domain::time::rfc3339_secs;
use crate::domain::token::Role;
use crate::http::api::error::ApiError;
use crate::service::{tokens, AppState};

fn admin_only(s: &Session) -> Result<(), Response> {
    if s.is_admin() {
        Ok(())
    } else {
        Err(api_error_page(ApiError::forbidden("admin")))
    }
}

fn utc(ms: i64) -> String {
    rfc3339_secs(ms).replace('T', " ").replace('Z', " UTC")
}

pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let listed = match tokens::list(&state.store, &session.who.tenant).await {
        Ok(l) => l,
        Err(e) => return api_error_page(e),
    };
    page(
        "API tokens",
        &session,
        html! {
            h1 { "API tokens" }
            div.panel {
                h2 { "New token" }
                form #token-form method="post" action="/ui/tokens" {
                    (csrf_input(&session))
                    div.row {
                        div {
                            label for="token-name" { "Name (who or what uses it)" }
                            input #token-name type="text" name="name" required placeholder="PhishNet production publisher";
                        }
                        div {
                            label for="token-role" { "Role" }
                            select #token-role name="role" {
                                option value="publisher" { "publisher: publishes events only" }
                                option value="viewer" { "viewer: reads settings and history" }
                                option value="admin" { "admin: everything in this tenant" }
                            }
                        }
                    }
                    p { button.primary #create-token type="submit" { "Create token" } }
                }
            }
            div.panel {
                div.table-wrap { table #tokens {
                    thead { tr { th { "Name" } th { "Role" } th.hide-narrow { "Starts with" } th.hide-narrow { "Created" } th { "State" } th {} } }
                    tbody {
                        @for t in &listed {
                            tr data-token=(t.id) {
                                td { (t.name) }
                                td { (t.role.as_str()) }
                                td.hide-narrow { code { (t.prefix) "…" } }
                                td.hide-narrow { (utc(t.created_at)) }
                                td {
                                    @match t.revoked_at {
                                        Some(at) => span.badge.bad title=(utc(at)) { "Revoked" },
                                        None => span.badge.ok { "Active" },
                                    }
                                }
                                td {
                                    @if t.revoked_at.is_none() {
                                        a.btn href={ "/ui/tokens/" (t.id) "/revoke" } { "Revoke" }
                                        @if t.id == session.who.token_id { " " span.muted { "(this session's)" } }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        },
    )
}

pub async fn create(State(state): State<AppState>, post: FormPost) -> Response {
    if let Err(r) = admin_only(&post.session) {
        return r;
    }
    let name = field(&post.form, "name").unwrap_or_default();
    let role = match Role::parse(field(&post.form, "role").unwrap_or_default()) {
        Ok(r) => r,
        Err(_) => return error_page(StatusCode::UNPROCESSABLE_ENTITY, "Choose the token's role."),
    };
    let actor = post.session.who.actor();
    match tokens::create(&state.store, &post.session.who.tenant, role, name, &actor).await {
        Ok((record, plain)) => {
            let shown = ShownSecret {
                what: "token".into(),
                once: true,
                heading: format!("Token “{}” ({})", record.name, role.as_str()),
                value: plain.expose().to_string(),
                hint: "Send it as Authorization: Bearer <token>.".into(),
                note: None,
            };
            post.done(&state, "/ui/tokens", Flash::ok(format!("Token “{}” created.", record.name)).with_secret(shown))
        }
        Err(e) => post.done(&state, "/ui/tokens", Flash::bad(ApiError::from(e).message)),
    }
}

pub async fn revoke_confirm(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    if let Err(r) = admin_only(&session) {
        return r;
    }
    let listed = tokens::list(&state.store, &session.who.tenant).await.unwrap_or_default();
    let Some(t) = listed.iter().find(|t| t.id.to_string() == id && t.revoked_at.is_none()) else {
        return error_page(StatusCode::NOT_FOUND, "No such active token.");
    };
    page(
        "Revoke token",
        &session,
        html! {
            h1 { "Revoke “" (t.name) "”?" }
            div.panel.danger-zone {
                p { "Requests with this " (t.role.as_str()) " token are refused from now on, on every server. This cannot be undone." }
                @if t.id == session.who.token_id { p { strong { "You are signed in with it: this ends your session." } } }
                form method="post" action={ "/ui/tokens/" (t.id) "/revoke" } {
                    (csrf_input(&session))
                    p {
                        button.danger #confirm-revoke type="submit" { "Revoke " (t.name) }
                        " "
                        a.btn href="/ui/tokens" { "Cancel" }
                    }
                }
            }
        },
    )
}

pub async fn revoke(State(state): State<AppState>, Path(id): Path<String>, post: FormPost) -> Response {
    if let Err(r) = admin_only(&post.session) {
        return r;
    }
    let actor = post.session.who.actor();
    match tokens::revoke(&state.store, &post.session.who.tenant, &id, &actor).await {
        Ok(_) => post.done(&state, "/ui/tokens", Flash::ok("Token revoked.")),
        Err(e) => api_error_page(e),
    }
}
