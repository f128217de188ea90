//! `profile.toml`, read into a [`Profile`]: every key checked, with the file and key named in
//! the error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::{
    BodyShape, BodyValue, Dialect, Envelope, FailurePolicy, Fallbacks, HeaderSpec, Profile, SignatureFormat,
    SignatureSpec, WebhookDefaults,
};
use crate::catalogue::{self, Catalogue};
use crate::domain::time::parse_duration_text;
use crate::domain::webhook::{parse_retry_count, parse_timeout_ms};

/// Where a profile's files are.
#[derive(Debug, Clone)]
pub enum Folder {
    Embedded,
    Dir(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    product: String,
    description: String,
    /// Other profiles whose catalogues this one's is the union of (instead of its own).
    catalogue_from: Option<Vec<String>>,
    body: BodyFile,
    headers: HeadersFile,
    signature: SignatureFile,
    webhooks: Option<WebhooksFile>,
    failure: Option<FailureFile>,
    api: Option<ApiFile>,
    publish: Option<PublishFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyFile {
    kind: String,
    fields: Option<Vec<FieldFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    user_agent: Option<String>,
    event: Option<String>,
    delivery: Option<String>,
    timestamp: Option<String>,
    webhook_id: Option<String>,
    standard_webhooks: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    header: String,
    previous_header: Option<String>,
    format: String,
    optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksFile {
    event_types: Option<Vec<String>>,
    format: Option<String>,
    retry_count: Option<i64>,
    timeout_ms: Option<i64>,
    retry_schedule_ms: Option<Vec<u64>>,
    name_required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureFile {
    threshold: Option<u32>,
    disable_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    base: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishFile {
    event_ref_from: Option<String>,
}

/// The profiles in `dir`: each subfolder with a `profile.toml`, named by its folder.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<(String, String, Folder)>> {
    let err = |e: std::io::Error| anyhow::anyhow!("invalid setting TOCSIN_PROFILE_DIR: {}: {e}", dir.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        let file = path.join("profile.toml");
        if !file.is_file() {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let text = std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("profile {}: cannot read: {e}", file.display()))?;
        out.push((name, text, Folder::Dir(path)));
    }
    Ok(out)
}

/// The catalogue of the profile named `name` in `folder`: its `catalogue.toml`, else the
/// embedded one of that name, else none.
fn catalogue_text(name: &str, folder: &Folder) -> anyhow::Result<Option<(String, String)>> {
    if let Folder::Dir(dir) = folder {
        let path = dir.join("catalogue.toml");
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("catalogue {}: cannot read: {e}", path.display()))?;
            return Ok(Some((path.display().to_string(), text)));
        }
    }
    Ok(catalogue::EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, t)| (format!("{n}/catalogue.toml"), t.to_string())))
}

fn header_name(raw: &str, prefix: &str, key: &str) -> anyhow::Result<HeaderName> {
    let name = raw.replace("{prefix}", prefix);
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| anyhow::anyhow!("{key}: '{name}' is not a valid header name"))
}

