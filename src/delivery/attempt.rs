//! One delivery attempt: render, sign, send, and decide what happens next.

use std::time::{Duration, Instant, SystemTime};

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::headers::{logged_headers, push_custom, signed_headers, value, Signed};
use super::retry::{delay_before_retry, jitter, parse_retry_after};
use crate::destinations::{self, EventView, RenderSettings, Verdict};
use crate::domain::secret::Secret;
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::profile::{FailurePolicy, Profile};
use crate::signing::SigningKeys;
use crate::store::{AttemptRecord, Breaker, ClaimedDelivery, Completion, NextStep};
use crate::transport::http::{HttpTransport, SendError};
use crate::transport::syslog::SyslogTransport;

/// A webhook ready to deliver to: its settings, its opened secrets, and how its tenant's event
/// types are presented (for the chat and SIEM formats).
pub struct Endpoint {
    pub webhook: Webhook,
    /// The contract its tenant speaks: body shape, header names, signature, retries, breaker.
    pub profile: Arc<Profile>,
    /// The current secret (Splunk's token), and its signing keys (none: deliveries are unsigned).
    pub secret: Secret,
    pub keys: Option<SigningKeys>,
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
    /// The cool-down (the threshold and the time to disable come from the profile).
    pub breaker: BreakerSettings,
}

/// The circuit breaker's deployment-wide setting (see `store::Breaker`); when it opens and when
/// it disables are the profile's [`FailurePolicy`].
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// The first cool-down; it doubles with each opening in a row, up to [`MAX_COOLDOWN_MS`].
    pub cooldown_ms: i64,
}

/// The longest an open circuit waits before its next probe.
pub const MAX_COOLDOWN_MS: i64 = 3_600_000;

impl BreakerSettings {
    /// The breaker's decision for a webhook whose circuit opened `opens` times in a row.
    fn for_webhook(&self, opens: u32, policy: FailurePolicy) -> Breaker {
        let doubled = self.cooldown_ms.saturating_mul(1i64 << opens.min(16));
        Breaker {
            threshold: policy.threshold,
            cooldown_ms: doubled.min(MAX_COOLDOWN_MS.max(self.cooldown_ms)),
            disable_after_ms: i64::try_from(policy.disable_after.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// What the transport answered.
enum Answer {
    Http(crate::transport::http::HttpResponse),
    Written(crate::transport::syslog::Written),
}

/// Makes one attempt of `d` to `dest` and returns its completion (not yet stored).
pub async fn attempt(
    ctx: &AttemptContext<'_>,
    dest: &Endpoint,
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
            shape: &dest.profile.body,
        },
        dest.presentations.get(&d.event_type),
        ctx.render,
        transport.is_syslog(),
    );
    let mut headers = signed_headers(
        &dest.profile,
        &Signed {
            content_type: body.content_type,
            event_type: &d.event_type,
            event_ref: &d.event_ref,
            attempt_id,
            now,
            webhook_id: w.id,
            keys: dest.keys.as_ref(),
            previous: dest.previous.as_ref(),
            body: &body.body,
        },
    );
    // The log shows every header the service set; custom header values may be credentials.
    let auth_scheme = format.auth_scheme();
    let logged =
        if transport.is_syslog() { "{}".to_string() } else { logged_headers(&headers, &w.headers, auth_scheme) };
    push_custom(&mut headers, &w.headers);
    if let Some(credentials) = destinations::authorization(format, &dest.secret) {
        headers.push((axum::http::header::AUTHORIZATION, value(&credentials)));
    }

    let timeout = Duration::from_millis(w.timeout_ms as u64);
    let started = Instant::now();
    let result = if transport.is_syslog() {
        ctx.syslog.send(transport, w.url.host(), w.url.port(), &body.body, timeout).await.map(Answer::Written)
    } else {
        ctx.http.post(w.url.uri(), headers, Bytes::from(body.body), timeout).await.map(Answer::Http)
    };
    let took = started.elapsed();
    let response_ms = took.as_millis() as i64;

    let attempt_no = d.attempts + 1;
    let mut response_headers = String::new();
    let (verdict, http_status, error, retry_after, response_body) = match result {
        // A syslog write has no answer: written is delivered; a message cut to fit one UDP
        // datagram is delivered too, and the log says so.
        Ok(Answer::Written(written)) => {
            let note = written.cut_from.map(|from| format!("delivered cut: {from} bytes did not fit one datagram"));
            (Verdict::Success, None, note, None, Vec::new())
        }
        Ok(Answer::Http(resp)) => {
            let v = format.classify(resp.status, &resp.body_excerpt);
            let retry_after = if matches!(resp.status, 429 | 503) {
                resp.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()))
            } else {
                None
            };
            let error = (v != Verdict::Success).then(|| format.describe(resp.status, &resp.body_excerpt));
            response_headers = resp.headers;
            (v, Some(resp.status), error, retry_after, resp.body_excerpt)
        }
        Err(SendError::Timeout(ms)) => {
            (Verdict::Retry, None, Some(format!("timed out after {ms} ms")), None, Vec::new())
        }
        Err(SendError::Refused(why)) => (Verdict::Retry, None, Some(why), None, Vec::new()),
        Err(SendError::Failed(why)) => (Verdict::Retry, None, Some(why), None, Vec::new()),
    };
    let success = verdict == Verdict::Success;
    let backpressure = !success && retry_after.is_some();
    // A test send reports what the endpoint answered; it never deactivates the webhook.
    let gone = verdict == Verdict::Gone && !is_test;

    let next = if success {
        NextStep::Succeeded
    } else if verdict == Verdict::Permanent {
        NextStep::Failed
    } else if is_test || attempt_no > w.retry_count {
        // A gone endpoint keeps its deliveries (held) for when it is re-enabled.
        if gone {
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
            None => &dest.profile.webhooks.retry_schedule,
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
    let outcome = match next {
        NextStep::Succeeded => "succeeded",
        NextStep::Failed => "failed",
        NextStep::Retry(_) => "retrying",
    };
    crate::metrics::attempt(w.format.as_str(), outcome, took);
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
            response_headers,
            next_attempt_at,
            created_at: now_ms(),
        },
        next,
        claimer: claimer.to_string(),
        // 429 and 503 with Retry-After are back-pressure: they delay, they do not count.
        counts_for_breaker: !is_test && !backpressure,
        counter_was_zero: w.failure_count == 0 && !dest.failed_since_read.load(std::sync::atomic::Ordering::Relaxed),
        gone,
        ordered: d.ordered,
        breaker: ctx.breaker.for_webhook(w.circuit_opens, dest.profile.failure),
    }
}
