//! One delivery attempt: render, sign, send, and decide what happens next.

use std::time::{Duration, Instant, SystemTime};

use std::collections::HashMap;

use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use uuid::Uuid;

use super::retry::{delay_before_retry, jitter, parse_retry_after};
use crate::destinations::{self, EventView, RenderSettings, Verdict};
use crate::domain::secret::Secret;
use crate::domain::time::now_ms;
use crate::domain::webhook::{CustomHeaders, Webhook};
use crate::signing::{seed_signature_bytes, standard_signature_bytes, SigningKeys};
use crate::store::{AttemptRecord, ClaimedDelivery, Completion, NextStep};
use crate::transport::http::{HttpTransport, SendError};
use crate::transport::syslog::SyslogTransport;

/// The names of the service's own headers, built once from the configured prefix.
#[derive(Clone, Debug)]
pub struct HeaderNames {
    pub event: HeaderName,
    pub delivery: HeaderName,
    pub timestamp: HeaderName,
    pub webhook_id: HeaderName,
    pub signature: HeaderName,
    pub signature_previous: HeaderName,
}

impl HeaderNames {
    pub fn new(prefix: &str) -> Self {
        let name = |suffix: &str| {
            HeaderName::from_bytes(format!("{prefix}-{suffix}").to_ascii_lowercase().as_bytes())
                .expect("the header prefix is validated in config")
        };
        Self {
            event: name("Event"),
            delivery: name("Delivery"),
            timestamp: name("Timestamp"),
            webhook_id: name("Webhook-Id"),
            signature: name("Signature"),
            signature_previous: name("Signature-Previous"),
        }
    }
}

/// A webhook ready to deliver to: its settings, its opened secrets, and how its tenant's event
/// types are presented (for the chat and SIEM formats).
pub struct Destination {
    pub webhook: Webhook,
    /// The current secret (Splunk's token), and its signing keys.
    pub secret: Secret,
    pub keys: SigningKeys,
    /// The previous secret's signing keys, while its grace period lasts.
    pub previous: Option<SigningKeys>,
    pub presentations: HashMap<String, serde_json::Value>,
    /// Set once an attempt through this destination failed: `webhook.failure_count` is then
    /// stale, and a later success must reset the breaker's counter even though it read 0.
    pub failed_since_read: std::sync::atomic::AtomicBool,
}

/// What the attempt needs from the dispatcher.
pub struct AttemptContext<'a> {
    pub http: &'a HttpTransport,
    pub syslog: &'a SyslogTransport,
    pub render: &'a RenderSettings,
    pub names: &'a HeaderNames,
    pub retry_delays: &'a [Duration],
    pub failure_threshold: u32,
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The request's headers as the delivery log shows them: the service's own in full, custom ones
/// and a secret sent as credentials masked (they may be credentials). Written as JSON text directly: one
/// is written per attempt, and serde's map writer escaped every character on its own.
fn logged_headers(service: &[(HeaderName, HeaderValue)], custom: &CustomHeaders, auth_scheme: Option<&str>) -> String {
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

/// Appends `s` as a JSON string: as it is when nothing in it needs escaping (header names never
/// do, nor most values; an event_ref may), else through serde_json.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
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
    pub keys: &'a SigningKeys,
    /// The previous secret's keys during its grace period: signed with too.
    pub previous: Option<&'a SigningKeys>,
    pub body: &'a [u8],
}

