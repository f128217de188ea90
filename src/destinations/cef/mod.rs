//! ArcSight Common Event Format:
//! `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//!
//! Header fields escape `\` and `|` and never contain a line break; extension values escape `\`,
//! `=` and line breaks (`\n`, `\r`). Every field is cut to its documented maximum on a character
//! boundary. `rt` is epoch milliseconds; `externalId` is the event_ref.

use serde_json::{Map, Value};

use super::presentation::{lookup, present_raw, text_of, Presented, Severity};
use super::{rfc5424, Destination, EventView, RenderSettings, Rendered};
use crate::domain::text::clip_chars;

pub struct Cef;

impl Destination for Cef {
    fn name(&self) -> &'static str {
        "cef"
    }

    fn carried_by_syslog(&self) -> bool {
        true
    }

    /// A CEF line; over a syslog transport, the MSG of an RFC 5424 message.
    fn render(
        &self,
        event: &EventView<'_>,
        presentation: Option<&Value>,
        settings: &RenderSettings,
        over_syslog: bool,
    ) -> Rendered {
        let (data, p) = present_raw(event, presentation);
        let mut fields = cef_fields(presentation.and_then(|c| c.get("cef")).and_then(Value::as_object), &data);
        fields.extend(data_fields(&data, &fields));
        let line = render(event, &p, &fields, settings);
        let body = if over_syslog { rfc5424::message(event, p.severity, settings, &line) } else { line };
        Rendered { body: body.into_bytes(), content_type: "text/plain; charset=utf-8" }
    }
}

/// CEF severity 0–10 (0–3 low, 4–6 medium, 7–8 high, 9–10 very high).
fn severity_code(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// A CEF extension key filled from a field of the data.
#[derive(Debug, Clone, PartialEq)]
pub struct CefField {
    pub key: String,
    pub value: String,
    /// For `csN`: the label (`csNLabel`).
    pub label: Option<String>,
}

/// Standard CEF keys a presentation may fill (custom strings cs1–cs6 take a label).
const CEF_KEYS: &[&str] = &[
    "src", "dst", "spt", "dpt", "shost", "dhost", "suser", "duser", "msg", "act", "outcome", "request", "cat", "fname",
    "app", "proto", "reason", "cs1", "cs2", "cs3", "cs4", "cs5", "cs6",
];

/// The extension fields an event type's `presentation.cef` maps from its data.
fn cef_fields(config: Option<&Map<String, Value>>, data: &Value) -> Vec<CefField> {
    let Some(cfg) = config else { return Vec::new() };
    let mut out = Vec::new();
    for (key, spec) in cfg {
        if !CEF_KEYS.contains(&key.as_str()) {
            continue;
        }
        let (field, label) = match spec {
            Value::String(f) => (f.as_str(), None),
            Value::Object(o) => (
                o.get("field").and_then(Value::as_str).unwrap_or_default(),
                o.get("label").and_then(Value::as_str).map(String::from),
            ),
            _ => continue,
        };
        if let Some(v) = lookup(data, field).map(text_of).filter(|v| !v.is_empty()) {
            let label = label.or_else(|| key.starts_with("cs").then(|| field.to_string()));
            out.push(CefField { key: key.clone(), value: v, label });
        }
    }
    out
}



fn header(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    clip_chars(&flat, max).replace('\\', "\\\\").replace('|', "\\|")
}

fn ext_value(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clip_chars(s, max).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Custom string keys the data fills (cs6 carries the tenant), and custom number keys.
const STRING_SLOTS: [&str; 4] = ["cs1", "cs2", "cs3", "cs4"];
const NUMBER_SLOTS: [&str; 3] = ["cn1", "cn2", "cn3"];
/// Where the rest of the data goes, as compact JSON (the first free of these).
const REST_SLOTS: [&str; 2] = ["cs5", "flexString1"];

/// Every field of the event's data, whatever its type's mapping says: scalars in the free custom
/// keys (labelled with the field's name; whole numbers in `cnN`, other scalars in `csN`), and
/// whatever does not fit, nested values included, as compact JSON in `cs5` (labelled `data`).
/// So a SIEM receives all of an event even when nobody mapped its type.
fn data_fields(data: &Value, mapped: &[CefField]) -> Vec<CefField> {
    let Some(object) = data.as_object() else { return Vec::new() };
    let free = |slots: &[&'static str]| -> Vec<&'static str> {
        slots.iter().copied().filter(|k| !mapped.iter().any(|f| f.key == *k)).collect()
    };
    let (mut strings, mut numbers) = (free(&STRING_SLOTS).into_iter(), free(&NUMBER_SLOTS).into_iter());
    let mut out = Vec::new();
    let mut rest = Map::new();
    for (name, value) in object {
        let slot = match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => numbers.next(),
            Value::String(_) | Value::Number(_) | Value::Bool(_) => strings.next(),
            _ => None,
        };
        match slot {
            Some(key) => out.push(CefField { key: key.into(), value: text_of(value), label: Some(name.clone()) }),
            None if !value.is_null() => {
                rest.insert(name.clone(), value.clone());
            }
            None => {}
        }
    }
    if let (false, Some(key)) = (rest.is_empty(), free(&REST_SLOTS).first()) {
        out.push(CefField { key: (*key).into(), value: Value::Object(rest).to_string(), label: Some("data".into()) });
    }
    out
}

/// The documented maximum length of an extension key's value.
fn max_len(key: &str) -> usize {
    match key {
        "act" | "outcome" | "app" | "proto" => 63,
        "externalId" => 40,
        "cs1" | "cs2" | "cs3" | "cs4" | "cs5" | "cs6" => 4000,
        "cn1" | "cn2" | "cn3" => 20,
        "src" | "dst" => 64,
        "spt" | "dpt" => 5,
        _ => 1023,
    }
}

/// One CEF line (no trailing newline).
pub fn render(e: &EventView<'_>, p: &Presented, fields: &[CefField], s: &RenderSettings) -> String {
    let mapped = |key: &str| fields.iter().any(|f| f.key == key);
    let mut ext: Vec<(String, String)> =
        vec![("rt".into(), e.emitted_at.to_string()), ("externalId".into(), e.event_ref.to_string())];
    // Defaults for what the event type's mapping leaves out.
    if !mapped("cat") {
        ext.push(("cat".into(), e.event_type.to_string()));
    }
    for f in fields {
        ext.push((f.key.clone(), f.value.clone()));
        if let Some(label) = &f.label {
            ext.push((format!("{}Label", f.key), label.clone()));
        }
    }
    if !mapped("msg") {
        ext.push(("msg".into(), p.summary.clone().unwrap_or_else(|| p.title.clone())));
    }
    if !mapped("cs6") {
        ext.push(("cs6Label".into(), "Tenant".into()));
        ext.push(("cs6".into(), e.tenant_id.to_string()));
    }
    let extension: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={}", ext_value(v, max_len(k)))).collect();
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        header(&s.cef_vendor, 63),
        header(&s.cef_product, 63),
        header(&s.cef_version, 31),
        header(e.event_type, 1023),
        header(&p.title, 512),
        severity_code(p.severity),
        extension.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_come_from_the_presentation_mapping() {
        let cfg = json!({"suser": "sender.email", "cs1": {"label": "Scan", "field": "scan_id"}, "bogus": "x"});
        let data = json!({"subject": "S", "sender": {"email": "a@b"}, "scan_id": "42"});
        let fields = cef_fields(cfg.as_object(), &data);
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0], CefField { key: "cs1".into(), value: "42".into(), label: Some("Scan".into()) });
    }
}
