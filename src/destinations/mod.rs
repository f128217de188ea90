//! Turning an event into the bytes a destination expects. Each format is a renderer; the
//! dispatcher signs and sends whatever the renderer produced, over whichever transport the
//! webhook's URL names.

pub mod cef;
pub mod json;
pub mod presentation;
pub mod slack;
pub mod splunk_hec;
pub mod syslog;
pub mod teams;

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

/// Deployment-wide rendering settings.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub cef_vendor: String,
    pub cef_product: String,
    pub cef_version: String,
    /// Syslog facility 0–23.
    pub syslog_facility: u8,
    /// HOSTNAME of syslog messages and `host` of Splunk events.
    pub hostname: String,
    pub splunk_index: Option<String>,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            cef_vendor: "Tocsin".into(),
            cef_product: "Tocsin".into(),
            cef_version: env!("CARGO_PKG_VERSION").into(),
            syslog_facility: 16,
            hostname: "tocsin".into(),
            splunk_index: None,
        }
    }
}

/// A rendered request body.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Renders `event` in `format`. `over_syslog`: the destination is a syslog transport, so CEF is
/// carried inside an RFC 5424 message.
pub fn render(
    format: Format,
    event: &EventView<'_>,
    presentation: Option<&serde_json::Value>,
    settings: &RenderSettings,
    over_syslog: bool,
) -> Rendered {
    if format == Format::Json {
        return Rendered { body: json::envelope(event), content_type: "application/json" };
    }
    let data: serde_json::Value = serde_json::from_slice(event.data).unwrap_or(serde_json::Value::Null);
    let p = presentation::present(event.event_type, &data, presentation);
    let header = syslog::SyslogHeader {
        facility: settings.syslog_facility,
        severity: p.severity.syslog(),
        hostname: &settings.hostname,
    };
    match format {
        Format::Json => unreachable!("handled above"),
        Format::Slack => Rendered { body: slack::render(event, &p), content_type: "application/json" },
        Format::Teams => Rendered { body: teams::render(event, &p), content_type: "application/json" },
        Format::SplunkHec => Rendered { body: splunk_hec::render(event, settings), content_type: "application/json" },
        Format::Cef => {
            let line = cef::render(event, &p, settings);
            let body = if over_syslog { syslog::render(event, &header, &line) } else { line };
            Rendered { body: body.into_bytes(), content_type: "text/plain; charset=utf-8" }
        }
        Format::Syslog => {
            let envelope = String::from_utf8_lossy(&json::envelope(event)).into_owned();
            Rendered {
                body: syslog::render(event, &header, &envelope).into_bytes(),
                content_type: "text/plain; charset=utf-8",
            }
        }
    }
}
