//! Product profiles: a named product contract that a deployment, or one tenant of it, speaks.
//!
//! A profile is data, not code: `profiles/<name>/profile.toml` (body shape, header names, the
//! signature header and format, whether signing is optional, a new webhook's defaults, the retry
//! schedule and failure policy, the management API's routes and field names) beside its
//! `catalogue.toml`. Six ship in the binary (`tocsin`, the default, and the five seed products);
//! `TOCSIN_PROFILE_DIR` adds or replaces profiles from folders of the same form, so a vendor
//! writes a seventh by copying one. The delivery engine, the service and the API read a
//! [`Profile`]; none of them names a product.

mod file;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

use crate::catalogue::Catalogue;

/// The profile a deployment speaks when nothing chooses another.
pub const DEFAULT_PROFILE: &str = "tocsin";

/// The built-in profiles, as shipped in `profiles/`.
const EMBEDDED: &[(&str, &str)] = &[
    ("tocsin", include_str!("../../profiles/tocsin/profile.toml")),
    ("phishnet", include_str!("../../profiles/phishnet/profile.toml")),
    ("pentest", include_str!("../../profiles/pentest/profile.toml")),
    ("netrecon", include_str!("../../profiles/netrecon/profile.toml")),
    ("selki", include_str!("../../profiles/selki/profile.toml")),
    ("gophish", include_str!("../../profiles/gophish/profile.toml")),
];

/// One product contract, ready to use.
#[derive(Debug)]
pub struct Profile {
    pub name: String,
    pub product: String,
    pub description: String,
    /// The event types its tenants publish and subscribe to.
    pub catalogue: Arc<Catalogue>,
    pub body: BodyShape,
    pub headers: HeaderSpec,
    pub signature: SignatureSpec,
    pub webhooks: WebhookDefaults,
    pub failure: FailurePolicy,
    /// Its own management routes, when they differ from `/api/v1/webhooks`.
    pub api: Option<Dialect>,
    /// Fills `event_ref` from this field of `data` (and refuses a different one).
    pub event_ref_from: Option<String>,
}

/// What a delivery's body is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyShape {
    /// A JSON object of these keys, in this order.
    Envelope(Envelope),
    /// The event's `data`, byte for byte, is the whole body (Gophish).
    Data,
}

/// A value of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyValue {
    /// The event type's name.
    Event,
    EventRef,
    /// The dispatch time, RFC 3339 in UTC with milliseconds when there are any (Tocsin's).
    EmittedAt,
    /// The dispatch time, RFC 3339 in UTC to whole seconds (`2026-05-08T14:30:45Z`, the
    /// products' documents).
    EmittedAtSeconds,
    TenantId,
    /// The published `data`, byte for byte.
    Data,
}

/// The keys of an envelope and their values, each key kept as the JSON text that precedes its
/// value (`{"event":`, `,"data":`) so that rendering copies bytes instead of quoting keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    fields: Vec<(Vec<u8>, BodyValue)>,
}

impl Envelope {
    pub fn new(fields: &[(&str, BodyValue)]) -> Self {
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let mut lead = if i == 0 { b"{".to_vec() } else { b",".to_vec() };
                lead.extend_from_slice(serde_json::Value::from(*key).to_string().as_bytes());
                lead.push(b':');
                (lead, *value)
            })
            .collect();
        Self { fields }
    }

    /// Each value with the JSON text before it; the object closes after the last.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], BodyValue)> {
        self.fields.iter().map(|(lead, value)| (lead.as_slice(), *value))
    }
}

impl BodyShape {
    /// Tocsin's own envelope: `{"event", "emitted_at", "event_ref", "tenant_id", "data"}`.
    pub fn tocsin() -> &'static BodyShape {
        static SHAPE: std::sync::OnceLock<BodyShape> = std::sync::OnceLock::new();
        SHAPE.get_or_init(|| {
            BodyShape::Envelope(Envelope::new(&[
                ("event", BodyValue::Event),
                ("emitted_at", BodyValue::EmittedAt),
                ("event_ref", BodyValue::EventRef),
                ("tenant_id", BodyValue::TenantId),
                ("data", BodyValue::Data),
            ]))
        })
    }
}

