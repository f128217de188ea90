//! Splunk HTTP Event Collector: the JSON envelope as the HEC event, sourcetype
//! `tocsin:<event type>` (the frame is [`super::hec`]).

use super::envelope::envelope;
use super::presentation::{present_raw, Presented};
use super::{hec, Destination, EventView, RenderSettings, Rendered};
use crate::domain::webhook::Webhook;
use crate::domain::FieldError;

pub struct SplunkHec;

impl Destination for SplunkHec {
    fn name(&self) -> &'static str {
        "splunk_hec"
    }

    fn render(&self, event: &EventView<'_>, presentation: Option<&serde_json::Value>, s: &RenderSettings, _: bool) -> Rendered {
        let (_, p) = present_raw(event, presentation);
        Rendered { body: render(event, &p, s), content_type: "application/json" }
    }

    fn auth_scheme(&self) -> Option<&'static str> {
        Some(hec::AUTH_SCHEME)
    }

    fn secret_required(&self) -> Option<&'static str> {
        Some("splunk_hec needs the HEC token as its secret")
    }

    fn check(&self, webhook: &Webhook) -> Result<(), FieldError> {
        hec::check(self.name(), webhook)
    }

    fn describe(&self, status: u16, body: &[u8]) -> String {
        hec::describe(status, body)
    }
}

/// The HEC event: the envelope as `event`.
pub fn render(e: &EventView<'_>, p: &Presented, s: &RenderSettings) -> Vec<u8> {
    hec::hec_event(e, p, s, &format!("tocsin:{}", e.event_type), &envelope(e))
}
