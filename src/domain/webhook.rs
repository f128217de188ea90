//! A webhook: where events go, which ones, in what format, and how hard to try.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::{HeaderName, HeaderValue, Uri};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event_type::EventTypePattern;
use super::filter::{EventFilter, FilterContext, PayloadFilter};
use super::severity::Severity;
use super::tenant::TenantId;
use super::text::is_free_text;
use super::FieldError;

/// An `http(s)://` or `syslog+udp|tcp|tls://` destination with a host and no credentials in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    uri: Uri,
}

/// How a destination is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Http,
    /// RFC 5426: one message per datagram.
    SyslogUdp,
    /// RFC 6587 octet counting over TCP.
    SyslogTcp,
    /// RFC 5425: octet counting over TLS.
    SyslogTls,
}

impl TransportKind {
    pub fn is_syslog(self) -> bool {
        self != Self::Http
    }
}

impl WebhookUrl {
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new(field, m);
        if raw.len() > 2048 {
            return Err(err("must be at most 2048 characters"));
        }
        let uri: Uri = raw.parse().map_err(|_| err("is not a valid URL"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") | Some("syslog+udp") | Some("syslog+tcp") | Some("syslog+tls") => {}
            Some(_) => return Err(err("scheme must be http, https, syslog+udp, syslog+tcp or syslog+tls")),
            None => return Err(err("must be an absolute URL such as https://… or syslog+tcp://host:601")),
        }
        let authority = uri.authority().ok_or_else(|| err("must include a host"))?;
        if authority.as_str().contains('@') {
            return Err(err("must not carry credentials; use a custom header instead"));
        }
        if authority.host().is_empty() {
            return Err(err("must include a host"));
        }
        let url = Self { uri };
        if url.transport().is_syslog() && (!matches!(url.uri.path(), "" | "/") || url.uri.query().is_some()) {
            return Err(err("a syslog destination is host:port only, without a path"));
        }
        Ok(url)
    }

    pub fn transport(&self) -> TransportKind {
        match self.uri.scheme_str() {
            Some("syslog+udp") => TransportKind::SyslogUdp,
            Some("syslog+tcp") => TransportKind::SyslogTcp,
            Some("syslog+tls") => TransportKind::SyslogTls,
            _ => TransportKind::Http,
        }
    }

    pub fn as_str(&self) -> String {
        self.uri.to_string()
    }

    /// The URL as someone who may not see credentials sees it: scheme, host, port and the first
    /// path segment; later segments (where Slack, Teams and automation services put their
    /// tokens) and every query value (`?token=…`, `sig=…`) become `…`.
    pub fn masked(&self) -> String {
        let mut out = format!(
            "{}://{}",
            self.uri.scheme_str().unwrap_or_default(),
            self.uri.authority().map_or("", |a| a.as_str())
        );
        let mut segments = self.uri.path().split('/').filter(|s| !s.is_empty());
        if let Some(first) = segments.next() {
            out.push('/');
            out.push_str(first);
        }
        if segments.next().is_some() {
            out.push_str("/…");
        }
        if let Some(query) = self.uri.query() {
            let keys: Vec<String> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| format!("{}=…", p.split_once('=').map_or(p, |(k, _)| k)))
                .collect();
            out.push('?');
            out.push_str(&keys.join("&"));
        }
        out
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The host without IPv6 brackets.
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']')
    }

    /// The host when it is an IP address literal.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.host().parse().ok()
    }

    pub fn port(&self) -> u16 {
        self.uri.port_u16().unwrap_or(match self.uri.scheme_str() {
            Some("https") => 443,
            Some("syslog+udp") => 514,
            Some("syslog+tcp") => 601,
            Some("syslog+tls") => 6514,
            _ => 80,
        })
    }
}

/// The name of the format a webhook's deliveries are rendered in (`json`, `slack`, …). The
/// formats, and the list of those that exist, live in `destinations`: a `Format` is only made
/// from that list, so every one names a format that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Format(&'static str);