/// The names of the headers a delivery carries besides its signature (each one optional).
#[derive(Debug, Clone)]
pub struct HeaderSpec {
    pub user_agent: HeaderValue,
    /// The event type's name.
    pub event: Option<HeaderName>,
    /// Unique per attempt.
    pub delivery: Option<HeaderName>,
    /// The dispatch time, RFC 3339 in UTC.
    pub timestamp: Option<HeaderName>,
    /// The webhook's id, the same on every call.
    pub webhook_id: Option<HeaderName>,
    /// Sends `webhook-id`, `webhook-timestamp` and `webhook-signature` (Standard Webhooks) too.
    pub standard_webhooks: bool,
}

impl HeaderSpec {
    /// Whether a custom header of this name would clash with one the profile sets.
    pub fn reserves(&self, signature: &SignatureSpec, lower: &str) -> bool {
        [&self.event, &self.delivery, &self.timestamp, &self.webhook_id, &Some(signature.header.clone())]
            .into_iter()
            .chain([&signature.previous_header])
            .flatten()
            .any(|n| n.as_str() == lower)
    }
}

/// How the seed-style signature is sent.
#[derive(Debug, Clone)]
pub struct SignatureSpec {
    pub header: HeaderName,
    /// Carries the previous secret's signature during a rotation's grace period.
    pub previous_header: Option<HeaderName>,
    pub format: SignatureFormat,
    /// A webhook may have no secret: its deliveries are then unsigned.
    pub optional: bool,
}

/// The text of a signature header, over the raw body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// `sha256=` and the lowercase hex of HMAC-SHA256 (GitHub's form; PhishNet, NetRecon, Gophish).
    Sha256Hex,
    /// The lowercase hex alone.
    Hex,
}

/// A new webhook's defaults, and the retry schedule of those that set none.
#[derive(Debug, Clone)]
pub struct WebhookDefaults {
    pub event_types: Vec<String>,
    pub format: Option<String>,
    pub retry_count: u32,
    pub timeout_ms: u32,
    /// Entry 0 is the first attempt (immediate); the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// When false, a webhook created without a name is named after its URL's host.
    pub name_required: bool,
}

/// When a failing webhook's circuit opens, and when it is switched off.
#[derive(Debug, Clone, Copy)]
pub struct FailurePolicy {
    pub threshold: u32,
    pub disable_after: Duration,
}

/// The management API as the product documents it: its base path and field names, mapped onto
/// the same service operations as `/api/v1/webhooks` (same validation, same roles).
#[derive(Debug, Clone)]
pub struct Dialect {
    /// e.g. `/api/v1/integrations/webhooks`.
    pub base: String,
    /// The product's field name and Tocsin's.
    pub fields: Vec<(String, String)>,
}

impl Dialect {
    /// Tocsin's name of a product's field (unchanged when it has none).
    pub fn to_tocsin<'a>(&'a self, field: &'a str) -> &'a str {
        self.fields.iter().find(|(theirs, _)| theirs == field).map_or(field, |(_, ours)| ours)
    }

    /// The product's name of one of Tocsin's fields (unchanged when it has none).
    pub fn to_product<'a>(&'a self, field: &'a str) -> &'a str {
        self.fields.iter().find(|(_, ours)| ours == field).map_or(field, |(theirs, _)| theirs)
    }
}

/// The deployment's settings that a profile falls back on where it says nothing.
#[derive(Debug, Clone)]
pub struct Fallbacks {
    /// `TOCSIN_HEADER_PREFIX`, for `{prefix}` in header names.
    pub header_prefix: String,
    pub default_event_types: Vec<String>,
    pub retry_schedule: Vec<Duration>,
    pub failure_threshold: u32,
    pub disable_after: Duration,
}

/// Where profiles come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `TOCSIN_PROFILE`: the deployment's default (`tocsin` when unset).
    pub default: Option<String>,
    /// `TOCSIN_PROFILE_DIR`: folders of more profiles.
    pub dir: Option<PathBuf>,
    /// `TOCSIN_CATALOGUE`: files that replace every profile's catalogue.
    pub catalogue_files: Vec<PathBuf>,
}

