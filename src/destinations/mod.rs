//! Destination formats: how an event is turned into the bytes a receiver expects, and how the
//! receiver's answer is read. Each format is a folder beside this file with one type that
//! implements [`Destination`] (a folder may hold a family: `ocsf` and `splunk_hec_ocsf`),
//! registered by one line in [`registry!`] below; nothing else in
//! the program names a format. The delivery engine signs and sends whatever a format rendered,
//! over whichever transport the webhook's URL names.
//!
//! Shared by the formats: the JSON [`envelope`], the RFC 5424 frame ([`rfc5424`]), the Splunk
//! HEC frame ([`hec`]) and the [`presentation`] of an event (title, severity, summary, facts).

pub mod envelope;
pub mod hec;
pub mod presentation;
pub mod rfc5424;

use crate::domain::secret::Secret;
use crate::domain::webhook::{Format, Webhook};
use crate::domain::FieldError;
use crate::profile::BodyShape;

/// Declares the formats: their modules, and the list every lookup goes through. A folder may
/// hold a family of formats that share their rendering (`ocsf::Ocsf + SplunkHecOcsf`).
macro_rules! registry {
    ($($module:ident::$kind:ident $(+ $more:ident)*),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every format, the default (the first) first.
        static ALL: &[&dyn Destination] = &[$(&$module::$kind $(, &$module::$more)*),+];
    };
}

registry! {
    json::Json,
    slack::Slack,
    teams::Teams,
    cef::Cef,
    syslog::Syslog,
    splunk_hec::SplunkHec,
    ocsf::Ocsf + SplunkHecOcsf,
}

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
    /// The JSON body as the tenant's profile shapes it ([`BodyShape::tocsin`] by default).
    pub shape: &'a BodyShape,
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

/// How a receiver's answer steers what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Worth retrying on the schedule.
    Retry,
    /// Retrying cannot help (e.g. Slack's `invalid_payload`): fail now.
    Permanent,
    /// The destination is gone for good: deactivate the webhook.
    Gone,
}

impl Verdict {
    /// The reading of a plain HTTP status: 2xx success, 410 gone, anything else worth a retry.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Success,
            410 => Self::Gone,
            _ => Self::Retry,
        }
    }
}

/// One destination format: everything about it that differs from the others.
pub trait Destination: Send + Sync + 'static {
    /// The name webhooks choose it by (`format`), stored with them.
    fn name(&self) -> &'static str;

    /// Renders one event. `presentation` is the event type's presentation settings;
    /// `over_syslog`: the webhook's URL is a syslog transport.
    fn render(
        &self,
        event: &EventView<'_>,
        presentation: Option<&serde_json::Value>,
        settings: &RenderSettings,
        over_syslog: bool,
    ) -> Rendered;

    /// Whether rendering reads the event type's presentation (the delivery engine gathers the
    /// tenant's presentations only for the formats that do).
    fn uses_presentation(&self) -> bool {
        true
    }

    /// Whether it can be sent over a syslog transport (`syslog+udp|tcp|tls://`).
    fn carried_by_syslog(&self) -> bool {
        false
    }

    /// What an HTTP answer means for the delivery.
    fn classify(&self, status: u16, _body: &[u8]) -> Verdict {
        Verdict::of_status(status)
    }

    /// The delivery log's error for a non-2xx answer.
    fn describe(&self, status: u16, body: &[u8]) -> String {
        describe_answer(status, body)
    }

    /// Sends the secret as `Authorization: <scheme> <secret>` (and signs nothing else with it).
    fn auth_scheme(&self) -> Option<&'static str> {
        None
    }

    /// When a new webhook of this format must be given its secret: why.
    fn secret_required(&self) -> Option<&'static str> {
        None
    }

    /// Rules a webhook of this format must follow beyond the common ones.
    fn check(&self, _webhook: &Webhook) -> Result<(), FieldError> {
        Ok(())
    }

    /// Deliveries per second when the webhook sets no `max_per_second`.
    fn default_max_per_second(&self) -> Option<u32> {
        None
    }
}

/// The format's rules. A [`Format`] is only made from the registry, so every one is found; the
/// default is answered should a stored name ever not be.
pub fn of(format: Format) -> &'static dyn Destination {
    ALL.iter().copied().find(|d| d.name() == format.as_str()).unwrap_or(ALL[0])
}

/// Parses a format name given by a user (or read back from the store).
pub fn parse_format(raw: &str, field: &str) -> Result<Format, FieldError> {
    ALL.iter().find(|d| d.name() == raw).map(|d| Format::named(d.name())).ok_or_else(|| {
        FieldError::new(
            field,
            format!("must be one of {}", formats().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")),
        )
    })
}

/// Every format, the default first.
pub fn formats() -> impl Iterator<Item = Format> {
    ALL.iter().map(|d| Format::named(d.name()))
}

/// The format of a webhook that names none.
pub fn default_format() -> Format {
    Format::named(ALL[0].name())
}

/// The formats a syslog transport can carry, for messages.
pub fn syslog_formats() -> String {
    ALL.iter().filter(|d| d.carried_by_syslog()).map(|d| d.name()).collect::<Vec<_>>().join(" or ")
}

/// Renders `event` in `format` (see [`Destination::render`]).
pub fn render(
    format: Format,
    event: &EventView<'_>,
    presentation: Option<&serde_json::Value>,
    settings: &RenderSettings,
    over_syslog: bool,
) -> Rendered {
    of(format).render(event, presentation, settings, over_syslog)
}

/// The delivery log's error for a non-2xx answer: the status and the first line the receiver
/// said, without control characters.
pub fn describe_answer(status: u16, body: &[u8]) -> String {
    let said: String = String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    match (status, said.trim()) {
        (410, _) => "HTTP 410 Gone: the endpoint is gone; webhook deactivated".to_string(),
        (s, "") => format!("HTTP {s}"),
        (s, said) => format!("HTTP {s}: {said}"),
    }
}

/// A secret sent in `Authorization` by formats that ask for it.
pub fn authorization(destination: &dyn Destination, secret: &Secret) -> Option<String> {
    destination.auth_scheme().map(|scheme| format!("{scheme} {}", secret.expose()))
}