/// The service's own headers of a request, both signature schemes included (custom headers and
/// Splunk's token are the caller's). The load test's raw ceiling sends the same.
///
/// Every value is written into one buffer and handed to its header as a slice of it: one
/// allocation per request instead of one per value and one more per signature string.
pub fn signed_headers(n: &HeaderNames, s: &Signed<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let unix = s.now.div_euclid(1000);
    // The timestamp's digits are both a header and part of what the Standard Webhooks scheme signs.
    let mut digits = [0u8; 20];
    let digits = decimal(unix, &mut digits);
    let (mut attempt_id, mut webhook_id) = (Uuid::encode_buffer(), Uuid::encode_buffer());

    // Each value runs from where it starts to where the next one starts (or the buffer ends).
    let mut buf = Vec::with_capacity(320);
    let mut starts: Vec<(HeaderName, usize)> = Vec::with_capacity(9);
    let mut put = |buf: &mut Vec<u8>, name: HeaderName, bytes: &[u8]| {
        starts.push((name, buf.len()));
        buf.extend_from_slice(bytes);
    };
    put(&mut buf, n.event.clone(), s.event_type.as_bytes());
    put(&mut buf, n.delivery.clone(), s.attempt_id.hyphenated().encode_lower(&mut attempt_id).as_bytes());
    put(&mut buf, n.timestamp.clone(), &[]);
    crate::domain::time::write_rfc3339_secs(s.now, &mut buf);
    put(&mut buf, n.webhook_id.clone(), s.webhook_id.hyphenated().encode_lower(&mut webhook_id).as_bytes());
    put(&mut buf, n.signature.clone(), &seed_signature_bytes(s.keys, s.body));
    if let Some(prev) = s.previous {
        put(&mut buf, n.signature_previous.clone(), &seed_signature_bytes(prev, s.body));
    }
    put(&mut buf, HeaderName::from_static("webhook-id"), s.event_ref.as_bytes());
    put(&mut buf, HeaderName::from_static("webhook-timestamp"), digits);
    put(
        &mut buf,
        HeaderName::from_static("webhook-signature"),
        &standard_signature_bytes(s.keys, s.event_ref, digits, s.body),
    );
    if let Some(prev) = s.previous {
        buf.push(b' ');
        buf.extend_from_slice(&standard_signature_bytes(prev, s.event_ref, digits, s.body));
    }
    let ends: Vec<usize> = starts.iter().skip(1).map(|(_, start)| *start).chain([buf.len()]).collect();

    let buf = Bytes::from(buf);
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(14);
    headers.push((axum::http::header::CONTENT_TYPE, HeaderValue::from_static(s.content_type)));
    headers.push((
        axum::http::header::USER_AGENT,
        HeaderValue::from_static(concat!("Tocsin-Webhook/", env!("CARGO_PKG_VERSION"))),
    ));
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
    let _ = write!(cursor, "{n}");
    let len = cursor.position() as usize;
    &buf[..len]
}

