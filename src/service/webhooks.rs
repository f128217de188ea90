//! Webhooks: create, change, delete, rotate the secret. The API and the dashboard both call these.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::Gathered;
use super::{AppState, Principal, ServiceError, ServiceResult};
use crate::destinations;
use crate::domain::event_type::EventTypePattern;
use crate::domain::filter::{EventFilter, FilterContext, FilterInput, PayloadFilter};
use crate::domain::secret::Secret;
use crate::domain::severity::Severity;
use crate::domain::tenant::TenantId;
use crate::domain::time::{now_ms, rfc3339_ms};
use crate::domain::webhook::{
    self as wh, CustomHeaders, SealedSecrets, SigningAlgorithm, Verification, Webhook, WebhookUrl,
};
use crate::store::Activation;

/// The writable fields of a webhook. On create, `name` and `url` are required; on update
/// (PUT or PATCH) every field is optional and only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Display name.
    pub name: Option<String>,
    /// Destination URL: http(s)://…, or syslog+udp|tcp|tls://host:port for SIEMs.
    pub url: Option<String>,
    /// Signing secret; generated (`whsec_…`) when absent on create. Write-only.
    pub secret: Option<String>,
    /// Event types: exact names, `family.*`, or `*` for all.
    pub event_types: Option<Vec<String>>,
    /// json, slack, teams, cef, syslog, splunk_hec, ocsf or splunk_hec_ocsf.
    pub format: Option<String>,
    /// Retries after the first attempt, 0–10 (default 3).
    pub retry_count: Option<i64>,
    /// Timeout of one attempt in ms, 1000–30000 (default 5000).
    pub timeout_ms: Option<i64>,
    /// Delay before each retry in ms (the last repeats); the global schedule when absent.
    pub retry_delays_ms: Option<Vec<i64>>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    pub is_active: Option<bool>,
    pub description: Option<String>,
    /// Deliveries per second at most.
    pub max_per_second: Option<i64>,
    /// Who is told when the circuit breaker disables the webhook.
    pub owner_email: Option<String>,
    /// Only events at least this severe are delivered: info, low, medium, high or critical (the
    /// severity the formats show). "" removes it.
    pub min_severity: Option<String>,
    /// Only events this CEL expression accepts are delivered, e.g.
    /// `data.phish_score >= 90 && data.source == "auto"` (variables: event, severity, tenant_id,
    /// data). "" removes it.
    pub filter: Option<String>,
    /// Ask the endpoint to prove it is its owner's before deliveries flow (on create and on every
    /// URL change), as `TOCSIN_VERIFY_ENDPOINTS` does for every webhook.
    pub verify: Option<bool>,
    /// `hmac-sha256` (default: a shared secret) or `ed25519` (Tocsin keeps the private key and
    /// shows the public one, `public_key`). Chosen at creation.
    pub signing_algorithm: Option<String>,
}

/// A webhook of the caller's tenant, by id as given (a malformed id is simply not found).
pub async fn get(state: &AppState, who: &Principal, id: &str) -> ServiceResult<Webhook> {
    let id = parse_id(id)?;
    state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))
}

pub fn parse_id(raw: &str) -> ServiceResult<Uuid> {
    raw.parse().map_err(|_| ServiceError::NotFound("webhook"))
}

impl AppState {
    /// Parses subscription patterns against the configured catalogue and the tenant's own types.
    pub async fn parse_patterns(&self, tenant: &TenantId, raw: &[String]) -> ServiceResult<Vec<EventTypePattern>> {
        if raw.is_empty() {
            return Err(ServiceError::invalid("event_types", "list at least one event type, or * for all"));
        }
        if raw.len() > 200 {
            return Err(ServiceError::invalid("event_types", "at most 200 entries"));
        }
        let own = self.store.list_event_types(tenant).await?;
        let profile = self.profile_of(tenant).await?;
        let names: Vec<&str> =
            profile.catalogue.iter().map(|e| e.name.as_str()).chain(own.iter().map(|e| e.name.as_str())).collect();
        let mut out: Vec<EventTypePattern> = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            let pattern = EventTypePattern::parse(p, &format!("event_types[{i}]"), names.iter().copied())?;
            if !out.contains(&pattern) {
                out.push(pattern);
            }
        }
        Ok(out)
    }
}

