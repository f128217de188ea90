//! Splunk HTTP Event Collector: `{"time", "host", "source", "sourcetype", "index"?, "event"}` with
//! the JSON envelope as the event.

use super::{json::envelope, EventView, RenderSettings};

pub fn render(e: &EventView<'_>, s: &RenderSettings) -> Vec<u8> {
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
    out.extend_from_slice(b"\"event\":");
    out.extend_from_slice(&envelope(e));
    out.push(b'}');
    out
}

/// Reads HEC's JSON error (`{"text": "Invalid token", "code": 4}`) for the delivery log.
pub fn describe_error(status: u16, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code")?.as_i64()?;
    let text = v.get("text").and_then(|t| t.as_str()).unwrap_or("");
    Some(format!("HTTP {status}: HEC code {code}: {text}"))
}