impl Format {
    /// For the destinations' registry only.
    pub(crate) const fn named(name: &'static str) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Request headers the user adds to every delivery of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomHeaders(BTreeMap<String, String>);

/// Headers the service sets itself or that would break the request.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

pub const MAX_CUSTOM_HEADERS: usize = 20;

impl CustomHeaders {
    /// `own_prefix` is the service's header prefix (`X-Tocsin`): names under it are reserved, as
    /// are those `reserved` (given a lower-case name) says the tenant's profile sets.
    pub fn parse(
        raw: &BTreeMap<String, String>,
        own_prefix: &str,
        reserved: impl Fn(&str) -> bool,
    ) -> Result<Self, FieldError> {
        if raw.len() > MAX_CUSTOM_HEADERS {
            return Err(FieldError::new("headers", format!("at most {MAX_CUSTOM_HEADERS} custom headers")));
        }
        let own_prefix = format!("{}-", own_prefix.to_ascii_lowercase());
        let mut out = BTreeMap::new();
        for (name, value) in raw {
            let field = format!("headers.{name}");
            let valid = HeaderName::from_bytes(name.as_bytes()).is_ok() && !name.is_empty() && name.len() <= 128;
            if !valid {
                return Err(FieldError::new(field, "is not a valid header name (an HTTP token)"));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str())
                || reserved(&lower)
                || lower.starts_with(&own_prefix)
                || lower.starts_with("proxy-")
            {
                return Err(FieldError::new(field, "is reserved: the service sets this header itself"));
            }
            if value.contains(['\r', '\n', '\0']) {
                return Err(FieldError::new(field, "value must not contain CR, LF or NUL"));
            }
            if value.len() > 4096 || HeaderValue::from_str(value).is_err() {
                return Err(FieldError::new(field, "value must be at most 4096 visible characters"));
            }
            if out.keys().any(|k: &String| k.eq_ignore_ascii_case(name)) {
                return Err(FieldError::new(field, "is given twice"));
            }
            out.insert(name.clone(), value.clone());
        }
        Ok(Self(out))
    }

    /// Headers read back from the store (they were validated when they were stored).
    pub fn from_stored(headers: BTreeMap<String, String>) -> Self {
        Self(headers)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.keys().any(|k| k.eq_ignore_ascii_case(name))
    }

    /// Names with masked values: header values often carry credentials.
    pub fn masked(&self) -> BTreeMap<String, String> {
        self.0.keys().map(|k| (k.clone(), "********".to_string())).collect()
    }
}

pub const RETRY_COUNT_MAX: i64 = 10;
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<i64> = 1000..=30_000;

pub fn parse_retry_count(v: i64) -> Result<u32, FieldError> {
    if (0..=RETRY_COUNT_MAX).contains(&v) {
        Ok(v as u32)
    } else {
        Err(FieldError::new("retry_count", "must be between 0 and 10"))
    }
}

pub fn parse_timeout_ms(v: i64) -> Result<u32, FieldError> {
    if TIMEOUT_MS_RANGE.contains(&v) {
        Ok(v as u32)
    } else {
        Err(FieldError::new("timeout_ms", "must be between 1000 and 30000"))
    }
}

pub fn parse_retry_delays(v: &[i64]) -> Result<Vec<u64>, FieldError> {
    if v.is_empty() || v.len() > 20 {
        return Err(FieldError::new("retry_delays_ms", "must list 1 to 20 delays"));
    }
    v.iter()
        .enumerate()
        .map(|(i, d)| {
            if (0..=86_400_000).contains(d) {
                Ok(*d as u64)
            } else {
                Err(FieldError::new(format!("retry_delays_ms[{i}]"), "must be between 0 and 86400000 ms"))
            }
        })
        .collect()
}

pub fn parse_max_per_second(v: i64) -> Result<u32, FieldError> {
    if (1..=100_000).contains(&v) {
        Ok(v as u32)
    } else {
        Err(FieldError::new("max_per_second", "must be between 1 and 100000"))
    }
}

pub fn parse_name(v: &str) -> Result<String, FieldError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(FieldError::new("name", "enter a name (up to 200 characters)"));
    }
    if v.chars().count() > 200 || v.chars().any(char::is_control) {
        return Err(FieldError::new("name", "must be 1 to 200 characters without control characters"));
    }
    Ok(v.to_string())
}

