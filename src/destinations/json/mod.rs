//! `json`: the envelope itself, as the generic webhook receivers of the seed products expect it.

use super::{envelope, Destination, EventView, RenderSettings, Rendered};

pub struct Json;

impl Destination for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn uses_presentation(&self) -> bool {
        false
    }

    fn render(&self, event: &EventView<'_>, _: Option<&serde_json::Value>, _: &RenderSettings, _: bool) -> Rendered {
        Rendered { body: envelope::envelope(event), content_type: "application/json" }
    }
}
