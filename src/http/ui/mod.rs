//! The admin dashboard: server-rendered HTML (maud escapes every value), served by the same
//! binary under `/ui`, with its assets embedded. Sign-in takes an API token (admin or viewer) and
//! turns it into a session cookie (HttpOnly, SameSite=Strict, Secure behind TLS) stored by digest;
//! every form carries the session's CSRF token. Pages call the same operations as the API, so the
//! role checks are the API's: a viewer's forged change is refused with 403.

// Handlers return early with a ready page; a `Response` is the natural error type here.
#![allow(clippy::result_large_err)]

mod chart;
mod deliveries;
mod events;
pub mod flash;
mod pages;
mod tokens;
mod webhooks;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::crypto::{b64url, constant_time_eq, random_bytes, sha256};
use crate::domain::time::now_ms;
use crate::domain::token::Role;
use crate::http::api::error::ApiError;
use crate::service::AppState;
use crate::service::Principal;

const SESSION_COOKIE: &str = "tocsin_session";
const LOGIN_COOKIE: &str = "tocsin_login";
/// Sessions end after eight hours (sign in again).
pub const SESSION_MS: i64 = 8 * 3600 * 1000;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

pub fn router() -> Router<AppState> {
    Router::new()
        // Whoever opens the server's address in a browser lands on the dashboard (or its sign-in).
        .route("/", get(|| async { Redirect::to("/ui/webhooks") }))
        .route("/ui", get(|| async { Redirect::to("/ui/webhooks") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/webhooks") }))
        .route("/ui/assets/app.css", get(|| async { asset(CSS, "text/css; charset=utf-8") }))
        .route("/ui/assets/app.js", get(|| async { asset(JS, "text/javascript; charset=utf-8") }))
        .route("/ui/login", get(pages::login_page).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/ui/webhooks/new", get(webhooks::new_form))
        .route("/ui/webhooks/try-filter", post(webhooks::try_filter))
        .route("/ui/webhooks/{id}", get(webhooks::overview))
        .route("/ui/webhooks/{id}/edit", get(webhooks::edit_form).post(webhooks::edit))
        .route("/ui/webhooks/{id}/toggle", post(webhooks::toggle))
        .route("/ui/webhooks/{id}/verify", post(webhooks::verify))
        .route("/ui/webhooks/{id}/test", post(webhooks::send_test))
        .route("/ui/webhooks/{id}/rotate", get(webhooks::rotate_confirm).post(webhooks::rotate))
        .route("/ui/webhooks/{id}/delete", get(webhooks::delete_confirm).post(webhooks::delete))
        .route("/ui/webhooks/{id}/deliveries", get(deliveries::list))
        .route("/ui/webhooks/{id}/deliveries/retry-failed", post(deliveries::retry_failed))
        .route("/ui/webhooks/{id}/deliveries/{attempt}", get(deliveries::detail))
        .route("/ui/webhooks/{id}/deliveries/{attempt}/redeliver", post(deliveries::redeliver))
        .route("/ui/event-types", get(pages::event_types))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/events", get(events::search))
        .route("/ui/events/redeliver", post(events::redeliver))
        .route("/ui/tokens", get(tokens::list).post(tokens::create))
        .route("/ui/tokens/{id}/revoke", get(tokens::revoke_confirm).post(tokens::revoke))
        .layer(axum::middleware::map_response(browser_headers))
}

/// What every dashboard response tells the browser: only this origin's scripts, styles and form
/// targets; never inside a frame (the confirm pages are one click from rotating a secret or
/// revoking a token); no type sniffing; no URL sent to other origins.
async fn browser_headers(mut response: Response) -> Response {
    use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    let headers = response.headers_mut();
    let policy = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// A signed-in user: the token's principal and the session's CSRF token, and what the last form
/// left to show (see [`flash`]).
pub struct Session {
    pub who: Principal,
    pub csrf: String,
    pub flash: Option<flash::Flash>,
    /// The header that clears the flash, sent by the page that shows it.
    flash_clear: Option<HeaderValue>,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.who.role == Role::Admin
    }

    /// Refuses a form whose CSRF token is not this session's (constant-time comparison).
    pub fn check_csrf(&self, form: &[(String, String)]) -> Result<(), Response> {
        let sent = field(form, "csrf").unwrap_or_default();
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(error_page(
                StatusCode::FORBIDDEN,
                "The form expired or did not come from this dashboard. Reload the page and try again.",
            ))
        }
    }
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// `Secure` when the request came over TLS (through a proxy that says so).
fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are base64url")
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/ui/login").into_response();
        let raw = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        if raw.len() > 128 {
            return Err(to_login());
        }
        let found = state.store.find_session(sha256(raw.as_bytes()), now_ms()).await.map_err(|e| {
            let e: ApiError = e.into();
            error_page(e.status, &e.message)
        })?;
        let (token, csrf) = found.ok_or_else(to_login)?;
        let who = Principal { token_id: token.id, tenant: token.tenant_id, role: token.role };
        let mut session = Session { who, csrf, flash: None, flash_clear: None };
        session.flash = flash::pending(state, &parts.headers, &session);
        session.flash_clear = session.flash.is_some().then(|| flash::cleared(&parts.headers));
        Ok(session)
    }
}

/// A signed-in user's form submission whose CSRF token checked out: every state-changing page
/// takes one, so none can forget the check.
pub struct FormPost {
    pub session: Session,
    pub form: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl FormPost {
    /// The answer to a form that did what it asked: a redirect to `to`, whose page shows `flash`.
    pub fn done(&self, state: &AppState, to: &str, flash: flash::Flash) -> Response {
        flash::redirect_with(state, &self.headers, &self.session, to, flash)
    }
}

impl FromRequest<AppState> for FormPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        // A form that trickles in holds a connection: it has the request timeout to arrive.
        let reading = Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), state);
        let Form(form) = tokio::time::timeout(state.settings.request_timeout, reading)
            .await
            .map_err(|_| error_page(StatusCode::REQUEST_TIMEOUT, "The form did not arrive in time."))?
            .map_err(|e| error_page(StatusCode::BAD_REQUEST, &e.body_text()))?;
        session.check_csrf(&form)?;
        Ok(Self { session, form, headers })
    }
}

