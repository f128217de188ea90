//! What a form's outcome leaves for the next page (post/redirect/get): every form that changes
//! something answers with a redirect, and the page it leads to shows the outcome once. So
//! reloading that page (F5) never submits the form again.
//!
//! The outcome travels in a short-lived cookie, sealed with the master key and bound to the
//! session (a new signing secret, shown once, is in it): any server sharing the database opens
//! it, the browser holds only ciphertext, and the page that shows it clears it.

use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::{clear_cookie, cookie, set_cookie, Session};
use crate::crypto::b64url;
use crate::service::AppState;

const FLASH_COOKIE: &str = "tocsin_flash";
/// Long enough for the redirect; a page left open does not show it again.
const FLASH_SECS: i64 = 120;

/// The outcome of a form, shown once at the top of the next page. No `Debug`: it may carry a
/// new secret, which must never reach a log.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Flash {
    /// Whether it went as asked (green) or not (red).
    pub ok: bool,
    pub message: String,
    /// A new signing secret, shown once.
    pub secret: Option<ShownSecret>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ShownSecret {
    /// What it is, in words: "signing secret", "token", "public key".
    pub what: String,
    /// Whether it is shown only this once (a secret), or may be seen again (a public key).
    #[serde(default = "shown_once")]
    pub once: bool,
    pub heading: String,
    /// Empty: the webhook sends unsigned deliveries.
    pub value: String,
    /// How receivers verify with it (header names).
    pub hint: String,
    /// E.g. until when the previous secret keeps signing.
    pub note: Option<String>,
}

impl Flash {
    pub fn ok(message: impl Into<String>) -> Self {
        Self { ok: true, message: message.into(), secret: None }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self { ok: false, message: message.into(), secret: None }
    }

    pub fn with_secret(mut self, secret: ShownSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    pub fn markup(&self) -> Markup {
        html! {
            @if self.ok { div.flash-ok #flash role="status" { (self.message) } }
            @else { div.flash-bad #flash role="alert" { (self.message) } }
            @if let Some(s) = &self.secret {
                div.panel #secret-panel {
                    h2 { (s.heading) }
                    @if s.value.is_empty() {
                        p #unsigned { "No signing secret was given: deliveries are sent unsigned. Rotate the secret on "
                            "the webhook's page to start signing them." }
                    } @else {
                        @if s.once {
                            div.notice role="alert" { strong { "Copy this " (s.what) " now." } " It will not be shown again." }
                        } @else {
                            div.notice { strong { "Give this " (s.what) " to your receivers." } " It is not a secret." }
                        }
                        div.secret {
                            code #new-secret { (s.value) }
                            button #copy-secret type="button" data-copy="new-secret" { "Copy" }
                        }
                        p.hint { (s.hint) }
                    }
                    @if let Some(n) = &s.note { p.hint { (n) } }
                }
            }
        }
    }
}

fn shown_once() -> bool {
    true
}

/// The session a flash is bound to: its CSRF token is known only to it and the server.
fn context(session: &Session) -> Vec<u8> {
    [b"ui-flash:".as_slice(), session.csrf.as_bytes()].concat()
}

/// A redirect (303) to `to` that leaves `flash` for the page there.
pub fn redirect_with(state: &AppState, headers: &HeaderMap, session: &Session, to: &str, flash: Flash) -> Response {
    let mut r = Redirect::to(to).into_response();
    let json = serde_json::to_vec(&flash).unwrap_or_default();
    let sealed = b64url(&state.cipher.seal(&json, &context(session)));
    r.headers_mut().append(SET_COOKIE, set_cookie(headers, FLASH_COOKIE, &sealed, FLASH_SECS));
    r
}

/// The flash left for this session, if any (one sealed for another session, or damaged, is
/// ignored).
pub fn pending(state: &AppState, headers: &HeaderMap, session: &Session) -> Option<Flash> {
    use base64::Engine as _;
    let raw = cookie(headers, FLASH_COOKIE).filter(|v| !v.is_empty() && v.len() < 8192)?;
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok()?;
    let json = state.cipher.open(&sealed, &context(session)).ok()?;
    serde_json::from_slice(&json).ok()
}

/// The header that clears the flash once shown.
pub fn cleared(headers: &HeaderMap) -> HeaderValue {
    clear_cookie(headers, FLASH_COOKIE).1
}
