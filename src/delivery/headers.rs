//! The service's own headers of a request, named as the tenant's profile names them: event,
//! delivery, timestamp, webhook id, the seed-style signature and the Standard Webhooks ones, for
//! the current secret and, during a rotation, the previous one; and the form they take in the
//! delivery log (credentials masked).

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use uuid::Uuid;

use crate::domain::text::push_json_string;
use crate::domain::webhook::CustomHeaders;
use crate::profile::{Profile, SignatureFormat};
use crate::signing::{ed25519_signature_bytes, seed_signature_bytes, standard_signature_bytes, SigningKeys};

pub fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The request's headers as the delivery log shows them: the service's own in full, custom ones
/// and a secret sent as credentials masked (they may be credentials). Written as JSON text directly: one
/// is written per attempt, and serde's map writer escaped every character on its own.
pub fn logged_headers(
    service: &[(HeaderName, HeaderValue)],
    custom: &CustomHeaders,
    auth_scheme: Option<&str>,
) -> String {
    let mut out = String::with_capacity(640);
    out.push('{');
    let mut entry = |k: &str, v: &str| {
        if out.len() > 1 {
            out.push(',');
        }
        push_json_string(&mut out, k);
        out.push(':');
        push_json_string(&mut out, v);
    };
    for (k, v) in service {
        entry(k.as_str(), v.to_str().unwrap_or_default());
    }
    for (k, _) in custom.iter() {
        entry(k.as_str(), "********");
    }
    if let Some(scheme) = auth_scheme {
        entry("authorization", &format!("{scheme} ********"));
    }
    out.push('}');
    out
}

/// Adds a webhook's custom headers (validated when they were stored) after the service's own.
pub fn push_custom(headers: &mut Vec<(HeaderName, HeaderValue)>, custom: &CustomHeaders) {
    for (k, v) in custom.iter() {
        if let (Ok(name), Ok(val)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.push((name, val));
        }
    }
}

/// What the service's own headers of one request are made from.
pub struct Signed<'a> {
    pub content_type: &'static str,
    pub event_type: &'a str,
    pub event_ref: &'a str,
    pub attempt_id: Uuid,
    /// Unix ms of this dispatch.
    pub now: i64,
    pub webhook_id: Uuid,
    /// None: the webhook has no secret (its profile allows that) and nothing is signed.
    pub keys: Option<&'a SigningKeys>,
    /// The previous secret's keys during its grace period: signed with too.
    pub previous: Option<&'a SigningKeys>,
    pub body: &'a [u8],
}

/// The service's own headers of a request, as `profile` names them, both signature schemes
/// included unless it turns the Standard Webhooks ones off (custom headers and Splunk's token
/// are the caller's). The load test's raw ceiling sends the same.
///
/// Every value is written into one buffer and handed to its header as a slice of it: one
/// allocation per request instead of one per value and one more per signature string.
pub fn signed_headers(profile: &Profile, s: &Signed<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let (n, sig) = (&profile.headers, &profile.signature);
    let unix = s.now.div_euclid(1000);
    // The timestamp's digits are both a header and part of what the Standard Webhooks scheme signs.
    let mut digits = [0u8; 20];
    let digits = decimal(unix, &mut digits);
    let (mut attempt_id, mut webhook_id) = (Uuid::encode_buffer(), Uuid::encode_buffer());
    // `sha256=<hex>`, or the hex alone.
    let skip = match sig.format {
        SignatureFormat::Sha256Hex => 0,
        SignatureFormat::Hex => "sha256=".len(),
    };

    // Each value runs from where it starts to where the next one starts (or the buffer ends).
    let mut buf = Vec::with_capacity(320);
    let mut starts: Vec<(HeaderName, usize)> = Vec::with_capacity(9);
    let mut put = |buf: &mut Vec<u8>, name: HeaderName, bytes: &[u8]| {
        starts.push((name, buf.len()));
        buf.extend_from_slice(bytes);
    };
    if let Some(name) = &n.event {
        put(&mut buf, name.clone(), s.event_type.as_bytes());
    }
    if let Some(name) = &n.delivery {
        put(&mut buf, name.clone(), s.attempt_id.hyphenated().encode_lower(&mut attempt_id).as_bytes());
    }
    if let Some(name) = &n.timestamp {
        put(&mut buf, name.clone(), &[]);
        crate::domain::time::write_rfc3339_secs(s.now, &mut buf);
    }
    if let Some(name) = &n.webhook_id {
        put(&mut buf, name.clone(), s.webhook_id.hyphenated().encode_lower(&mut webhook_id).as_bytes());
    }
    // Ed25519 keys sign only the Standard Webhooks way (`v1a`), whatever the profile says: the
    // seed-style scheme needs a secret the receiver shares.
    let ed25519 = s.keys.is_some_and(SigningKeys::is_ed25519);
    if let Some(keys) = s.keys.filter(|_| !ed25519) {
        put(&mut buf, sig.header.clone(), &seed_signature_bytes(keys, s.body)[skip..]);
        if let (Some(prev), Some(name)) = (s.previous, &sig.previous_header) {
            put(&mut buf, name.clone(), &seed_signature_bytes(prev, s.body)[skip..]);
        }
    }
    if n.standard_webhooks || ed25519 {
        put(&mut buf, HeaderName::from_static("webhook-id"), s.event_ref.as_bytes());
        put(&mut buf, HeaderName::from_static("webhook-timestamp"), digits);
        let sign =
            |buf: &mut Vec<u8>, keys: &SigningKeys| match ed25519_signature_bytes(keys, s.event_ref, digits, s.body) {
                Some(v1a) => buf.extend_from_slice(&v1a),
                None => buf.extend_from_slice(&standard_signature_bytes(keys, s.event_ref, digits, s.body)),
            };
        if let Some(keys) = s.keys {
            put(&mut buf, HeaderName::from_static("webhook-signature"), &[]);
            sign(&mut buf, keys);
            if let Some(prev) = s.previous {
                buf.push(b' ');
                sign(&mut buf, prev);
            }
        }
    }
    let ends: Vec<usize> = starts.iter().skip(1).map(|(_, start)| *start).chain([buf.len()]).collect();

    let buf = Bytes::from(buf);
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(14);
    headers.push((axum::http::header::CONTENT_TYPE, HeaderValue::from_static(s.content_type)));
    headers.push((axum::http::header::USER_AGENT, n.user_agent.clone()));
    for ((name, start), end) in starts.into_iter().zip(ends) {
        let v = HeaderValue::from_maybe_shared(buf.slice(start..end))
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        headers.push((name, v));
    }
    headers
}