pub fn parse_description(v: &str) -> Result<String, FieldError> {
    if v.chars().count() > 2000 || !is_free_text(v) {
        return Err(FieldError::new(
            "description",
            "must be at most 2000 characters, without control characters other than line breaks and tabs",
        ));
    }
    Ok(v.to_string())
}

pub fn parse_owner_email(v: &str) -> Result<String, FieldError> {
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_string())
    } else {
        Err(FieldError::new("owner_email", "is not an email address"))
    }
}

/// Why a webhook stopped receiving deliveries.
pub mod disabled_reason {
    pub const MANUAL: &str = "manual";
    pub const GONE: &str = "gone";
    pub const FAILURES: &str = "consecutive_failures";
}

/// A stored webhook. Secrets stay sealed here; they are opened only to sign.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    pub url: WebhookUrl,
    pub description: Option<String>,
    pub event_types: Vec<EventTypePattern>,
    pub format: Format,
    pub retry_count: u32,
    pub timeout_ms: u32,
    pub retry_delays_ms: Option<Vec<u64>>,
    pub headers: CustomHeaders,
    pub is_active: bool,
    pub failure_count: u32,
    pub disabled_reason: Option<String>,
    /// The circuit breaker: open until then (Unix ms); `None` while closed.
    pub circuit_open_until: Option<i64>,
    /// Openings in a row (the cool-down doubles with each); 0 once a delivery succeeds.
    pub circuit_opens: u32,
    /// Since when every counted attempt failed (Unix ms); `None` while healthy.
    pub failing_since: Option<i64>,
    pub max_per_second: Option<u32>,
    pub owner_email: Option<String>,
    /// Events less severe than this are not delivered to it.
    pub min_severity: Option<Severity>,
    /// Only events this expression accepts are delivered to it.
    pub filter: Option<EventFilter>,
    /// Whether its endpoint proved to be its owner's (see [`Verification`]).
    pub verification: Verification,
    /// How deliveries are signed: with the shared secret (HMAC), or with a private key whose
    /// public half receivers hold (Ed25519). Chosen at creation.
    pub signing_algorithm: SigningAlgorithm,
    pub secret: SealedSecrets,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Endpoint ownership: a webhook that must prove it (`TOCSIN_VERIFY_ENDPOINTS`, or `"verify":
/// true`) gets a signed challenge, which its endpoint answers; until then it is `Pending` and its
/// deliveries are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Not asked for.
    #[default]
    NotRequired,
    /// Asked for, not answered yet: deliveries are held.
    Pending,
    Verified,
    /// A SIEM transport (syslog, Splunk HEC), which cannot answer a challenge.
    Exempt,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRequired => "not_required",
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Exempt => "exempt",
        }
    }

    pub fn from_stored(raw: &str) -> Self {
        match raw {
            "pending" => Self::Pending,
            "verified" => Self::Verified,
            "exempt" => Self::Exempt,
            _ => Self::NotRequired,
        }
    }
}

/// Why a webhook is inactive when its endpoint has not proved its ownership yet.
pub const UNVERIFIED: &str = "unverified";

/// How a webhook's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 with the shared secret: the seed-style header and Standard Webhooks `v1`.
    #[default]
    HmacSha256,
    /// Ed25519 with a private key only Tocsin holds: Standard Webhooks `v1a`, verified with the
    /// public key (`whpk_…`) anyone may have.
    Ed25519,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::Ed25519 => "ed25519",
        }
    }

    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        match raw {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "ed25519" => Ok(Self::Ed25519),
            _ => Err(FieldError::new(field, "must be hmac-sha256 or ed25519")),
        }
    }
}

/// The current secret and, during a rotation's grace period, the previous one.
#[derive(Clone, Default)]
pub struct SealedSecrets {
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
    /// Unix ms after which `previous` no longer signs.
    pub previous_expires_at: Option<i64>,
    /// Unix ms when `current` was set.
    pub rotated_at: i64,
    /// Ed25519: the current key's public half (`whpk_…`), kept beside the sealed private key so
    /// that reads need not unseal it.
    pub public_key: Option<String>,
}