/// Validates the fields given and applies them to `w`. Returns the names of the changed fields.
/// Every field is checked, and all the field errors are reported together (`found`: those the
/// caller found already).
async fn apply(
    state: &AppState,
    who: &Principal,
    w: &mut Webhook,
    input: WebhookInput,
    mut found: Gathered,
) -> ServiceResult<Vec<&'static str>> {
    let mut changed = Vec::new();
    if let Some(v) = input.name {
        if let Some(name) = found.take(wh::parse_name(&v))? {
            w.name = name;
            changed.push("name");
        }
    }
    if let Some(v) = input.url {
        let url = WebhookUrl::parse(&v, "url").map_err(ServiceError::from).and_then(|url| {
            match url.literal_ip().map(|ip| state.address_policy.check(ip)) {
                Some(Err(why)) => Err(ServiceError::invalid("url", why)),
                _ => Ok(url),
            }
        });
        if let Some(url) = found.take(url)? {
            w.url = url;
            changed.push("url");
        }
    }
    if let Some(v) = input.event_types {
        if let Some(patterns) = found.take(state.parse_patterns(&who.tenant, &v).await)? {
            w.event_types = patterns;
            changed.push("event_types");
        }
    }
    if let Some(v) = input.format {
        if let Some(format) = found.take(destinations::parse_format(&v, "format"))? {
            w.format = format;
            changed.push("format");
        }
    }
    if let Some(v) = input.retry_count {
        if let Some(n) = found.take(wh::parse_retry_count(v))? {
            w.retry_count = n;
            changed.push("retry_count");
        }
    }
    if let Some(v) = input.timeout_ms {
        if let Some(n) = found.take(wh::parse_timeout_ms(v))? {
            w.timeout_ms = n;
            changed.push("timeout_ms");
        }
    }
    if let Some(v) = input.retry_delays_ms {
        if let Some(delays) = found.take(wh::parse_retry_delays(&v))? {
            w.retry_delays_ms = Some(delays);
            changed.push("retry_delays_ms");
        }
    }
    if let Some(v) = input.headers {
        let profile = state.profile_of(&who.tenant).await?;
        let headers = CustomHeaders::parse(&v, &state.settings.header_prefix, |lower| {
            profile.headers.reserves(&profile.signature, lower)
        });
        if let Some(headers) = found.take(headers)? {
            w.headers = headers;
            changed.push("headers");
        }
    }
    if let Some(v) = input.description {
        if let Some(d) = found.take(wh::parse_description(&v))? {
            w.description = Some(d).filter(|d| !d.is_empty());
            changed.push("description");
        }
    }
    if let Some(v) = input.max_per_second {
        if let Some(m) = found.take(wh::parse_max_per_second(v))? {
            w.max_per_second = Some(m);
            changed.push("max_per_second");
        }
    }
    if let Some(v) = input.min_severity {
        let level = if v.trim().is_empty() { Ok(None) } else { Severity::parse(v.trim(), "min_severity").map(Some) };
        if let Some(level) = found.take(level)? {
            w.min_severity = level;
            changed.push("min_severity");
        }
    }
    if let Some(v) = input.filter {
        let filter = if v.trim().is_empty() { Ok(None) } else { EventFilter::parse(&v, "filter").map(Some) };
        if let Some(filter) = found.take(filter)? {
            w.filter = filter;
            changed.push("filter");
        }
    }
    if let Some(v) = input.owner_email {
        let email = if v.is_empty() { Ok(None) } else { wh::parse_owner_email(&v).map(Some) };
        if let Some(email) = found.take(email)? {
            w.owner_email = email;
            changed.push("owner_email");
        }
    }
    // The checks across fields, once each field is known good.
    if found.is_empty() {
        let format = destinations::of(w.format);
        found.take(format.check(w))?;
        if w.signing_algorithm == SigningAlgorithm::Ed25519
            && (w.url.transport().is_syslog() || format.secret_required().is_some())
        {
            let message = "ed25519 signs HTTP webhooks: syslog carries no signature, and splunk_hec sends its token";
            found.take::<(), _>(Err(ServiceError::invalid("signing_algorithm", message)))?;
        }
        if w.url.transport().is_syslog() && !format.carried_by_syslog() {
            let field = if changed.contains(&"format") { "format" } else { "url" };
            let message = format!("a syslog destination takes format {}", destinations::syslog_formats());
            found.take::<(), _>(Err(ServiceError::invalid(field, message)))?;
        }
    }
    found.finish()?;
    Ok(changed)
}