fn duration(raw: &str, key: &str) -> anyhow::Result<Duration> {
    parse_duration_text(raw, Duration::from_secs(1), Duration::from_secs(365 * 86_400))
        .map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

pub fn parse(
    name: &str,
    text: &str,
    folder: &Folder,
    shared_catalogue: Option<Arc<Catalogue>>,
    fallbacks: &Fallbacks,
) -> anyhow::Result<Profile> {
    let f: ProfileFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    if f.name != name {
        anyhow::bail!("name: '{}' differs from its folder's name '{name}'", f.name);
    }
    let catalogue = match shared_catalogue {
        Some(shared) => shared,
        None => {
            let mut sources = Vec::new();
            for from in f.catalogue_from.clone().unwrap_or_else(|| vec![name.to_string()]) {
                let sibling = match folder {
                    Folder::Dir(dir) => Folder::Dir(dir.with_file_name(&from)),
                    Folder::Embedded => Folder::Embedded,
                };
                match catalogue_text(&from, &sibling)? {
                    Some(source) => sources.push(source),
                    None if from == name => {}
                    None => anyhow::bail!("catalogue_from: no catalogue named '{from}'"),
                }
            }
            Arc::new(Catalogue::from_sources(sources)?)
        }
    };

    let body = match (f.body.kind.as_str(), &f.body.fields) {
        ("data", None) => BodyShape::Data,
        ("envelope", Some(fields)) if !fields.is_empty() => {
            let mut out: Vec<(&str, BodyValue)> = Vec::with_capacity(fields.len());
            for (i, field) in fields.iter().enumerate() {
                let value = match field.value.as_str() {
                    "event" => BodyValue::Event,
                    "event_ref" => BodyValue::EventRef,
                    "emitted_at" => BodyValue::EmittedAt,
                    "emitted_at_seconds" => BodyValue::EmittedAtSeconds,
                    "tenant_id" => BodyValue::TenantId,
                    "data" => BodyValue::Data,
                    other => anyhow::bail!(
                        "body.fields[{i}].value: '{other}' is not one of event, event_ref, emitted_at, emitted_at_seconds, tenant_id, data"
                    ),
                };
                if out.iter().any(|(k, _)| *k == field.key) {
                    anyhow::bail!("body.fields[{i}].key: '{}' is given twice", field.key);
                }
                out.push((&field.key, value));
            }
            BodyShape::Envelope(Envelope::new(&out))
        }
        ("envelope", _) => anyhow::bail!("body.fields: an envelope lists at least one field"),
        ("data", Some(_)) => anyhow::bail!("body.fields: a body of kind 'data' has no fields"),
        (other, _) => anyhow::bail!("body.kind: '{other}' is not 'envelope' or 'data'"),
    };

    let prefix = &fallbacks.header_prefix;
    let optional_name =
        |raw: &Option<String>, key: &str| raw.as_deref().map(|r| header_name(r, prefix, key)).transpose();
    let user_agent = match &f.headers.user_agent {
        Some(ua) => {
            HeaderValue::from_str(ua).map_err(|_| anyhow::anyhow!("headers.user_agent: not a valid header value"))?
        }
        None => HeaderValue::from_static(concat!("Tocsin-Webhook/", env!("CARGO_PKG_VERSION"))),
    };
    let headers = HeaderSpec {
        user_agent,
        event: optional_name(&f.headers.event, "headers.event")?,
        delivery: optional_name(&f.headers.delivery, "headers.delivery")?,
        timestamp: optional_name(&f.headers.timestamp, "headers.timestamp")?,
        webhook_id: optional_name(&f.headers.webhook_id, "headers.webhook_id")?,
        standard_webhooks: f.headers.standard_webhooks,
    };
    let signature = SignatureSpec {
        header: header_name(&f.signature.header, prefix, "signature.header")?,
        previous_header: optional_name(&f.signature.previous_header, "signature.previous_header")?,
        format: match f.signature.format.as_str() {
            "sha256=hex" => SignatureFormat::Sha256Hex,
            "hex" => SignatureFormat::Hex,
            other => anyhow::bail!("signature.format: '{other}' is not 'sha256=hex' or 'hex'"),
        },
        optional: f.signature.optional,
    };

    let w = f.webhooks.unwrap_or(WebhooksFile {
        event_types: None,
        format: None,
        retry_count: None,
        timeout_ms: None,
        retry_schedule_ms: None,
        name_required: None,
    });
    let retry_schedule = match w.retry_schedule_ms {
        Some(ms) if !ms.is_empty() && ms.len() <= 20 && ms.iter().all(|m| *m <= 86_400_000) => {
            ms.iter().map(|m| Duration::from_millis(*m)).collect()
        }
        Some(_) => anyhow::bail!("webhooks.retry_schedule_ms: 1 to 20 delays of at most 86400000 ms"),
        None => fallbacks.retry_schedule.clone(),
    };
    let event_types = w.event_types.unwrap_or_else(|| fallbacks.default_event_types.clone());
    if event_types.is_empty() {
        anyhow::bail!("webhooks.event_types: list at least one, or \"*\"");
    }
    let webhooks = WebhookDefaults {
        event_types,
        format: w.format,
        retry_count: parse_retry_count(w.retry_count.unwrap_or(3))
            .map_err(|e| anyhow::anyhow!("webhooks.retry_count: {}", e.message))?,
        timeout_ms: parse_timeout_ms(w.timeout_ms.unwrap_or(5000))
            .map_err(|e| anyhow::anyhow!("webhooks.timeout_ms: {}", e.message))?,
        retry_schedule,
        name_required: w.name_required.unwrap_or(true),
    };
    let failure = match f.failure {
        Some(x) => FailurePolicy {
            threshold: match x.threshold {
                Some(0) => anyhow::bail!("failure.threshold: at least 1"),
                Some(n) => n,
                None => fallbacks.failure_threshold,
            },
            disable_after: match x.disable_after {
                Some(d) => duration(&d, "failure.disable_after")?,
                None => fallbacks.disable_after,
            },
        },
        None => FailurePolicy { threshold: fallbacks.failure_threshold, disable_after: fallbacks.disable_after },
    };
    let api = match f.api {
        Some(a) => {
            let ok = a.base.starts_with("/api/")
                && a.base.len() > 5
                && !a.base.ends_with('/')
                && a.base.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
            if !ok || a.base == "/api/v1/webhooks" {
                anyhow::bail!("api.base: a path under /api/ of letters, digits, '/', '-', '_' and '.', other than /api/v1/webhooks");
            }
            Some(Dialect { base: a.base, fields: a.fields.into_iter().collect() })
        }
        None => None,
    };
    Ok(Profile {
        name: f.name,
        product: f.product,
        description: f.description,
        catalogue,
        body,
        headers,
        signature,
        webhooks,
        failure,
        api,
        event_ref_from: f.publish.and_then(|p| p.event_ref_from),
    })
}
