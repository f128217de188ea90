//! Splunk HTTP Event Collector: `{"time", "host", "source", "sourcetype", "index"?, "event"}` with
//! the JSON envelope as the event.

use super::envelope::envelope;
use super::presentation::{present_raw, Presented};
use super::{Destination, EventView, RenderSettings, Rendered};
use crate::domain::webhook::Webhook;
use crate::domain::FieldError;

pub struct SplunkHec;

impl Destination for SplunkHec {
    fn name(&self) -> &'static str {
        "splunk_hec"
    }

    fn render(&self, event: &EventView<'_>, presentation: Option<&serde_json::Value>, s: &RenderSettings, _: bool) -> Rendered {
        let (_, p) = present_raw(event, presentation);
        Rendered { body: render(event, &p, s), content_type: "application/json" }
    }

    /// The HEC token is the webhook's secret: `Authorization: Splunk <token>`.
    fn auth_scheme(&self) -> Option<&'static str> {
        Some("Splunk")
    }

    fn secret_required(&self) -> Option<&'static str> {
        Some("splunk_hec needs the HEC token as its secret")
    }

    fn check(&self, webhook: &Webhook) -> Result<(), FieldError> {
        if webhook.headers.contains("authorization") {
            return Err(FieldError::new("headers.Authorization", "splunk_hec sets Authorization from the secret"));
        }
        Ok(())
    }

    /// HEC answers errors as JSON (`{"text": "Invalid token", "code": 4}`): the log shows its code.
    fn describe(&self, status: u16, body: &[u8]) -> String {
        describe_error(status, body).unwrap_or_else(|| super::describe_answer(status, body))
    }
}

/// The HEC event: the envelope as `event`, with the severity and the title as indexed `fields`
/// (searchable without extraction).
pub fn render(e: &EventView<'_>, p: &Presented, s: &RenderSettings) -> Vec<u8> {
    let quote = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let mut out = Vec::with_capacity(e.data.len() + 256);
    // Epoch seconds with milliseconds, as a JSON number.
    let time = format!("{}.{:03}", e.emitted_at.div_euclid(1000), e.emitted_at.rem_euclid(1000));
    out.extend_from_slice(
        format!("{{\"time\":{time},\"host\":{},\"source\":\"tocsin\",", quote(&s.hostname)).as_bytes(),
    );
    out.extend_from_slice(format!("\"sourcetype\":{},", quote(&format!("tocsin:{}", e.event_type))).as_bytes());
    if let Some(index) = &s.splunk_index {
        out.extend_from_slice(format!("\"index\":{},", quote(index)).as_bytes());
    }
    let fields = serde_json::json!({"severity": p.severity.name(), "title": p.title, "event": e.event_type});
    out.extend_from_slice(format!("\"fields\":{fields},").as_bytes());
    out.extend_from_slice(b"\"event\":");
    out.extend_from_slice(&envelope(e));
    out.push(b'}');
    out
}

/// Reads HEC's JSON error (`{"text": "Invalid token", "code": 4}`) for the delivery log.
fn describe_error(status: u16, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code")?.as_i64()?;
    let text = v.get("text").and_then(|t| t.as_str()).unwrap_or("");
    Some(format!("HTTP {status}: HEC code {code}: {text}"))
}