/// Makes one attempt of `d` to `dest` and returns its completion (not yet stored).
pub async fn attempt(
    ctx: &AttemptContext<'_>,
    dest: &Destination,
    d: &ClaimedDelivery,
    claimer: &str,
    is_test: bool,
) -> Completion {
    let w = &dest.webhook;
    let attempt_id = Uuid::now_v7();
    let now = now_ms();
    let transport = w.url.transport();
    let format = destinations::of(w.format);
    let body = format.render(
        &EventView {
            event_type: &d.event_type,
            event_ref: &d.event_ref,
            tenant_id: &d.tenant_id,
            data: &d.data,
            emitted_at: now,
        },
        dest.presentations.get(&d.event_type),
        ctx.render,
        transport.is_syslog(),
    );
    let mut headers = signed_headers(
        ctx.names,
        &Signed {
            content_type: body.content_type,
            event_type: &d.event_type,
            event_ref: &d.event_ref,
            attempt_id,
            now,
            webhook_id: w.id,
            keys: &dest.keys,
            previous: dest.previous.as_ref(),
            body: &body.body,
        },
    );
    // The log shows every header the service set; custom header values may be credentials.
    let auth_scheme = format.auth_scheme();
    let logged =
        if transport.is_syslog() { "{}".to_string() } else { logged_headers(&headers, &w.headers, auth_scheme) };
    for (k, v) in w.headers.iter() {
        if let (Ok(name), Ok(val)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.push((name, val));
        }
    }
    if let Some(credentials) = destinations::authorization(format, &dest.secret) {
        headers.push((axum::http::header::AUTHORIZATION, value(&credentials)));
    }

    let timeout = Duration::from_millis(w.timeout_ms as u64);
    let started = Instant::now();
    let result = if transport.is_syslog() {
        ctx.syslog.send(transport, w.url.host(), w.url.port(), &body.body, timeout).await.map(|()| None)
    } else {
        ctx.http.post(w.url.uri(), headers, Bytes::from(body.body), timeout).await.map(Some)
    };
    let response_ms = started.elapsed().as_millis() as i64;

    let attempt_no = d.attempts + 1;
    let (verdict, http_status, error, retry_after, response_body) = match result {
        // A syslog write has no answer: written is delivered.
        Ok(None) => (Verdict::Success, None, None, None, Vec::new()),
        Ok(Some(resp)) => {
            let v = format.classify(resp.status, &resp.body_excerpt);
            let retry_after = if matches!(resp.status, 429 | 503) {
                resp.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()))
            } else {
                None
            };
            let error = (v != Verdict::Success).then(|| format.describe(resp.status, &resp.body_excerpt));
            (v, Some(resp.status), error, retry_after, resp.body_excerpt)
        }
        Err(SendError::Timeout(ms)) => {
            (Verdict::Retry, None, Some(format!("timed out after {ms} ms")), None, Vec::new())
        }
        Err(SendError::Refused(why)) => (Verdict::Retry, None, Some(why), None, Vec::new()),
        Err(SendError::Failed(why)) => (Verdict::Retry, None, Some(why), None, Vec::new()),
    };
    let success = verdict == Verdict::Success;
    let gone = verdict == Verdict::Gone;

    let next = if success {
        NextStep::Succeeded
    } else if verdict == Verdict::Permanent {
        NextStep::Failed
    } else if is_test || attempt_no > w.retry_count {
        // A gone endpoint keeps its deliveries (held) for when it is re-enabled.
        if gone && !is_test {
            NextStep::Retry(now_ms())
        } else {
            NextStep::Failed
        }
    } else {
        let schedule: Vec<Duration>;
        let delays = match &w.retry_delays_ms {
            Some(ms) => {
                schedule = ms.iter().map(|m| Duration::from_millis(*m)).collect();
                &schedule[..]
            }
            None => ctx.retry_delays,
        };
        let mut wait = jitter(delay_before_retry(delays, attempt_no));
        if let Some(at_least) = retry_after {
            wait = wait.max(at_least);
        }
        NextStep::Retry(now_ms() + wait.as_millis() as i64)
    };
    let next_attempt_at = match next {
        NextStep::Retry(at) => Some(at),
        _ => None,
    };
    if !success && !is_test {
        dest.failed_since_read.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Completion {
        attempt: AttemptRecord {
            id: attempt_id,
            delivery_seq: d.seq,
            tenant_id: d.tenant_id.clone(),
            webhook_id: w.id,
            event_ref: d.event_ref.clone(),
            event_type: d.event_type.clone(),
            format: w.format,
            attempt_no,
            success,
            http_status,
            error,
            response_ms,
            request_headers: logged,
            dispatched_at: now,
            response_body,
            next_attempt_at,
            created_at: now_ms(),
        },
        next,
        claimer: claimer.to_string(),
        counts_for_breaker: !is_test,
        counter_was_zero: w.failure_count == 0 && !dest.failed_since_read.load(std::sync::atomic::Ordering::Relaxed),
        gone,
        failure_threshold: ctx.failure_threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                keys: &keys,
                previous: prev,
                body,
            };
            let headers = signed_headers(&HeaderNames::new("X-Tocsin"), &signed);
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
        let custom = CustomHeaders::parse(&raw, "X-Tocsin").unwrap();
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
