//! `syslog`: an RFC 5424 message whose MSG is the JSON envelope, for syslog receivers that parse
//! JSON (rsyslog's mmjsonparse, syslog-ng's json-parser).

use super::presentation::present_raw;
use super::{envelope, rfc5424, Destination, EventView, RenderSettings, Rendered};

pub struct Syslog;

impl Destination for Syslog {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn carried_by_syslog(&self) -> bool {
        true
    }

    fn render(
        &self,
        event: &EventView<'_>,
        presentation: Option<&serde_json::Value>,
        settings: &RenderSettings,
        _over_syslog: bool,
    ) -> Rendered {
        let (_, p) = present_raw(event, presentation);
        let envelope = String::from_utf8_lossy(&envelope::envelope(event)).into_owned();
        let message = rfc5424::message(event, p.severity, settings, &envelope);
        Rendered { body: message.into_bytes(), content_type: "text/plain; charset=utf-8" }
    }
}