/// Starts a session for a token; returns the cookie value.
pub async fn start_session(state: &AppState, who: &Principal) -> Result<String, ApiError> {
    let raw = b64url(&random_bytes::<32>());
    let csrf = b64url(&random_bytes::<24>());
    state.store.create_session(sha256(raw.as_bytes()), who.token_id, &csrf, now_ms() + SESSION_MS).await?;
    Ok(raw)
}

/// The value of a form field.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub fn csrf_input(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// The page frame: navigation, who is signed in, sign-out.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tocsin" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/webhooks" { "Tocsin" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            a href="/ui/webhooks" { "Webhooks" }
                            a href="/ui/events" { "Events" }
                            a href="/ui/event-types" { "Event types" }
                            @if s.is_admin() { a href="/ui/tokens" { "API tokens" } a href="/ui/audit" { "Audit log" } }
                        }
                        div.who {
                            span { "Tenant " strong { (s.who.tenant) } " · " (s.who.role.as_str()) }
                            form.inline method="post" action="/ui/logout" {
                                (csrf_input(s))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A signed-in page, with what the last form left to show above it (once).
pub fn page(title: &str, session: &Session, body: Markup) -> Response {
    let body = html! { @if let Some(f) = &session.flash { (f.markup()) } (body) };
    let mut r = layout(title, Some(session), body).into_response();
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(clear) = &session.flash_clear {
        r.headers_mut().append(SET_COOKIE, clear.clone());
    }
    r
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        div.panel {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p { (message) }
            p { a href="/ui/webhooks" { "Back to webhooks" } }
        }
    };
    (status, layout("Error", None, body)).into_response()
}

/// An API error as a page (403 for a viewer's change, 404 for another tenant's object, …).
pub fn api_error_page(e: impl Into<ApiError>) -> Response {
    let e: ApiError = e.into();
    error_page(e.status, &e.message)
}

/// "3 minutes ago" for a Unix-ms time.
pub fn ago(ms: i64) -> String {
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A URL with its host emphasized.
pub fn url_markup(url: &str) -> Markup {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (host, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    html! { span.url { (scheme) "://" strong { (host) } (path) } }
}

/// A JSON body indented for reading; anything else as it is.
pub fn pretty_json(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

pub fn pre(text: &str) -> Markup {
    html! { pre { (text) } }
}

/// Raw, already-escaped markup (the SVG chart).
pub fn raw(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

/// Clears a cookie.
pub fn clear_cookie(headers: &HeaderMap, name: &str) -> (axum::http::HeaderName, HeaderValue) {
    (SET_COOKIE, set_cookie(headers, name, "", 0))
}
