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
    blocks.push(json!({"type": "section", "text": mrkdwn(lead, MAX_SECTION)}));
    // Fields in sections of ten; leave room for the context block (and a note when cut).
    let room = MAX_BLOCKS - blocks.len() - 2;
    let chunks: Vec<&[(String, String)]> = p.facts.chunks(MAX_FIELDS).collect();
    for chunk in chunks.iter().take(room) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(k, v)| {
                // Keep the value readable: the key is short, the value takes what is left.
                let key = clip_chars(&escape(k), 100);
                mrkdwn(format!("*{key}*\n{}", escape(v)), MAX_FIELD)
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if chunks.len() > room {
        let left: usize = chunks[room..].iter().map(|c| c.len()).sum();
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
