//! ArcSight Common Event Format:
//! `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
//!
//! Header fields escape `\` and `|` and never contain a line break; extension values escape `\`,
//! `=` and line breaks (`\n`, `\r`). Every field is cut to its documented maximum on a character
//! boundary. `rt` is epoch milliseconds; `externalId` is the event_ref.

use super::presentation::Presented;
use super::{EventView, RenderSettings};
use crate::domain::text::clip_chars;

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

/// The documented maximum length of an extension key's value.
fn max_len(key: &str) -> usize {
    match key {
        "act" | "outcome" | "app" | "proto" => 63,
        "externalId" => 40,
        "cs1" | "cs2" | "cs3" | "cs4" | "cs5" | "cs6" => 4000,
        "src" | "dst" => 64,
        "spt" | "dpt" => 5,
        _ => 1023,
    }
}

/// One CEF line (no trailing newline).
pub fn render(e: &EventView<'_>, p: &Presented, s: &RenderSettings) -> String {
    let mapped = |key: &str| p.cef.iter().any(|f| f.key == key);
    let mut ext: Vec<(String, String)> =
        vec![("rt".into(), e.emitted_at.to_string()), ("externalId".into(), e.event_ref.to_string())];
    // Defaults for what the event type's mapping leaves out.
    if !mapped("cat") {
        ext.push(("cat".into(), e.event_type.to_string()));
    }
    for f in &p.cef {
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
        p.severity.cef(),
        extension.join(" ")
    )
}