/// Creates a webhook; returns it with its secret (shown once).
pub async fn create(state: &AppState, who: &Principal, mut input: WebhookInput) -> ServiceResult<(Webhook, Secret)> {
    who.admin()?;
    let profile = state.profile_of(&who.tenant).await?;
    let defaults = &profile.webhooks;
    let mut found = Gathered::default();
    let url = found.take(input.url.clone().ok_or_else(|| ServiceError::missing("url", "url is required")))?;
    let name = match input.name.take() {
        Some(name) => found.take(wh::parse_name(&name))?,
        // The profile's documented create call names no webhook: its URL's host does.
        None if !defaults.name_required => {
            url.as_deref().and_then(|u| WebhookUrl::parse(u, "url").ok()).map(|u| u.host().chars().take(200).collect())
        }
        None => found.take::<String, _>(Err(ServiceError::missing("name", "name is required")))?,
    };
    if input.format.is_none() {
        input.format = defaults.format.clone();
    }
    let algorithm = match input.signing_algorithm.take() {
        Some(raw) => found.take(SigningAlgorithm::parse(&raw, "signing_algorithm"))?.unwrap_or_default(),
        None => SigningAlgorithm::default(),
    };
    let secret = match input.secret.take() {
        Some(_) if algorithm == SigningAlgorithm::Ed25519 => found.take::<Secret, _>(Err(ServiceError::invalid(
            "secret",
            "an ed25519 webhook's key is made by Tocsin: leave secret out (receivers verify with its public_key)",
        )))?,
        None if algorithm == SigningAlgorithm::Ed25519 => Some(Secret::generate_ed25519()),
        Some(s) => found.take(Secret::parse(&s, "secret"))?,
        None => {
            let format = input.format.as_deref().and_then(|f| destinations::parse_format(f, "format").ok());
            let over_syslog = url
                .as_deref()
                .and_then(|u| WebhookUrl::parse(u, "url").ok())
                .is_some_and(|u| u.transport().is_syslog());
            match format.and_then(|f| destinations::of(f).secret_required()) {
                Some(why) => found.take::<Secret, _>(Err(ServiceError::missing("secret", why)))?,
                // The profile signs only webhooks given a secret; syslog carries no signature.
                None if profile.signature.optional || over_syslog => Some(Secret::unsigned()),
                None => Some(Secret::generate()),
            }
        }
    };
    if input.event_types.is_none() {
        input.event_types = Some(defaults.event_types.clone());
    }
    let now = now_ms();
    let id = Uuid::now_v7();
    // Placeholders where a value was not acceptable: `apply` reports every error, and nothing is
    // stored unless there is none.
    let placeholder_url = || WebhookUrl::parse("https://invalid.example/", "url").expect("a valid URL");
    let mut w = Webhook {
        id,
        tenant_id: who.tenant.clone(),
        name: name.unwrap_or_default(),
        url: placeholder_url(),
        description: None,
        event_types: Vec::new(),
        format: destinations::default_format(),
        retry_count: defaults.retry_count,
        timeout_ms: defaults.timeout_ms,
        retry_delays_ms: None,
        headers: CustomHeaders::default(),
        is_active: input.is_active.unwrap_or(true),
        failure_count: 0,
        disabled_reason: None,
        circuit_open_until: None,
        circuit_opens: 0,
        failing_since: None,
        max_per_second: None,
        owner_email: None,
        min_severity: None,
        filter: None,
        verification: Verification::NotRequired,
        signing_algorithm: algorithm,
        secret: SealedSecrets {
            current: match &secret {
                Some(s) if !s.is_unsigned() => state.cipher.seal(s.expose().as_bytes(), id.as_bytes()),
                _ => Vec::new(),
            },
            previous: None,
            previous_expires_at: None,
            rotated_at: now,
            public_key: secret.as_ref().and_then(Secret::ed25519_public_key),
        },
        created_at: now,
        updated_at: now,
    };
    if !w.is_active {
        w.disabled_reason = Some(wh::disabled_reason::MANUAL.to_string());
    }
    input.url = url;
    let verify_asked = input.verify.take();
    apply(state, who, &mut w, input, found).await?;
    w.verification = verification_asked(state, &w, verify_asked);
    if w.verification == Verification::Pending {
        // Held until the endpoint answers the challenge below (or a later `verify`).
        w.is_active = false;
        w.disabled_reason = Some(wh::UNVERIFIED.to_string());
    }
    // (A secret that was not acceptable made `apply` report it above.)
    let secret = secret.ok_or_else(|| ServiceError::invalid("secret", "not acceptable"))?;
    let audit = who.audit(
        "webhook.create",
        format!("webhook:{id}"),
        serde_json::json!({"name": w.name, "url": w.url.masked(), "format": w.format.as_str()}),
    );
    state.store.insert_webhook(&w, audit).await?;
    tracing::info!(webhook = %id, tenant = %who.tenant, "webhook created");
    if w.verification == Verification::Pending {
        // Its answer is in the webhook's `verification`: a failed check leaves it pending.
        if let Ok(verified) = verify(state, who, w.id).await {
            w = verified;
        }
    }
    Ok((w, secret))
}

