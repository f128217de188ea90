//! `splunk_hec_ocsf`: the OCSF object ([`super::event`]) as the `event` of a Splunk HTTP Event
//! Collector request (the shared HEC frame), sourcetype `ocsf:<class>` (`ocsf:detection_finding`).

use super::event::ocsf_event;
use crate::destinations::{hec, Destination, EventView, RenderSettings, Rendered};
use crate::domain::webhook::Webhook;
use crate::domain::FieldError;

pub struct SplunkHecOcsf;

impl Destination for SplunkHecOcsf {
    fn name(&self) -> &'static str {
        "splunk_hec_ocsf"
    }

    fn render(&self, event: &EventView<'_>, presentation: Option<&serde_json::Value>, s: &RenderSettings, _: bool) -> Rendered {
        let mapped = ocsf_event(event, presentation, s);
        let sourcetype = format!("ocsf:{}", mapped.class.name());
        let body = hec::hec_event(event, &mapped.presented, s, &sourcetype, mapped.body.to_string().as_bytes());
        Rendered { body, content_type: "application/json" }
    }

    fn auth_scheme(&self) -> Option<&'static str> {
        Some(hec::AUTH_SCHEME)
    }

    fn secret_required(&self) -> Option<&'static str> {
        Some("splunk_hec_ocsf needs the HEC token as its secret")
    }

    fn check(&self, webhook: &Webhook) -> Result<(), FieldError> {
        hec::check(self.name(), webhook)
    }

    fn describe(&self, status: u16, body: &[u8]) -> String {
        hec::describe(status, body)
    }
}
