//! The generic JSON envelope of the PhishNet brief:
//! `{"event", "emitted_at", "event_ref", "tenant_id", "data"}`, with `data` spliced in byte for
//! byte as it was published (key order and number formatting preserved).

use super::EventView;
use crate::domain::time::rfc3339_ms;

pub fn envelope(e: &EventView<'_>) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = Vec::with_capacity(e.data.len() + 160);
    out.extend_from_slice(b"{\"event\":");
    out.extend_from_slice(quote(e.event_type).as_bytes());
    out.extend_from_slice(b",\"emitted_at\":");
    out.extend_from_slice(quote(&rfc3339_ms(e.emitted_at)).as_bytes());
    out.extend_from_slice(b",\"event_ref\":");
    out.extend_from_slice(quote(e.event_ref).as_bytes());
    out.extend_from_slice(b",\"tenant_id\":");
    out.extend_from_slice(quote(e.tenant_id).as_bytes());
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(e.data);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_valid_json_with_data_verbatim() {
        let data = br#"{"z":1,"a":"\u00e9","n":1.50}"#;
        let body = envelope(&EventView {
            event_type: "email.quarantined",
            event_ref: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            tenant_id: "default",
            data,
            emitted_at: 1_778_250_645_000,
        });
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.ends_with(r#""data":{"z":1,"a":"\u00e9","n":1.50}}"#), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event"], "email.quarantined");
        assert_eq!(v["emitted_at"], "2026-05-08T14:30:45Z");
        assert_eq!(v["tenant_id"], "default");
    }
}