/// `n`'s decimal digits, written into `buf`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{n}").ok();
    let len = cursor.position() as usize;
    &buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::Secret;
    use crate::profile::Profiles;
    use crate::signing::{verify_seed, verify_standard};

    #[test]
    fn signed_headers_carry_every_value_and_both_schemes_for_both_secrets() {
        let (current, previous) = (
            Secret::from_stored(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec()),
            Secret::from_stored(b"old secret".to_vec()),
        );
        let (keys, old) = (SigningKeys::new(&current), SigningKeys::new(&previous));
        let (attempt_id, webhook_id) = (Uuid::now_v7(), Uuid::new_v4());
        let body = br#"{"event":"alert.created"}"#;
        for prev in [None, Some(&old)] {
            let signed = Signed {
                content_type: "application/json",
                event_type: "alert.created",
                event_ref: "ref-1",
                attempt_id,
                now: 1_778_250_645_123,
                webhook_id,
                keys: Some(&keys),
                previous: prev,
                body,
            };
            let headers = signed_headers(Profiles::builtin().get("tocsin").unwrap(), &signed);
            let get = |name: &str| {
                headers.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v.to_str().unwrap().to_string())
            };
            assert_eq!(get("content-type").as_deref(), Some("application/json"));
            assert_eq!(get("x-tocsin-event").as_deref(), Some("alert.created"));
            assert_eq!(get("x-tocsin-delivery"), Some(attempt_id.to_string()));
            assert_eq!(get("x-tocsin-timestamp").as_deref(), Some("2026-05-08T14:30:45Z"));
            assert_eq!(get("x-tocsin-webhook-id"), Some(webhook_id.to_string()));
            assert_eq!(get("webhook-id").as_deref(), Some("ref-1"));
            assert_eq!(get("webhook-timestamp").as_deref(), Some("1778250645"));
            assert!(verify_seed(&keys, body, &get("x-tocsin-signature").unwrap()));
            let standard = get("webhook-signature").unwrap();
            assert!(verify_standard(&keys, "ref-1", 1_778_250_645, body, &standard));
            match prev {
                None => {
                    assert_eq!(get("x-tocsin-signature-previous"), None);
                    assert_eq!(standard.split(' ').count(), 1);
                }
                Some(old) => {
                    assert!(verify_seed(old, body, &get("x-tocsin-signature-previous").unwrap()));
                    assert!(verify_standard(old, "ref-1", 1_778_250_645, body, &standard));
                    assert_eq!(standard.split(' ').count(), 2);
                }
            }
        }
    }

    #[test]
    fn logged_headers_are_the_json_of_the_sent_ones_with_credentials_masked() {
        let service = vec![
            (axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (HeaderName::from_static("webhook-id"), HeaderValue::from_static(r#"ref "quoted" \ back"#)),
            (HeaderName::from_static("x-tocsin-event"), HeaderValue::from_static("alert.created")),
        ];
        let raw = std::collections::BTreeMap::from([("X-Api-Key".to_string(), "hunter2".to_string())]);
        let custom = CustomHeaders::parse(&raw, "X-Tocsin", |_| false).unwrap();
        let logged = logged_headers(&service, &custom, Some("Splunk"));
        let parsed: serde_json::Value = serde_json::from_str(&logged).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({
                "content-type": "application/json",
                "webhook-id": r#"ref "quoted" \ back"#,
                "x-tocsin-event": "alert.created",
                "X-Api-Key": "********",
                "authorization": "Splunk ********",
            })
        );
        assert!(!logged.contains("hunter2"));
        assert_eq!(logged_headers(&[], &CustomHeaders::default(), None), "{}");
    }
}
