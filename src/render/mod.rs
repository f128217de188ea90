//! Turning an event into the bytes a destination expects. Each format is a renderer; the
//! dispatcher signs and sends whatever the renderer produced.

pub mod json;

use crate::domain::webhook::Format;

/// What a renderer needs to know about one event.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub event_type: &'a str,
    pub event_ref: &'a str,
    pub tenant_id: &'a str,
    /// The `data` object exactly as published (raw JSON).
    pub data: &'a [u8],
    /// Unix ms of this dispatch (the envelope's `emitted_at`).
    pub emitted_at: i64,
}

/// A rendered request body.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Renders `event` in `format`. Formats other than `json` use the JSON envelope until their
/// own renderers exist.
pub fn render(format: Format, event: &EventView<'_>) -> Rendered {
    match format {
        Format::Json | Format::Slack | Format::Teams | Format::Cef | Format::Syslog | Format::SplunkHec => {
            Rendered { body: json::envelope(event), content_type: "application/json" }
        }
    }
}
