//! The OCSF formats: each event as an OCSF object ([`event`]). `ocsf` sends it as the body over
//! HTTP, or as the MSG of an RFC 5424 message over a syslog transport; `splunk_hec_ocsf`
//! ([`hec`]) as the event of a Splunk HEC request.

mod event;
mod hec;

pub use event::{ocsf_event, Mapped, OcsfClass, OCSF_VERSION};
pub use hec::SplunkHecOcsf;

use super::{rfc5424, Destination, EventView, RenderSettings, Rendered};

pub struct Ocsf;

impl Destination for Ocsf {
    fn name(&self) -> &'static str {
        "ocsf"
    }

    fn carried_by_syslog(&self) -> bool {
        true
    }

    fn render(
        &self,
        event: &EventView<'_>,
        presentation: Option<&serde_json::Value>,
        settings: &RenderSettings,
        over_syslog: bool,
    ) -> Rendered {
        let mapped = ocsf_event(event, presentation, settings);
        let json = mapped.body.to_string();
        if over_syslog {
            let message = rfc5424::message(event, mapped.presented.severity, settings, &json);
            Rendered { body: message.into_bytes(), content_type: "text/plain; charset=utf-8" }
        } else {
            Rendered { body: json.into_bytes(), content_type: "application/json" }
        }
    }
}