impl SealedSecrets {
    /// Whether the webhook has no secret (its profile made signing optional and it was given
    /// none): then `current` is empty, and its deliveries are unsigned.
    pub fn is_unsigned(&self) -> bool {
        self.current.is_empty()
    }
}

impl std::fmt::Debug for SealedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecrets").field("rotated_at", &self.rotated_at).finish_non_exhaustive()
    }
}

/// How a webhook is doing, as people are shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    /// Its circuit has opened: deliveries wait while it cools down, then a probe is sent.
    Failing,
    /// Deactivated (by a person, a 410, or failing for `TOCSIN_DISABLE_AFTER`).
    Disabled,
}

impl Webhook {
    pub fn health(&self) -> Health {
        if !self.is_active {
            Health::Disabled
        } else if self.circuit_open_until.is_some() {
            Health::Failing
        } else {
            Health::Healthy
        }
    }

    /// The circuit is open at `now`: nothing is sent to the webhook until it has cooled down.
    pub fn circuit_open_at(&self, now: i64) -> bool {
        self.circuit_open_until.is_some_and(|until| until > now)
    }

    /// The circuit has cooled down but not closed: one probe at a time decides.
    pub fn half_open_at(&self, now: i64) -> bool {
        self.circuit_open_until.is_some_and(|until| until <= now)
    }

    pub fn subscribes_to(&self, event: &str) -> bool {
        self.event_types.iter().any(|p| p.matches(event))
    }

    /// Whether it has a payload filter (`min_severity` or `filter`): then each event it
    /// subscribes to is checked with [`Webhook::accepts`].
    pub fn filters(&self) -> bool {
        self.min_severity.is_some() || self.filter.is_some()
    }

    /// Whether an event it subscribes to passes its payload filters.
    pub fn accepts(&self, severity: Severity, context: &FilterContext) -> bool {
        PayloadFilter { min_severity: self.min_severity, filter: self.filter.as_ref() }.passes(severity, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(WebhookUrl::parse("https://hooks.slack.com/services/T00/B00/xxx", "url").is_ok());
        assert_eq!(WebhookUrl::parse("http://[::1]:9000/x", "url").unwrap().literal_ip(), Some("::1".parse().unwrap()));
        let s = WebhookUrl::parse("syslog+tls://siem.example:6514", "url").unwrap();
        assert_eq!((s.transport(), s.port()), (TransportKind::SyslogTls, 6514));
        assert_eq!(WebhookUrl::parse("syslog+udp://10.0.0.5", "url").unwrap().port(), 514);
        for bad in ["ftp://x/", "/relative", "https://user:pw@host/", "not a url", "http://", "syslog+tcp://h:601/path"]
        {
            assert!(WebhookUrl::parse(bad, "url").is_err(), "{bad}");
        }
    }

    #[test]
    fn masked_urls_keep_where_they_point_and_hide_tokens() {
        let m = |raw: &str| WebhookUrl::parse(raw, "url").unwrap().masked();
        assert_eq!(
            m("https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
            "https://hooks.slack.com/services/…"
        );
        assert_eq!(
            m("https://siem.example.com:8443/hook?token=hunter2&tenant=a"),
            "https://siem.example.com:8443/hook?token=…&tenant=…"
        );
        assert_eq!(m("https://siem.example.com/"), "https://siem.example.com");
        assert_eq!(m("syslog+tls://siem.example:6514"), "syslog+tls://siem.example:6514");
    }

    #[test]
    fn headers() {
        let h = |k: &str, v: &str| {
            CustomHeaders::parse(&BTreeMap::from([(k.to_string(), v.to_string())]), "X-Tocsin", |_| false)
        };
        assert!(h("Authorization", "Bearer abc").is_ok());
        for (k, v) in
            [("Host", "x"), ("Content-Type", "x"), ("X-Tocsin-Signature", "x"), ("bad name", "x"), ("X-A", "a\r\nb")]
        {
            assert!(h(k, v).is_err(), "{k}");
        }
        assert_eq!(h("X-Api-Key", "secret").unwrap().masked()["X-Api-Key"], "********");
    }
}
