//! Slack incoming-webhook messages: a `text` fallback and Block Kit blocks (header, severity and
//! summary, fields, context), always within Slack's documented limits.

use serde_json::{json, Value};

use super::presentation::{present_raw, Presented, Severity};
use super::{Destination, EventView, RenderSettings, Rendered, Verdict};
use crate::domain::text::clip_chars;
use crate::domain::time::rfc3339_secs;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_HEADER: usize = 150;
pub const MAX_SECTION: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD: usize = 2000;
/// The text of all blocks together, at most: Slack's own cap is undocumented (a message of about
/// 11 000 characters was refused); this leaves room for the context block and a note.
pub const BLOCKS_TEXT_BUDGET: usize = 8000;

fn chars(s: &str) -> usize {
    s.chars().count()
}

pub struct Slack;

impl Destination for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    /// Incoming webhooks take about one message a second.
    fn default_max_per_second(&self) -> Option<u32> {
        Some(1)
    }

    /// Slack answers `400 invalid_payload` (retrying cannot help) and `404 no_service` or 410
    /// for a removed webhook.
    fn classify(&self, status: u16, body: &[u8]) -> Verdict {
        match status {
            404 if String::from_utf8_lossy(body).contains("no_service") => Verdict::Gone,
            400 => Verdict::Permanent,
            _ => Verdict::of_status(status),
        }
    }

    fn render(&self, event: &EventView<'_>, presentation: Option<&Value>, _: &RenderSettings, _: bool) -> Rendered {
        let (_, p) = present_raw(event, presentation);
        Rendered { body: render(event, &p), content_type: "application/json" }
    }
}

fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => ":information_source:",
        Severity::Low => ":large_blue_circle:",
        Severity::Medium => ":large_yellow_circle:",
        Severity::High => ":large_orange_circle:",
        Severity::Critical => ":red_circle:",
    }
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn mrkdwn(text: String, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": clip_chars(&text, max)})
}

pub fn render(e: &EventView<'_>, p: &Presented) -> Vec<u8> {
    let sev = p.severity;
    let fallback = clip_chars(&format!("[{}] {}", sev.name().to_uppercase(), p.title), MAX_SECTION);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip_chars(&p.title, MAX_HEADER), "emoji": true}
    })];
    let mut lead = format!("{} *{}* · `{}`", emoji(sev), sev.name().to_uppercase(), escape(e.event_type));
    if let Some(summary) = &p.summary {
        lead.push('\n');
        lead.push_str(&escape(summary));
    }
    let lead_chars = chars(&lead).min(MAX_SECTION);
    blocks.push(json!({"type": "section", "text": mrkdwn(lead, MAX_SECTION)}));
    // Fields in sections of ten, within the blocks' room and a budget for the text of all blocks
    // together: Slack refuses a message whose blocks hold too much text (`msg_blocks_too_long`,
    // seen at about 11 000 characters; the limit is not documented), and a refusal is not retried.
    let mut used = chars(&p.title).min(MAX_HEADER) + lead_chars;
    let room = MAX_BLOCKS - blocks.len() - 2;
    let (mut section, mut sections, mut shown) = (Vec::new(), 0, 0);
    for (k, v) in &p.facts {
        // Keep the value readable: the key is short, the value takes what is left.
        let text = clip_chars(&format!("*{}*\n{}", clip_chars(&escape(k), 100), escape(v)), MAX_FIELD);
        let starts_a_section = section.is_empty();
        if used + chars(&text) > BLOCKS_TEXT_BUDGET || (starts_a_section && sections == room) {
            break;
        }
        used += chars(&text);
        section.push(json!({"type": "mrkdwn", "text": text}));
        shown += 1;
        if section.len() == MAX_FIELDS {
            blocks.push(json!({"type": "section", "fields": std::mem::take(&mut section)}));
            sections += 1;
        }
    }
    if !section.is_empty() {
        blocks.push(json!({"type": "section", "fields": section}));
    }
    let left = p.facts.len() - shown;
    if left > 0 {
        blocks
            .push(json!({"type": "section", "text": mrkdwn(format!("_… {left} more fields not shown_"), MAX_SECTION)}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [mrkdwn(
            format!("Tenant `{}` · {} · ref `{}`", escape(e.tenant_id), rfc3339_secs(e.emitted_at), escape(e.event_ref)),
            MAX_SECTION
        )]
    }));
    serde_json::to_vec(&json!({"text": fallback, "blocks": blocks})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::presentation::present;

    #[test]
    fn a_huge_event_is_cut_to_fit_never_refused() {
        let data: serde_json::Map<String, Value> =
            (0..120).map(|i| (format!("field_{i}"), Value::from("x".repeat(1500)))).collect();
        let data = Value::Object(data);
        let p = present("alert.created", &data, None);
        let raw = data.to_string();
        let view = EventView { event_type: "alert.created", event_ref: "r", tenant_id: "t", data: raw.as_bytes(), emitted_at: 0, shape: crate::profile::BodyShape::tocsin() };
        let body: Value = serde_json::from_slice(&render(&view, &p)).unwrap();
        let blocks = body["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        let mut texts = Vec::new();
        fn collect<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(t)) = m.get("text") {
                        out.push(t);
                    }
                    m.values().for_each(|x| collect(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
                _ => {}
            }
        }
        let all = Value::Array(blocks.clone());
        collect(&all, &mut texts);
        let total: usize = texts.iter().map(|t| t.chars().count()).sum();
        assert!(total <= 9000, "{total} characters in the blocks");
        assert!(texts.iter().any(|t| t.contains("more fields not shown")), "the cut is said");
    }
}