/// Changes the fields given; returns the webhook as stored.
pub async fn update(state: &AppState, who: &Principal, id: Uuid, mut input: WebhookInput) -> ServiceResult<Webhook> {
    who.admin()?;
    let mut w = state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    if let Some(raw) = input.signing_algorithm.take() {
        if SigningAlgorithm::parse(&raw, "signing_algorithm")? != w.signing_algorithm {
            return Err(ServiceError::invalid(
                "signing_algorithm",
                "is chosen when the webhook is created: create another webhook to sign the other way",
            ));
        }
    }
    if input.secret.is_some() && w.signing_algorithm == SigningAlgorithm::Ed25519 {
        return Err(ServiceError::invalid("secret", "an ed25519 webhook's key is made by Tocsin: rotate it instead"));
    }
    let new_secret = input.secret.take().map(|s| Secret::parse(&s, "secret")).transpose()?;
    let verify_asked = input.verify.take();
    if input.is_active == Some(true) && w.verification == Verification::Pending && input.url.is_none() {
        return Err(ServiceError::Conflict(
            "the endpoint has not proved its ownership yet: POST /webhooks/{id}/verify (its deliveries are held \
             until then)"
                .into(),
        ));
    }
    let activation = match input.is_active.take() {
        Some(true) if !w.is_active => Activation::Enable,
        Some(false) if w.is_active => Activation::Disable,
        _ => Activation::Unchanged,
    };
    let format_was = w.format;
    let mut changed = apply(state, who, &mut w, input, Gathered::default()).await?;
    // A format that sends its secret as a token (splunk_hec), or stops doing so, takes a new
    // secret with the change: a signing secret is never sent in the clear, nor does a token sign.
    let sends_secret = |f| destinations::of(f).auth_scheme().is_some();
    if sends_secret(format_was) != sends_secret(w.format) && new_secret.is_none() {
        let (now, was) = (w.format.as_str(), format_was.as_str());
        let message = format!("format {now} uses its secret unlike {was}: give the new secret with the change");
        return Err(ServiceError::invalid("secret", message));
    }
    // A new URL must prove itself again (as must one whose webhook now asks for it).
    let was = w.verification;
    let asks = verify_asked == Some(true) || matches!(was, Verification::Pending | Verification::Verified);
    let activation = if changed.contains(&"url") || (verify_asked == Some(true) && was == Verification::NotRequired) {
        w.verification = verification_asked(state, &w, asks.then_some(true));
        if w.verification == Verification::Pending && w.is_active {
            w.disabled_reason = Some(wh::UNVERIFIED.to_string());
            Activation::Disable
        } else {
            activation
        }
    } else {
        activation
    };
    if w.verification != was {
        changed.push("verification");
    }
    if activation != Activation::Unchanged {
        changed.push("is_active");
    }
    w.updated_at = now_ms();
    let audit = who.audit("webhook.update", format!("webhook:{}", w.id), serde_json::json!({"fields": changed}));
    if !state.store.update_webhook(&w, activation, audit).await? {
        return Err(ServiceError::NotFound("webhook"));
    }
    if let Some(secret) = new_secret {
        // A secret set by hand replaces the old one at once (rotate-secret keeps a grace period).
        let sealed = SealedSecrets {
            current: state.cipher.seal(secret.expose().as_bytes(), w.id.as_bytes()),
            previous: None,
            previous_expires_at: None,
            rotated_at: now_ms(),
            public_key: None,
        };
        let audit = who.audit("webhook.secret_set", format!("webhook:{}", w.id), serde_json::json!({}));
        state.store.update_secrets(&who.tenant, w.id, &sealed, audit).await?;
    }
    if w.verification != was {
        state.store.set_verification(&who.tenant, w.id, w.verification).await?;
    }
    if activation == Activation::Enable {
        state.dispatcher.wake([w.id]);
    }
    if w.verification == Verification::Pending && was != Verification::Pending {
        if let Ok(verified) = verify(state, who, w.id).await {
            return Ok(verified);
        }
    }
    state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))
}

