//! The Splunk HTTP Event Collector frame, shared by the formats that speak HEC (`splunk_hec`,
//! `splunk_hec_ocsf`): `{"time", "host", "source", "sourcetype", "index"?, "fields", "event"}`,
//! the token as `Authorization: Splunk <secret>`, and HEC's JSON errors read into the log.

use super::presentation::Presented;
use super::{EventView, RenderSettings};
use crate::domain::webhook::Webhook;
use crate::domain::FieldError;

/// The HEC token is the webhook's secret: `Authorization: Splunk <token>`.
pub const AUTH_SCHEME: &str = "Splunk";

/// A HEC event around `event` (a JSON value's bytes), with the severity and the title as
/// indexed `fields` (searchable without extraction).
pub fn hec_event(e: &EventView<'_>, p: &Presented, s: &RenderSettings, sourcetype: &str, event: &[u8]) -> Vec<u8> {
    let quote = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let mut out = Vec::with_capacity(event.len() + 256);
    // Epoch seconds with milliseconds, as a JSON number.
    let time = format!("{}.{:03}", e.emitted_at.div_euclid(1000), e.emitted_at.rem_euclid(1000));
    out.extend_from_slice(
        format!("{{\"time\":{time},\"host\":{},\"source\":\"tocsin\",", quote(&s.hostname)).as_bytes(),
    );
    out.extend_from_slice(format!("\"sourcetype\":{},", quote(sourcetype)).as_bytes());
    if let Some(index) = &s.splunk_index {
        out.extend_from_slice(format!("\"index\":{},", quote(index)).as_bytes());
    }
    let fields = serde_json::json!({"severity": p.severity.name(), "title": p.title, "event": e.event_type});
    out.extend_from_slice(format!("\"fields\":{fields},").as_bytes());
    out.extend_from_slice(b"\"event\":");
    out.extend_from_slice(event);
    out.push(b'}');
    out
}

/// A HEC webhook's own rule: Authorization comes from the secret, not from a custom header.
pub fn check(format: &str, webhook: &Webhook) -> Result<(), FieldError> {
    if webhook.headers.contains("authorization") {
        return Err(FieldError::new("headers.Authorization", format!("{format} sets Authorization from the secret")));
    }
    Ok(())
}

/// The delivery log's error: HEC answers errors as JSON (`{"text": "Invalid token", "code": 4}`),
/// whose code the log shows.
pub fn describe(status: u16, body: &[u8]) -> String {
    describe_error(status, body).unwrap_or_else(|| super::describe_answer(status, body))
}

fn describe_error(status: u16, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code")?.as_i64()?;
    let text = v.get("text").and_then(|t| t.as_str()).unwrap_or("");
    Some(format!("HTTP {status}: HEC code {code}: {text}"))
}
