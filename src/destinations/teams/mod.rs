//! Microsoft Teams: the Workflows-compatible message carrying an Adaptive Card 1.4 with a
//! FactSet, kept under Teams' 28 KB limit.

use serde_json::{json, Value};

use super::presentation::{present_raw, Presented, Severity};
use super::{Destination, EventView, RenderSettings, Rendered};
use crate::domain::text::clip_chars;
use crate::domain::time::rfc3339_secs;

pub struct Teams;

impl Destination for Teams {
    fn name(&self) -> &'static str {
        "teams"
    }

    fn render(&self, event: &EventView<'_>, presentation: Option<&Value>, _: &RenderSettings, _: bool) -> Rendered {
        let (_, p) = present_raw(event, presentation);
        Rendered { body: render(event, &p), content_type: "application/json" }
    }
}

/// Adaptive Card text colour / container style.
fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Info | Severity::Low => "Good",
        Severity::Medium => "Warning",
        Severity::High | Severity::Critical => "Attention",
    }
}

/// Teams refuses larger payloads (413); stay safely below.
pub const MAX_BYTES: usize = 27 * 1024;

fn card(e: &EventView<'_>, p: &Presented, facts: &[(String, String)], value_max: usize, hidden: usize) -> Value {
    let sev = p.severity;
    let mut body = vec![
        json!({"type": "TextBlock", "text": clip_chars(&p.title, 512), "weight": "Bolder", "size": "Medium",
               "wrap": true, "color": colour(sev)}),
        json!({"type": "TextBlock", "text": format!("Severity: {} · {}", sev.name().to_uppercase(), e.event_type),
               "isSubtle": true, "wrap": true, "spacing": "None"}),
    ];
    if let Some(summary) = &p.summary {
        body.push(json!({"type": "TextBlock", "text": clip_chars(summary, 2000), "wrap": true}));
    }
    let mut fact_list: Vec<Value> =
        facts.iter().map(|(k, v)| json!({"title": clip_chars(k, 200), "value": clip_chars(v, value_max)})).collect();
    if hidden > 0 {
        fact_list.push(json!({"title": "…", "value": format!("{hidden} more fields not shown")}));
    }
    if !fact_list.is_empty() {
        body.push(json!({"type": "FactSet", "facts": fact_list}));
    }
    body.push(json!({"type": "TextBlock", "size": "Small", "isSubtle": true, "wrap": true,
        "text": format!("Tenant {} · {} · ref {}", e.tenant_id, rfc3339_secs(e.emitted_at), e.event_ref)}));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body
            }
        }]
    })
}

pub fn render(e: &EventView<'_>, p: &Presented) -> Vec<u8> {
    // Shrink long values first, then drop trailing facts, until the card fits.
    let mut value_max = 2000;
    let mut shown = p.facts.len();
    loop {
        let bytes =
            serde_json::to_vec(&card(e, p, &p.facts[..shown], value_max, p.facts.len() - shown)).unwrap_or_default();
        if bytes.len() <= MAX_BYTES || (value_max <= 64 && shown == 0) {
            return bytes;
        }
        if value_max > 64 {
            value_max /= 2;
        } else {
            shown = shown.saturating_sub((shown / 4).max(1));
        }
    }
}