/// Whether a webhook must prove its endpoint's ownership: asked for (`verify`, or the
/// deployment's `TOCSIN_VERIFY_ENDPOINTS`), unless its transport cannot answer (syslog, HEC).
fn verification_asked(state: &AppState, w: &Webhook, verify: Option<bool>) -> Verification {
    if !verify.unwrap_or(state.settings.verify_endpoints) {
        Verification::NotRequired
    } else if w.url.transport().is_syslog() || destinations::of(w.format).secret_required().is_some() {
        Verification::Exempt
    } else {
        Verification::Pending
    }
}

/// Challenges a webhook's endpoint now: once it answers, the webhook is `verified` and its held
/// deliveries flow. Answers the webhook as stored; a failed check is a conflict that says why
/// (the webhook stays pending).
pub async fn verify(state: &AppState, who: &Principal, id: Uuid) -> ServiceResult<Webhook> {
    who.admin()?;
    let w = state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    match w.verification {
        Verification::NotRequired | Verification::Exempt | Verification::Verified => return Ok(w),
        Verification::Pending => {}
    }
    if let Err(why) = state.dispatcher.verify_endpoint(w.clone()).await {
        return Err(ServiceError::Conflict(format!("the endpoint did not prove its ownership: {why}")));
    }
    state.store.set_verification(&who.tenant, w.id, Verification::Verified).await?;
    let audit = who.audit("webhook.verified", format!("webhook:{}", w.id), serde_json::json!({}));
    if !w.is_active && w.disabled_reason.as_deref() == Some(wh::UNVERIFIED) {
        let mut enabled = w.clone();
        enabled.updated_at = now_ms();
        state.store.update_webhook(&enabled, Activation::Enable, audit).await?;
        state.dispatcher.wake([w.id]);
    }
    state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))
}

pub async fn delete(state: &AppState, who: &Principal, id: Uuid) -> ServiceResult<()> {
    who.admin()?;
    // Looked up in the caller's tenant first: a deletion that cannot happen writes no audit entry.
    state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    let audit = who.audit("webhook.delete", format!("webhook:{id}"), serde_json::json!({}));
    if state.store.delete_webhook(&who.tenant, id, audit).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("webhook"))
    }
}

