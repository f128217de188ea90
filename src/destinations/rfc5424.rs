//! RFC 5424 syslog messages, the frame of the `syslog` format and of CEF over syslog:
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [tocsin@32473 event_ref=… tenant=… event=…] MSG`.
//!
//! PRI is facility × 8 + the mapped severity. Header fields hold printable US-ASCII only and are
//! cut to their limits; SD-PARAM values escape `"`, `\` and `]`. MSG is the JSON envelope, or a
//! CEF line when the webhook asks for CEF over syslog.

use super::presentation::Severity;
use super::{EventView, RenderSettings};
use crate::domain::text::clip_chars;
use crate::domain::time::rfc3339_ms;

/// The SD-ID of Tocsin's element. 32473 is the private enterprise number reserved for
/// documentation and examples (RFC 5612); deployments with their own PEN can change it.
pub const SD_ID: &str = "tocsin@32473";

/// A header field: printable US-ASCII (33–126) only, at most `max` characters, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if clean.is_empty() {
        "-".into()
    } else {
        clean
    }
}

fn sd_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Syslog severity 0–7 (lower is more severe).
fn severity_code(severity: Severity) -> u16 {
    match severity {
        Severity::Info => 6,
        Severity::Low => 5,
        Severity::Medium => 4,
        Severity::High => 3,
        Severity::Critical => 2,
    }
}

/// A whole message around `msg`: facility and hostname from the settings, severity mapped.
pub fn message(e: &EventView<'_>, severity: Severity, settings: &RenderSettings, msg: &str) -> String {
    let pri = u16::from(settings.syslog_facility) * 8 + severity_code(severity);
    format!(
        "<{pri}>1 {ts} {host} tocsin - {msgid} [{SD_ID} event_ref=\"{r}\" tenant=\"{t}\" event=\"{ev}\" severity=\"{sev}\"] {msg}",
        ts = rfc3339_ms(e.emitted_at),
        host = header_field(&settings.hostname, 255),
        msgid = header_field(e.event_type, 32),
        r = sd_value(&clip_chars(e.event_ref, 256)),
        t = sd_value(e.tenant_id),
        ev = sd_value(e.event_type),
        sev = severity.name(),
    )
}