/// Every profile the deployment knows, and its default.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_name: BTreeMap<String, Arc<Profile>>,
    default: Arc<Profile>,
}

impl Profiles {
    pub fn load(sources: &Sources, fallbacks: &Fallbacks) -> anyhow::Result<Self> {
        let mut texts: BTreeMap<String, (String, file::Folder)> = EMBEDDED
            .iter()
            .map(|(name, text)| (name.to_string(), (text.to_string(), file::Folder::Embedded)))
            .collect();
        if let Some(dir) = &sources.dir {
            for (name, text, folder) in file::read_dir(dir)? {
                texts.insert(name, (text, folder));
            }
        }
        let shared = if sources.catalogue_files.is_empty() {
            None
        } else {
            Some(Arc::new(Catalogue::load(&sources.catalogue_files)?))
        };
        let mut by_name = BTreeMap::new();
        for (name, (text, folder)) in &texts {
            let profile = file::parse(name, text, folder, shared.clone(), fallbacks)
                .map_err(|e| anyhow::anyhow!("profile {name}: {e}"))?;
            by_name.insert(name.clone(), Arc::new(profile));
        }
        let wanted = sources.default.as_deref().unwrap_or(DEFAULT_PROFILE);
        let default = by_name.get(wanted).cloned().ok_or_else(|| {
            let names: Vec<&str> = by_name.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "invalid setting TOCSIN_PROFILE: no profile named '{wanted}' (there are {})",
                names.join(", ")
            )
        })?;
        Ok(Self { by_name, default })
    }

    /// The built-in profiles with Tocsin's defaults (for tests and tools).
    pub fn builtin() -> Self {
        let fallbacks = Fallbacks {
            header_prefix: "X-Tocsin".into(),
            default_event_types: vec!["*".into()],
            retry_schedule: [0u64, 30, 120, 600, 3600].iter().map(|s| Duration::from_secs(*s)).collect(),
            failure_threshold: 5,
            disable_after: Duration::from_secs(72 * 3600),
        };
        Self::load(&Sources::default(), &fallbacks).expect("the built-in profiles load")
    }

    pub fn default_profile(&self) -> &Arc<Profile> {
        &self.default
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Profile>> {
        self.by_name.get(name)
    }

    /// A tenant's profile: its own choice, or the deployment's default (also when its choice
    /// names a profile this deployment no longer has).
    pub fn resolve(&self, chosen: Option<&str>) -> Arc<Profile> {
        chosen.and_then(|n| self.by_name.get(n)).unwrap_or(&self.default).clone()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Profile>> {
        self.by_name.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_six_built_in_profiles_load_with_tocsin_the_default() {
        let all = Profiles::builtin();
        assert_eq!(all.names(), ["gophish", "netrecon", "pentest", "phishnet", "selki", "tocsin"]);
        assert_eq!(all.default_profile().name, "tocsin");
        let tocsin = all.get("tocsin").unwrap();
        assert_eq!(tocsin.headers.event.as_ref().unwrap().as_str(), "x-tocsin-event");
        assert_eq!(&tocsin.body, BodyShape::tocsin());
        assert!(tocsin.catalogue.contains("email.quarantined") && tocsin.catalogue.contains("THREATS_NEW_THREAT"));
        let netrecon = all.get("netrecon").unwrap();
        assert_eq!(netrecon.webhooks.retry_count, 4);
        assert!(netrecon.catalogue.contains("alert.created") && !netrecon.catalogue.contains("email.quarantined"));
        assert_eq!(netrecon.api.as_ref().unwrap().to_tocsin("events"), "event_types");
        assert_eq!(all.get("gophish").unwrap().body, BodyShape::Data);
        assert!(all.get("pentest").unwrap().signature.optional);
        assert_eq!(all.get("phishnet").unwrap().event_ref_from.as_deref(), Some("scan_id"));
        assert_eq!(all.resolve(Some("gone")).name, "tocsin");
    }
}