/// A new secret; the old one keeps signing for the grace period. Returns the secret and when
/// the old one stops.
///
/// `given` sets the new secret (else one is generated). A second rotation while the previous
/// secret still signs is refused: it would end that secret's grace period at once, breaking
/// receivers that have not switched yet.
pub async fn rotate(state: &AppState, who: &Principal, id: Uuid, given: Option<&str>) -> ServiceResult<(Secret, i64)> {
    who.admin()?;
    let w = state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    let now = now_ms();
    if let (Some(_), Some(until)) = (&w.secret.previous, w.secret.previous_expires_at) {
        if until > now {
            return Err(ServiceError::Conflict(format!(
                "the previous secret signs until {} (the last rotation's grace period): rotate again after \
                 that, or set a secret with PATCH, which ends the grace period at once",
                rfc3339_ms(until)
            )));
        }
    }
    let secret = match (given, w.signing_algorithm) {
        (Some(_), SigningAlgorithm::Ed25519) => {
            return Err(ServiceError::invalid("secret", "an ed25519 webhook's key is made by Tocsin: leave secret out"))
        }
        (Some(raw), _) => Secret::parse(raw, "secret")?,
        (None, SigningAlgorithm::Ed25519) => Secret::generate_ed25519(),
        (None, SigningAlgorithm::HmacSha256) => Secret::generate(),
    };
    let expires = now + state.settings.secret_grace.as_millis() as i64;
    // An unsigned webhook's first secret has no predecessor to keep signing.
    let (previous, previous_expires_at) =
        if w.secret.is_unsigned() { (None, None) } else { (Some(w.secret.current.clone()), Some(expires)) };
    let sealed = SealedSecrets {
        current: state.cipher.seal(secret.expose().as_bytes(), w.id.as_bytes()),
        previous,
        previous_expires_at,
        rotated_at: now,
        public_key: secret.ed25519_public_key(),
    };
    let audit = who.audit(
        "webhook.rotate_secret",
        format!("webhook:{}", w.id),
        serde_json::json!({"previous_secret_expires_at": rfc3339_ms(expires)}),
    );
    if !state.store.update_secrets(&who.tenant, w.id, &sealed, audit).await? {
        return Err(ServiceError::NotFound("webhook"));
    }
    Ok((secret, expires))
}

/// An ed25519 webhook's public keys: the current one, and the previous one while it still signs
/// (with until when). A webhook that signs with a shared secret has none.
pub async fn public_keys(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> ServiceResult<Vec<([u8; 32], &'static str, Option<i64>)>> {
    who.reader()?;
    let w = get(state, who, id).await?;
    if w.signing_algorithm != SigningAlgorithm::Ed25519 {
        return Err(ServiceError::Conflict(
            "this webhook signs with a shared secret (hmac-sha256): it has no public key".into(),
        ));
    }
    let public = |sealed: &[u8]| -> ServiceResult<Option<[u8; 32]>> {
        let opened = state.cipher.open(sealed, w.id.as_bytes()).map_err(|e| ServiceError::Conflict(e.to_string()))?;
        Ok(Secret::from_stored(opened).ed25519_seed().and_then(|seed| crate::domain::secret::ed25519_public_key(&seed)))
    };
    let mut keys = Vec::new();
    if let Some(k) = public(&w.secret.current)? {
        keys.push((k, "current", None));
    }
    if let (Some(prev), Some(until)) = (&w.secret.previous, w.secret.previous_expires_at) {
        if until > now_ms() {
            if let Some(k) = public(prev)? {
                keys.push((k, "previous", Some(until)));
            }
        }
    }
    Ok(keys)
}

/// How a payload filter would have treated one of the tenant's latest events.
pub struct FilterTrial {
    pub event_ref: String,
    pub event_type: String,
    pub severity: &'static str,
    pub passes: bool,
}

/// Tries `min_severity` and `filter` (as a webhook would have them) on the tenant's latest
/// `limit` events, without changing anything.
pub async fn try_filter(
    state: &AppState,
    who: &Principal,
    min_severity: &str,
    filter: &str,
    limit: i64,
) -> ServiceResult<Vec<FilterTrial>> {
    who.reader()?;
    let mut found = Gathered::default();
    let min = if min_severity.trim().is_empty() {
        None
    } else {
        found.take(Severity::parse(min_severity.trim(), "min_severity"))?
    };
    let filter = if filter.trim().is_empty() { None } else { found.take(EventFilter::parse(filter, "filter"))? };
    found.finish()?;
    let own = state.store.list_event_types(&who.tenant).await?;
    let known = super::events::KnownTypes::new(state.profile_of(&who.tenant).await?, own);
    let payload_filter = PayloadFilter { min_severity: min, filter: filter.as_ref() };
    let mut out = Vec::new();
    for (event_ref, event_type, raw) in state.store.recent_events(&who.tenant, limit).await? {
        let data: serde_json::Value = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
        let severity = known.severity_of(&event_type, &data);
        let input =
            FilterInput { event: &event_type, severity: severity.name(), tenant_id: who.tenant.as_str(), data: &data };
        let passes = payload_filter.passes(severity, &FilterContext::new(&input));
        out.push(FilterTrial { event_ref, event_type, severity: severity.name(), passes });
    }
    Ok(out)
}
