//! Delivery: headers and both signatures, retries, Retry-After, 410, the circuit breaker, held
//! deliveries, isolation, SSRF, ordering keys, idempotent and batch publish, test events,
//! redelivery, stats and the delivery log, against real receivers on 127.0.0.1.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::{assert_field_error, Backend, TestApp, ADMIN_TOKEN};
use crate::receiver::{Received, Receiver, Reply};

const WAIT: Duration = Duration::from_secs(20);

fn quarantined() -> Value {
    json!({
        "scan_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "message_id": "<CABc123@mail.gmail.com>",
        "sender_email": "attacker@example.com",
        "subject": "Urgent: reset your password now",
        "phish_score": 95,
        "source": "auto",
        "reason": "policy"
    })
}

/// The seeds' check, written independently: `sha256=` + hex HMAC-SHA256(secret, body).
fn seed_signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    expected == header
}

/// The published Standard Webhooks library's check.
fn standard_signature_ok(secret: &str, r: &Received) -> bool {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    wh.verify(&r.body, &r.headers).is_ok()
}

async fn webhook_to(app: &TestApp, url: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "receiver", "url": url, "event_types": ["*"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let created = app.create_webhook(body).await;
    (created["id"].as_str().unwrap().to_string(), created["secret"].as_str().unwrap().to_string())
}

both_backends!(headers_and_both_signatures, headers_on);
async fn headers_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, secret) = webhook_to(&app, &rx.url(), json!({"headers": {"X-Api-Key": "k-123"}})).await;
    let answer = app.publish("email.quarantined", quarantined(), Some("3fa85f64-5717-4562-b3fc-2c963f66afa6")).await;
    assert_eq!(answer["deliveries"], 1);
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("Tocsin-Webhook/"));
    assert_eq!(r.header("x-tocsin-event"), "email.quarantined");
    assert!(r.header("x-tocsin-delivery").parse::<uuid::Uuid>().is_ok());
    assert!(r.header("x-tocsin-timestamp").ends_with('Z'));
    assert_eq!(r.header("x-tocsin-webhook-id"), id);
    assert_eq!(r.header("x-api-key"), "k-123");
    assert_eq!(r.header("webhook-id"), "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert!((ts - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 60);
    assert!(seed_signature_ok(&secret, &r.body, &r.header("x-tocsin-signature")), "seed signature");
    assert!(standard_signature_ok(&secret, r), "Standard Webhooks signature");
    let envelope = r.json();
    assert_eq!(envelope["event"], "email.quarantined");
    assert_eq!(envelope["event_ref"], "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    assert_eq!(envelope["tenant_id"], "default");
    assert_eq!(envelope["data"], quarantined());
    assert!(envelope["emitted_at"].as_str().unwrap().ends_with('Z'));
    seed_snippets_verify(&secret, r);

    // The delivery log shows the attempt, its headers (signatures, never the secret).
    let log = app
        .poll(&format!("/api/v1/webhooks/{id}/deliveries"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 1)
        })
        .await;
    let a = &log["data"][0];
    assert_eq!(a["success"], true);
    assert_eq!(a["http_status"], 200);
    assert_eq!(a["attempt_number"], 1);
    assert_eq!(a["id"], r.header("x-tocsin-delivery"));
    assert_eq!(a["request_headers"]["x-tocsin-signature"], r.header("x-tocsin-signature"));
    assert_eq!(a["request_headers"]["X-Api-Key"], "********");
    assert_eq!(a["response_body"], "ok");
    assert!(a["response_headers"]["content-type"].as_str().is_some_and(|t| t.starts_with("text/plain")), "{a}");
    assert!(!log.to_string().contains(&secret));
    // One attempt in detail: its body is rendered again, byte for byte what was sent.
    let (status, detail) =
        app.get(&format!("/api/v1/webhooks/{id}/deliveries/{}", a["id"].as_str().unwrap()), ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["request_body"].as_str().unwrap().as_bytes(), &r.body[..]);
    let (_, recent) = app.get("/api/v1/deliveries?limit=50", ADMIN_TOKEN).await;
    assert_eq!(recent["data"][0]["id"], a["id"]);
    let (_, event) = app.get("/api/v1/events/3fa85f64-5717-4562-b3fc-2c963f66afa6", ADMIN_TOKEN).await;
    assert_eq!(event["deliveries"][0]["state"], "succeeded");
    assert_eq!(event["data"]["phish_score"], 95);
}

/// Runs the seed briefs' Python (NetRecon) and Node.js (PhishNet) snippets, unchanged, on the
/// delivery, when those interpreters are installed.
fn seed_snippets_verify(secret: &str, r: &Received) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, &r.body).unwrap();
    let sig = r.header("x-tocsin-signature");
    let python = format!(
        "import hmac\nimport hashlib\ndef verify_webhook(payload: bytes, signature: str, secret: str) -> bool:\n    \
         expected = \"sha256=\" + hmac.new(\n        secret.encode(), payload, hashlib.sha256\n    ).hexdigest()\n    \
         return hmac.compare_digest(expected, signature)\n\
         import sys\nsys.exit(0 if verify_webhook(open({body:?}, 'rb').read(), {sig:?}, {secret:?}) else 1)\n",
        body = body.display().to_string()
    );
    if let Ok(out) = std::process::Command::new("python3").arg("-c").arg(&python).output() {
        assert!(out.status.success(), "the NetRecon Python snippet rejects the signature: {out:?}");
    }
    let node = format!(
        "const crypto = require('crypto');\n\
         function verifySignature(secret, rawBody, signatureHeader) {{\n\
         const expected = 'sha256=' + crypto\n.createHmac('sha256', secret)\n.update(rawBody)\n.digest('hex');\n\
         if (expected.length !== signatureHeader.length) return false;\n\
         return crypto.timingSafeEqual(\nBuffer.from(expected),\nBuffer.from(signatureHeader)\n);\n}}\n\
         process.exit(verifySignature({secret:?}, require('fs').readFileSync({body:?}), {sig:?}) ? 0 : 1);\n",
        body = body.display().to_string()
    );
    if let Ok(out) = std::process::Command::new("node").arg("-e").arg(&node).output() {
        assert!(out.status.success(), "the PhishNet Node.js snippet rejects the signature: {out:?}");
    }
}

both_backends!(retries_follow_the_schedule, retries_on);
async fn retries_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::with_plan(|n, _| if n < 2 { Reply::Status(500) } else { Reply::Ok }).await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 3, "retry_delays_ms": [0, 300, 600]})).await;
    app.publish("alert.created", json!({"severity": "high"}), Some("retry-1")).await;
    let got = rx.wait_for(3, WAIT).await;
    let ids: std::collections::HashSet<String> = got.iter().map(|r| r.header("x-tocsin-delivery")).collect();
    assert_eq!(ids.len(), 3, "each attempt has its own X-Tocsin-Delivery");
    assert!(got.iter().all(|r| r.event_ref() == "retry-1"), "webhook-id is stable across retries");
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(240), "first retry after ~300 ms (±20%), was {gap1:?}");
    assert!(gap2 >= Duration::from_millis(480), "second retry after ~600 ms (±20%), was {gap2:?}");
    let log = app
        .poll(&format!("/api/v1/webhooks/{id}/deliveries"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 3)
        })
        .await;
    let attempts: Vec<(i64, bool)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt_number"].as_i64().unwrap(), a["success"].as_bool().unwrap()))
        .collect();
    assert_eq!(attempts, [(3, true), (2, false), (1, false)], "newest first");
    assert_eq!(log["data"][2]["http_status"], 500);
    assert_eq!(log["data"][2]["error"], "HTTP 500: status 500", "the status and what the receiver said");
    assert!(log["data"][2]["next_attempt_at"].is_string());
    let (_, failed) = app.get(&format!("/api/v1/webhooks/{id}/deliveries?status=failed"), ADMIN_TOKEN).await;
    assert_eq!(failed["total"], 2);
    let (_, page) = app.get(&format!("/api/v1/webhooks/{id}/deliveries?per_page=1&page=2"), ADMIN_TOKEN).await;
    assert_eq!(page["data"][0]["attempt_number"], 2);
    let (_, w) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(w["failure_count"], 0, "a success resets the counter");
    let (_, stats) = app.get(&format!("/api/v1/webhooks/{id}/stats?window=24h"), ADMIN_TOKEN).await;
    assert_eq!(
        (stats["attempts"].as_i64(), stats["successes"].as_i64(), stats["failures"].as_i64()),
        (Some(3), Some(1), Some(2))
    );
    assert!((stats["success_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(stats["p50_response_ms"].is_i64() && stats["p95_response_ms"].is_i64());
    assert!(stats["last_success_at"].is_string() && stats["last_failure_at"].is_string());
}

both_backends!(exhausted_retries_fail_visibly, exhausted_on);
async fn exhausted_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::with_plan(|_, _| Reply::Status(502)).await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 1, "retry_delays_ms": [0, 20]})).await;
    app.publish("alert.created", json!({}), Some("doomed")).await;
    let event = app.poll("/api/v1/events/doomed", WAIT, |v| v["deliveries"][0]["state"] == "failed").await;
    assert_eq!(event["deliveries"][0]["attempts"], 2);
    assert_eq!(event["deliveries"][0]["last_status"], 502);
    assert_eq!(rx.received().len(), 2);
    let (_, log) = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), ADMIN_TOKEN).await;
    assert_eq!(log["data"][0]["next_attempt_at"], Value::Null);
}

both_backends!(retry_after_is_honoured, retry_after_on);
async fn retry_after_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::with_plan(|n, _| match n {
        0 => Reply::RetryAfter(429, "1".into()),
        1 => Reply::RetryAfter(503, httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2))),
        _ => Reply::Ok,
    })
    .await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 3, "retry_delays_ms": [0, 10]})).await;
    app.publish("alert.created", json!({}), None).await;
    let got = rx.wait_for(3, WAIT).await;
    // Back-pressure (429 and 503 with Retry-After) delays; it never counts as a failure.
    let (_, w) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!((w["failure_count"].as_u64(), w["health"].as_str()), (Some(0), Some("healthy")), "{w}");
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(950),
        "429 Retry-After: 1 s, was {:?}",
        got[1].at - got[0].at
    );
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(950),
        "503 with an HTTP date, was {:?}",
        got[2].at - got[1].at
    );
}

both_backends!(gone_deactivates_and_holds, gone_on);
async fn gone_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::with_plan(|_, _| Reply::Status(410)).await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 5})).await;
    // A test event reports the 410 and leaves the webhook as it was.
    let (status, test) = app.post(&format!("/api/v1/webhooks/{id}/test"), ADMIN_TOKEN, json!({})).await;
    assert_eq!((status, test["http_status"].as_u64()), (StatusCode::OK, Some(410)), "{test}");
    let (_, w) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(w["is_active"], true, "a test send never deactivates: {w}");
    app.publish("alert.created", json!({"n": 1}), Some("g1")).await;
    let w = app.poll(&format!("/api/v1/webhooks/{id}"), WAIT, |v| v["is_active"] == false).await;
    assert_eq!(w["disabled_reason"], "gone");
    assert_eq!(rx.received().len(), 2, "the test, then one delivery: no retry to a gone endpoint");
    app.publish("alert.created", json!({"n": 2}), Some("g2")).await;
    let (_, e1) = app.get("/api/v1/events/g1", ADMIN_TOKEN).await;
    let (_, e2) = app.get("/api/v1/events/g2", ADMIN_TOKEN).await;
    assert_eq!(e1["deliveries"][0]["state"], "held");
    assert_eq!(e2["deliveries"][0]["state"], "held");
    // The endpoint is back: re-enabling releases what was held.
    rx.set_plan(|_, _| Reply::Ok);
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    let got = rx
        .wait_until(WAIT, "g1 and g2", |r| {
            r.iter().any(|x| x.event_ref() == "g2") && r.iter().filter(|x| x.event_ref() == "g1").count() >= 2
        })
        .await;
    assert!(got.len() >= 3);
}

both_backends!(a_large_held_backlog_is_released_in_chunks, held_backlog_on);
async fn held_backlog_on(backend: Backend) {
    // More held deliveries than one release chunk (5000): re-enabling releases the first chunk,
    // the dispatcher the rest, oldest first; every one arrives.
    const EVENTS: usize = 5300;
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({})).await;
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": false})).await;
    for chunk in 0..EVENTS.div_ceil(1000) {
        let events: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(EVENTS))
            .map(|n| json!({"event": "alert.created", "data": {"n": n}, "event_ref": format!("held-{n}")}))
            .collect();
        let (s, _) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
        assert!(s.is_success(), "batch publish: {s}");
    }
    let (_, e) = app.get("/api/v1/events/held-5299", ADMIN_TOKEN).await;
    assert_eq!(e["deliveries"][0]["state"], "held");
    assert!(rx.received().is_empty(), "nothing is sent to a disabled webhook");
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    let got = rx.wait_for(EVENTS, Duration::from_secs(60)).await;
    let refs: std::collections::HashSet<String> = got.iter().map(|r| r.event_ref()).collect();
    assert_eq!(refs.len(), EVENTS, "every held delivery arrives once released");
}

both_backends!(circuit_breaker, breaker_on);
async fn breaker_on(backend: Backend) {
    // Failing: the circuit opens after 3 failures in a row, the owner and the subscribers are
    // told, deliveries wait and are probed; disabled only after failing for TOCSIN_DISABLE_AFTER.
    let mail = crate::smtp::SmtpSink::start().await;
    let smtp_url = format!("smtp://127.0.0.1:{}", mail.port);
    let app = TestApp::delivering(backend, |s| {
        s.failure_threshold = 3;
        s.breaker_cooldown = Duration::from_millis(200);
        s.disable_after = Duration::from_secs(5);
        s.smtp_url = Some(tocsin::config::Sensitive(smtp_url));
    })
    .await;
    let bad = Receiver::with_plan(|_, _| Reply::Status(500)).await;
    let watcher = Receiver::start().await;
    // A credential in its path (as Slack's and Teams' URLs have): told masked, never whole.
    let (id, _) = webhook_to(
        &app,
        &format!("{}/T000/B000/credential-in-path", bad.url()),
        json!({"retry_count": 10, "retry_delays_ms": [0, 50], "event_types": ["alert.*"], "owner_email": "soc@example.com"}),
    )
    .await;
    let mut body =
        json!({"name": "watch", "url": watcher.url(), "event_types": ["webhook.failing", "webhook.disabled"]});
    body["retry_count"] = json!(0);
    app.create_webhook(body).await;
    for i in 0..3 {
        app.publish("alert.created", json!({"i": i}), Some(&format!("b{i}"))).await;
    }
    let w = app.poll(&format!("/api/v1/webhooks/{id}"), WAIT, |v| v["health"] == "failing").await;
    assert_eq!(w["is_active"], true, "failing is not disabled: {w}");
    assert!(w["circuit_open_until"].is_string(), "{w}");
    let got = watcher.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-tocsin-event"), "webhook.failing");
    assert_eq!(got[0].json()["data"]["webhook_id"], id);
    // Open: the deliveries wait (pending), probed one at a time after each cool-down.
    let (_, e) = app.get("/api/v1/events/b0", ADMIN_TOKEN).await;
    assert!(matches!(e["deliveries"][0]["state"].as_str(), Some("pending" | "leased")), "{e}");
    // Still failing after TOCSIN_DISABLE_AFTER: disabled, backlog held, everyone told.
    let w = app.poll(&format!("/api/v1/webhooks/{id}"), Duration::from_secs(20), |v| v["is_active"] == false).await;
    assert_eq!((w["disabled_reason"].as_str(), w["health"].as_str()), (Some("consecutive_failures"), Some("disabled")));
    let got = watcher.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("x-tocsin-event"), "webhook.disabled");
    assert!(got.iter().all(|r| !String::from_utf8_lossy(&r.body).contains("credential-in-path")), "URLs are masked");
    assert_eq!(got[1].json()["data"]["url"], format!("{}/…", bad.url()), "{}", got[1].json());
    let deadline = Instant::now() + WAIT;
    while mail.messages.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the owner was not emailed twice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = mail.messages.lock().unwrap().clone();
    assert!(messages[0].contains("soc@example.com") && messages[0].contains("failing"), "{}", messages[0]);
    assert!(messages[1].contains("disabled"), "{}", messages[1]);
    assert!(messages.iter().all(|m| !m.contains("credential-in-path")), "the emails mask the URL");
    let (_, audit) = app.get("/api/v1/audit-log", ADMIN_TOKEN).await;
    assert!(!audit.to_string().contains("credential-in-path"), "the audit log masks the URL: {audit}");
    let sent_while_failing = bad.received().len();
    assert!(sent_while_failing < 40, "an open circuit sends probes only, not every retry: {sent_while_failing}");
    for i in 0..3 {
        let (_, e) = app.get(&format!("/api/v1/events/b{i}"), ADMIN_TOKEN).await;
        assert_eq!(e["deliveries"][0]["state"], "held", "{e}");
    }
    // Re-enabled with the endpoint back: everything is delivered, and the webhook is healthy.
    bad.set_plan(|_, _| Reply::Ok);
    let (_, on) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    assert_eq!((on["failure_count"].as_u64(), on["health"].as_str()), (Some(0), Some("healthy")), "{on}");
    for i in 0..3 {
        app.poll(&format!("/api/v1/events/b{i}"), WAIT, |v| v["deliveries"][0]["state"] == "succeeded").await;
    }
}

both_backends!(a_webhook_without_owner_tells_the_tenant_contact, tenant_contact_on);
async fn tenant_contact_on(backend: Backend) {
    let mail = crate::smtp::SmtpSink::start().await;
    let smtp_url = format!("smtp://127.0.0.1:{}", mail.port);
    let app = TestApp::delivering(backend, |s| {
        s.failure_threshold = 1;
        s.smtp_url = Some(tocsin::config::Sensitive(smtp_url));
    })
    .await;
    let (status, bad) = app.put("/api/v1/tenant", ADMIN_TOKEN, json!({"contact_email": "not an address"})).await;
    assert_eq!((status, bad["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("contact_email")));
    let (status, tenant) =
        app.put("/api/v1/tenant", ADMIN_TOKEN, json!({"contact_email": "soc-team@example.com"})).await;
    assert_eq!((status, tenant["contact_email"].as_str()), (StatusCode::OK, Some("soc-team@example.com")), "{tenant}");
    let viewer = app.token("default", tocsin::domain::token::Role::Viewer).await;
    assert_eq!(app.get("/api/v1/tenant", &viewer).await.1["contact_email"], "soc-team@example.com");
    let rx = Receiver::with_plan(|_, _| Reply::Status(500)).await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 0})).await;
    app.publish("alert.created", json!({}), Some("c1")).await;
    app.poll(&format!("/api/v1/webhooks/{id}"), WAIT, |v| v["health"] == "failing").await;
    let deadline = Instant::now() + WAIT;
    while mail.messages.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the tenant's contact was not emailed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = mail.messages.lock().unwrap()[0].clone();
    assert!(message.contains("soc-team@example.com") && message.contains("failing"), "{message}");
}

both_backends!(a_short_outage_heals_without_anyone, short_outage_on);
async fn short_outage_on(backend: Backend) {
    // A receiver that restarts: 1.5 s of 503s under 50 events/s. The circuit opens and closes
    // again on its own; the webhook stays active and every event arrives.
    let app = TestApp::delivering(backend, |s| {
        s.breaker_cooldown = Duration::from_millis(300);
        s.disable_after = Duration::from_secs(3600);
    })
    .await;
    let started = Instant::now();
    let rx = Receiver::with_plan(move |_, _| {
        if started.elapsed() < Duration::from_millis(1500) {
            Reply::Status(503)
        } else {
            Reply::Ok
        }
    })
    .await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 10, "retry_delays_ms": [0, 100, 200, 400]})).await;
    for i in 0..100 {
        app.publish("alert.created", json!({"i": i}), Some(&format!("o{i}"))).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..100 {
        let path = format!("/api/v1/events/o{i}");
        app.poll(&path, Duration::from_secs(30), |v| v["deliveries"][0]["state"] == "succeeded").await;
    }
    let w = app.poll(&format!("/api/v1/webhooks/{id}"), WAIT, |v| v["health"] == "healthy").await;
    assert_eq!(w["is_active"], true, "{w}");
    assert_eq!(w["failure_count"], 0, "{w}");
}

both_backends!(isolation_from_a_hanging_endpoint, isolation_on);
async fn isolation_on(backend: Backend) {
    let app = TestApp::delivering(backend, |s| s.webhook_concurrency = 8).await;
    let healthy = Receiver::start().await;
    // It hangs past a long timeout: an endpoint that took a worker the healthy one needs would
    // delay it by the whole timeout, which no pause of a busy machine comes near.
    let hanging = Receiver::with_plan(|_, _| Reply::Hang(Duration::from_secs(60))).await;
    webhook_to(&app, &healthy.url(), json!({"event_types": ["alert.*"]})).await;
    const N: usize = 40;
    let publish_all = |tag: &'static str| {
        let app = &app;
        async move {
            let events: Vec<Value> = (0..N)
                .map(|i| json!({"event": "alert.created", "data": {"i": i}, "event_ref": format!("{tag}-{i}")}))
                .collect();
            let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        }
    };
    // Alone.
    let t0 = Instant::now();
    publish_all("alone").await;
    healthy.wait_for(N, WAIT).await;
    let alone = t0.elapsed();
    // Beside an endpoint that hangs past its 15 s timeout on every request.
    webhook_to(&app, &hanging.url(), json!({"event_types": ["alert.*"], "timeout_ms": 15000, "retry_count": 0})).await;
    let t1 = Instant::now();
    publish_all("beside").await;
    healthy.wait_for(2 * N, WAIT).await;
    let beside = t1.elapsed();
    eprintln!("healthy endpoint: {N} deliveries alone {alone:?}, beside a hanging endpoint {beside:?}");
    // Sharing a worker with the hanging endpoint would cost at least its 15 s timeout.
    assert!(beside < Duration::from_secs(10), "alone {alone:?}, beside a hanging endpoint {beside:?}");
    hanging.wait_for(1, WAIT).await;
}

both_backends!(ssrf_guard_applies_to_resolved_names, ssrf_on);
async fn ssrf_on(backend: Backend) {
    // No allow-list: loopback is refused, also behind a name.
    let app = TestApp::spawn(backend).await;
    let rx = Receiver::start().await;
    let url = format!("http://localhost:{}/hook", rx.addr.port());
    let (id, _) = webhook_to(&app, &url, json!({"retry_count": 0})).await;
    let (status, attempt) = app.post(&format!("/api/v1/webhooks/{id}/test"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["success"], false);
    let error = attempt["error"].as_str().unwrap();
    assert!(error.contains("loopback") && error.contains("SSRF"), "{error}");
    assert!(rx.received().is_empty(), "nothing reached the loopback receiver");
    // Allowed through the allow-list.
    let app = TestApp::delivering(backend, |_| {}).await;
    let (id, _) = webhook_to(&app, &url, json!({})).await;
    let (_, attempt) = app.post(&format!("/api/v1/webhooks/{id}/test"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(attempt["success"], true, "{attempt}");
}

both_backends!(ordering_keys_keep_order_per_key, ordering_on);
async fn ordering_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    // The first delivery of alert A fails at least twice, and until alert B's arrived: B must
    // get through while A's head is failing (a B held up behind A would arrive after A's
    // retries ran out, ten of them).
    let rx = Receiver::start().await;
    let (fails, b_arrived) = (AtomicUsize::new(0), AtomicBool::new(false));
    rx.set_plan(move |_, r| match r.event_ref().as_str() {
        "b1" => {
            b_arrived.store(true, Ordering::SeqCst);
            Reply::Ok
        }
        "a1" if fails.fetch_add(1, Ordering::SeqCst) < 2 || !b_arrived.load(Ordering::SeqCst) => Reply::Status(500),
        _ => Reply::Ok,
    });
    webhook_to(&app, &rx.url(), json!({"retry_count": 10, "retry_delays_ms": [0, 150, 300]})).await;
    let publish = |r: &'static str, ev: &'static str, key: &'static str| {
        let app = &app;
        async move {
            let (s, b) = app
                .post(
                    "/api/v1/events",
                    ADMIN_TOKEN,
                    json!({"event": ev, "data": {}, "event_ref": r, "ordering_key": key}),
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        }
    };
    publish("a1", "alert.created", "alert-A").await;
    publish("a2", "alert.resolved", "alert-A").await;
    publish("b1", "alert.created", "alert-B").await;
    let got = rx.wait_until(WAIT, "a2", |r| r.iter().any(|x| x.event_ref() == "a2")).await;
    let order: Vec<String> = got.iter().map(Received::event_ref).collect();
    let pos = |r: &str| order.iter().position(|x| x == r).unwrap();
    let last_a1 = order.iter().rposition(|x| x == "a1").unwrap();
    assert!(pos("b1") < last_a1, "another key is not held up by a failing head: {order:?}");
    assert!(last_a1 < pos("a2"), "alert.created reaches the webhook before alert.resolved: {order:?}");
    assert!(order.iter().filter(|x| *x == "a1").count() >= 3, "{order:?}");
}

both_backends!(idempotent_and_batch_publish, publish_on);
async fn publish_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    webhook_to(&app, &rx.url(), json!({"event_types": ["email.*"]})).await;
    webhook_to(&app, &rx.url(), json!({"event_types": ["email.quarantined"]})).await;
    webhook_to(&app, &rx.url(), json!({"event_types": ["alert.*"]})).await;
    let first = app.publish("email.quarantined", quarantined(), Some("same-ref")).await;
    assert_eq!(first["deliveries"], 2, "fan-out to the two matching webhooks");
    assert_eq!(first["duplicate"], false);
    let again = app.publish("email.quarantined", json!({"other": true}), Some("same-ref")).await;
    assert_eq!(again["deliveries"], 2);
    assert_eq!(again["duplicate"], true);
    rx.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 2, "a repeated event_ref delivers nothing new");
    // A generated event_ref.
    let gen = app.publish("email.restored", json!({}), None).await;
    assert!(gen["event_ref"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());

    let events = json!([
        {"event": "alert.created", "data": {"n": 0}, "event_ref": "batch-0"},
        {"event": "email.quarantined", "data": {"n": 1}},
        {"event": "no.such.event", "data": {}},
        {"event": "alert.created", "data": [1, 2]},
        {"event": "alert.created", "data": {"n": 4}, "event_ref": "same-ref"}
    ]);
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["accepted"], 3);
    assert_eq!(b["rejected"], 2);
    let statuses: Vec<&str> = b["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "accepted", "rejected", "rejected", "duplicate"]);
    assert_eq!(b["results"][0]["deliveries"], 1);
    assert_eq!(b["results"][1]["deliveries"], 2);
    assert_eq!(b["results"][2]["error"]["field"], "events[2].event");
    assert_eq!(b["results"][3]["error"]["field"], "events[3].data");
    // The same new event_ref twice in one batch: the first is accepted, the second is a duplicate.
    let twins = json!([
        {"event": "alert.created", "data": {"n": 1}, "event_ref": "twin"},
        {"event": "alert.created", "data": {"n": 2}, "event_ref": "twin"}
    ]);
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": twins})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let statuses: Vec<&str> = b["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "duplicate"]);
    let (_, twin) = app.get("/api/v1/events/twin", ADMIN_TOKEN).await;
    assert_eq!(twin["deliveries"].as_array().map(Vec::len), Some(1), "{twin}");
    // A whole batch sent again (a client retrying): every event is a repeat, answered with the
    // event first published under its event_ref and that event's delivery count.
    let retry = json!([
        {"event": "alert.created", "data": {"n": 9}, "event_ref": "batch-0"},
        {"event": "alert.created", "data": {"n": 9}, "event_ref": "twin"},
        {"event": "email.quarantined", "data": {"n": 9}, "event_ref": "same-ref"}
    ]);
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": retry})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let results = b["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["status"] == "duplicate"), "{b}");
    let refs: Vec<&str> = results.iter().map(|r| r["event_ref"].as_str().unwrap()).collect();
    assert_eq!(refs, ["batch-0", "twin", "same-ref"], "{b}");
    let deliveries: Vec<&Value> = results.iter().map(|r| &r["deliveries"]).collect();
    assert_eq!(deliveries, [&json!(1), &json!(1), &json!(2)], "{b}");
    let (_, twin) = app.get("/api/v1/events/twin", ADMIN_TOKEN).await;
    assert_eq!(twin["deliveries"].as_array().map(Vec::len), Some(1), "a repeat adds no delivery: {twin}");
    assert_eq!(twin["data"], json!({"n": 1}), "the first publish's data is kept: {twin}");

    // Publishing errors name the field; roles apply.
    for (field, body) in [
        ("event", json!({"event": "nope", "data": {}})),
        ("event", json!({"event": "webhook.disabled", "data": {}})),
        ("data", json!({"event": "alert.created", "data": "text"})),
        ("data", json!({"event": "alert.created"})),
        ("event_ref", json!({"event": "alert.created", "data": {}, "event_ref": ""})),
        ("ordering_key", json!({"event": "alert.created", "data": {}, "ordering_key": ""})),
        ("colour", json!({"event": "alert.created", "data": {}, "colour": 1})),
    ] {
        let (s, b) = app.post("/api/v1/events", ADMIN_TOKEN, body).await;
        crate::helpers::assert_field_error(s, &b, field);
    }
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": []})).await;
    crate::helpers::assert_field_error(s, &b, "events");
    let big = "x".repeat(300 * 1024);
    let (s, _) = app.post("/api/v1/events", ADMIN_TOKEN, json!({"event": "alert.created", "data": {"big": big}})).await;
    assert!(s == StatusCode::PAYLOAD_TOO_LARGE || s == StatusCode::UNPROCESSABLE_ENTITY, "{s}");
    let publisher = app.token("default", tocsin::domain::token::Role::Publisher).await;
    let viewer = app.token("default", tocsin::domain::token::Role::Viewer).await;
    let ev = json!({"event": "alert.created", "data": {}});
    assert_eq!(app.post("/api/v1/events", &publisher, ev.clone()).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.post("/api/v1/events", &viewer, ev.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::POST, "/api/v1/events", None, Some(ev)).await.0, StatusCode::UNAUTHORIZED);
    let other = app.token("other", tocsin::domain::token::Role::Admin).await;
    assert_eq!(app.get("/api/v1/events/same-ref", &other).await.0, StatusCode::NOT_FOUND);
}

both_backends!(two_deliveries_of_one_event_in_one_claim, two_of_one_event_on);
async fn two_of_one_event_on(backend: Backend) {
    // Two redeliveries of the same event, held while the webhook is off, are claimed together
    // when it is back on: both are sent.
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({})).await;
    app.publish("alert.created", json!({"n": 1}), Some("twice")).await;
    rx.wait_for(1, WAIT).await;
    let log = app
        .poll(&format!("/api/v1/webhooks/{id}/deliveries"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 1)
        })
        .await;
    let attempt_id = log["data"][0]["id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": false})).await;
    for _ in 0..2 {
        let (s, b) =
            app.post(&format!("/api/v1/webhooks/{id}/deliveries/{attempt_id}/redeliver"), ADMIN_TOKEN, json!({})).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    assert!(got.iter().all(|r| r.event_ref() == "twice"));
}

both_backends!(fan_out_through_claims, fan_out_through_claims_on);
async fn fan_out_through_claims_on(backend: Backend) {
    // Events published while three webhooks are off are claimed by each of them once they are
    // back on: one claim reads an event, the others are served a kept copy. Every receiver gets
    // every event with its own payload and a signature made with its own secret.
    let app = TestApp::delivering(backend, |_| {}).await;
    let mut hooks = Vec::new();
    for _ in 0..3 {
        let rx = Receiver::start().await;
        let (id, secret) = webhook_to(&app, &rx.url(), json!({"is_active": false})).await;
        hooks.push((rx, id, secret));
    }
    let events: Vec<Value> =
        (0..40).map(|n| json!({"event": "alert.created", "data": {"n": n}, "event_ref": format!("fan-{n}")})).collect();
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert!(b["results"].as_array().unwrap().iter().all(|r| r["deliveries"] == 3), "{b}");
    for (_, id, _) in &hooks {
        app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    }
    for (rx, id, secret) in &hooks {
        let got = rx.wait_for(40, WAIT).await;
        let mut refs: Vec<String> = got.iter().map(Received::event_ref).collect();
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), 40, "webhook {id}: {refs:?}");
        for r in &got {
            let n = r.json()["data"]["n"].as_u64().unwrap();
            assert_eq!(r.event_ref(), format!("fan-{n}"), "the payload is the event's own");
            assert_eq!(r.header("x-tocsin-webhook-id"), *id);
            assert!(standard_signature_ok(secret, r), "signed with webhook {id}'s secret");
            assert!(seed_signature_ok(secret, &r.body, &r.header("x-tocsin-signature")));
        }
    }
}

both_backends!(test_event_and_redeliver, test_event_on);
async fn test_event_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, secret) =
        webhook_to(&app, &rx.url(), json!({"event_types": ["email.quarantined"], "is_active": false})).await;
    let (status, attempt) = app.post(&format!("/api/v1/webhooks/{id}/test"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["success"], true);
    assert_eq!(attempt["http_status"], 200);
    assert_eq!(attempt["event_type"], "webhook.test");
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-tocsin-event"), "webhook.test");
    assert!(standard_signature_ok(&secret, &got[0]));
    assert_eq!(got[0].json()["data"]["example"]["phish_score"], 95, "the event type's example payload");
    let (_, log) = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), ADMIN_TOKEN).await;
    assert_eq!(log["total"], 1, "the test is in the history");

    // Redeliver an event that was delivered.
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    app.publish("email.quarantined", quarantined(), Some("again")).await;
    rx.wait_for(2, WAIT).await;
    let log = app
        .poll(&format!("/api/v1/webhooks/{id}/deliveries"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 2)
        })
        .await;
    let attempt_id = log["data"][0]["id"].as_str().unwrap();
    let (s, b) =
        app.post(&format!("/api/v1/webhooks/{id}/deliveries/{attempt_id}/redeliver"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, audit) = app.get("/api/v1/audit-log", ADMIN_TOKEN).await;
    assert_eq!(audit["data"][0]["action"], "delivery.redeliver", "the redelivery is audited with it");
    assert_eq!(audit["data"][0]["details"]["event_ref"], "again");
    let got = rx.wait_for(3, WAIT).await;
    assert_eq!(got[2].event_ref(), "again");
    assert_ne!(got[2].header("x-tocsin-delivery"), got[1].header("x-tocsin-delivery"));
    let (s, _) = app
        .post(&format!("/api/v1/webhooks/{id}/deliveries/{}/redeliver", uuid::Uuid::new_v4()), ADMIN_TOKEN, json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let viewer = app.token("default", tocsin::domain::token::Role::Viewer).await;
    assert_eq!(app.post(&format!("/api/v1/webhooks/{id}/test"), &viewer, json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/deliveries"), &viewer).await.0, StatusCode::OK);
    // Windows that are not a window answer 400 naming it: a unit that is not one (a multi-byte
    // character once made the handler panic) and a count whose milliseconds overflow.
    for window in ["1y", "1%C3%A9", "%C3%A9", "106751991167301d", "91d", "-1h", "0h"] {
        let (status, body) = app.get(&format!("/api/v1/webhooks/{id}/stats?window={window}"), ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{window}: {body}");
        assert_eq!(body["error"]["field"], "window", "{window}: {body}");
    }
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}/stats?window=90d"), ADMIN_TOKEN).await.0, StatusCode::OK);
}

both_backends!(rotation_signs_with_both_secrets, rotation_on);
async fn rotation_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, old) = webhook_to(&app, &rx.url(), json!({})).await;
    let (_, rotated) = app.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), ADMIN_TOKEN, json!({})).await;
    let new = rotated["secret"].as_str().unwrap().to_string();
    app.publish("alert.created", json!({}), None).await;
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    assert!(standard_signature_ok(&new, r), "the new secret verifies");
    assert!(standard_signature_ok(&old, r), "the old secret still verifies during the grace period");
    assert!(seed_signature_ok(&new, &r.body, &r.header("x-tocsin-signature")));
    assert!(seed_signature_ok(&old, &r.body, &r.header("x-tocsin-signature-previous")));
}

both_backends!(dropped_connections_are_failed_attempts, dropped_on);
async fn dropped_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    // A peer that accepts each connection and closes it without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    let (id, _) = webhook_to(
        &app,
        &format!("http://127.0.0.1:{port}/hook"),
        json!({"retry_count": 1, "retry_delays_ms": [0, 20]}),
    )
    .await;
    app.publish("alert.created", json!({}), Some("dropped")).await;
    let event = app.poll("/api/v1/events/dropped", WAIT, |v| v["deliveries"][0]["state"] == "failed").await;
    assert_eq!(event["deliveries"][0]["attempts"], 2, "retried once");
    assert!(accepted.load(Ordering::SeqCst) >= 2);
    let (_, log) = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), ADMIN_TOKEN).await;
    let error = log["data"][0]["error"].as_str().unwrap();
    assert!(!error.is_empty() && log["data"][0]["http_status"].is_null(), "{error}");
}

both_backends!(header_prefix_rate_limit_and_retention, prefix_on);
async fn prefix_on(backend: Backend) {
    let app = TestApp::delivering(backend, |s| s.header_prefix = "X-Phishnet".into()).await;
    let rx = Receiver::start().await;
    let (id, secret) = webhook_to(&app, &rx.url(), json!({"max_per_second": 5})).await;
    let t = Instant::now();
    let events: Vec<Value> = (0..10).map(|i| json!({"event": "alert.created", "data": {"i": i}})).collect();
    let (s, _) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let got = rx.wait_for(10, WAIT).await;
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(900), "10 deliveries at 5/s take about a second or more, took {took:?}");
    let r = &got[0];
    assert_eq!(r.header("x-phishnet-event"), "alert.created");
    assert!(seed_signature_ok(&secret, &r.body, &r.header("x-phishnet-signature")));
    assert!(r.headers.get("x-tocsin-signature").is_none());
    // Retention: history older than the cut-off is pruned.
    app.poll(&format!("/api/v1/webhooks/{id}/deliveries"), WAIT, |v| v["total"] == 10).await;
    let pruned = app.app_state.store.prune(tocsin::domain::time::now_ms() + 1, &app.app_state.cipher).await.unwrap();
    assert_eq!(pruned, 10);
    let (_, log) = app.get(&format!("/api/v1/webhooks/{id}/deliveries"), ADMIN_TOKEN).await;
    assert_eq!(log["total"], 0);
}

both_backends!(deliveries_published_leased_are_stored_leased, published_leased_on);
async fn published_leased_on(backend: Backend) {
    // The hand-over from publish to dispatcher: deliveries published leased are stored leased to
    // the publisher (so a crash returns them to the queue when the lease ends) and their seqs come
    // back; a repeated event_ref creates none. One event, a batch of two, and a batch of 150.
    use tocsin::domain::tenant::TenantId;
    use tocsin::store::{DeliveryStart, NewEvent, Target};
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({})).await;
    let webhook: uuid::Uuid = id.parse().unwrap();
    let lease_until = tocsin::domain::time::now_ms() + 3_600_000;
    let event = |r: &str| NewEvent {
        id: uuid::Uuid::now_v7(),
        tenant_id: TenantId::default_tenant(),
        event_ref: r.to_string(),
        event_type: "alert.created".into(),
        ordering_key: None,
        data: br#"{"n":1}"#.to_vec().into(),
        created_at: tocsin::domain::time::now_ms(),
        filtered: Vec::new(),
        live_token: None,
    };
    let leased =
        || vec![Target { webhook_id: webhook, start: DeliveryStart::Leased { claimer: "test:1".into(), lease_until } }];
    let store = &app.app_state.store;
    for refs in [vec!["leased-1"], vec!["leased-2", "leased-3"]] {
        let published = store.publish(refs.iter().map(|r| (event(r), leased())).collect()).await.unwrap();
        for (p, r) in published.iter().zip(&refs) {
            assert!(!p.duplicate);
            assert_eq!(p.leased.len(), 1, "{r}: the leased delivery's seq comes back");
            assert_eq!(p.leased[0].0, webhook);
            let (_, e) = app.get(&format!("/api/v1/events/{r}"), ADMIN_TOKEN).await;
            assert_eq!(e["deliveries"][0]["state"], "leased", "{r}: {e}");
        }
    }
    let again = store.publish(vec![(event("leased-1"), leased()), (event("leased-4"), leased())]).await.unwrap();
    assert!(again[0].duplicate && again[0].leased.is_empty(), "a repeat creates no delivery");
    assert_eq!(again[1].leased.len(), 1);
    // A batch whose deliveries take several multi-row statements (300 rows), leased and pending
    // ones for each event: only the leased ones come back, one per event, in publish order.
    let rx2 = Receiver::start().await;
    let (other, _) = webhook_to(&app, &rx2.url(), json!({})).await;
    let other: uuid::Uuid = other.parse().unwrap();
    let refs: Vec<String> = (0..150).map(|i| format!("mixed-{i}")).collect();
    let batch = refs
        .iter()
        .map(|r| {
            let mut targets = leased();
            targets.push(Target { webhook_id: other, start: DeliveryStart::Pending });
            (event(r), targets)
        })
        .collect();
    let published = store.publish(batch).await.unwrap();
    let mut last_seq = 0;
    for (p, r) in published.iter().zip(&refs) {
        assert!(!p.duplicate, "{r}");
        assert_eq!(p.deliveries, 2, "{r}");
        assert_eq!(p.leased.len(), 1, "{r}: only the leased delivery comes back: {:?}", p.leased);
        assert_eq!(p.leased[0].0, webhook, "{r}");
        assert!(p.leased[0].1 > last_seq, "{r}: seqs follow the publish order");
        // Stored webhook by webhook: one webhook's deliveries of a batch are neighbours.
        assert!(last_seq == 0 || p.leased[0].1 == last_seq + 1, "{r}: {} after {last_seq}", p.leased[0].1);
        last_seq = p.leased[0].1;
    }
    let (_, e) = app.get("/api/v1/events/mixed-149", ADMIN_TOKEN).await;
    assert_eq!(e["deliveries"].as_array().map(Vec::len), Some(2), "{e}");
    // The pending ones are claimed and sent.
    let sent = rx2.wait_for(150, Duration::from_secs(20)).await;
    assert_eq!(sent.len(), 150);
    // Leased for an hour to a claimer that does not exist: not sent by this dispatcher.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.received().is_empty());

    // A publisher's copy of the webhooks may be a moment old: the insert has the last word. To a
    // webhook disabled since, a delivery is held (never leased, so never sent); to one deleted
    // since, none is made (and the publish still commits).
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": false})).await;
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{other}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut targets = leased();
    targets.push(Target { webhook_id: other, start: DeliveryStart::Pending });
    let published = store.publish(vec![(event("stale-copy"), targets)]).await.unwrap();
    assert!(published[0].leased.is_empty(), "nothing is handed over: {:?}", published[0].leased);
    let (_, e) = app.get("/api/v1/events/stale-copy", ADMIN_TOKEN).await;
    let states: Vec<&Value> = e["deliveries"].as_array().unwrap().iter().map(|d| &d["state"]).collect();
    assert_eq!(states, [&json!("held")], "{e}");
    // ... and to one enabled since, it is pending (and sent), not held.
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    let held = vec![Target { webhook_id: webhook, start: DeliveryStart::Held }];
    store.publish(vec![(event("stale-inactive"), held)]).await.unwrap();
    let (_, e) = app.get("/api/v1/events/stale-inactive", ADMIN_TOKEN).await;
    assert_ne!(e["deliveries"][0]["state"], "held", "{e}");
    rx.wait_until(WAIT, "stale-inactive", |r| r.iter().any(|x| x.event_ref() == "stale-inactive")).await;
}

both_backends!(concurrent_single_publishes_keep_their_own_answers, concurrent_publishes_on);
async fn concurrent_publishes_on(backend: Backend) {
    // Single-event publishes arriving together (PostgreSQL writes them as one; SQLite commits them
    // together): each caller gets its own answer, a repeated event_ref is a repeat only within
    // its tenant, even when both copies arrive in the same write, and tenants never see each
    // other's events.
    use tocsin::domain::token::Role;
    let app = std::sync::Arc::new(TestApp::delivering(backend, |_| {}).await);
    let (rx_a, rx_b) = (Receiver::start().await, Receiver::start().await);
    webhook_to(&app, &rx_a.url(), json!({})).await;
    let token_b = app.token("tenant-b", Role::Admin).await;
    let hook = json!({"name": "b", "url": rx_b.url(), "event_types": ["*"]});
    let (s, b) = app.post("/api/v1/webhooks", &token_b, hook).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let calls = (0..48).map(|i| {
        let app = app.clone();
        let token = if i % 3 == 1 { token_b.clone() } else { ADMIN_TOKEN.to_string() };
        // Every third call: a unique ref of tenant A; the others: "shared" in A or in B.
        let event_ref = if i % 3 == 2 { format!("unique-{i}") } else { "shared".to_string() };
        tokio::spawn(async move {
            let body = json!({"event": "alert.created", "data": {"i": i}, "event_ref": event_ref});
            let (s, v) = app.post("/api/v1/events", &token, body).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            (i, v)
        })
    });
    let answers: Vec<(i32, Value)> =
        futures_util::future::join_all(calls).await.into_iter().map(|r| r.expect("the call ran")).collect();
    // For each tenant, the one call answered as first is the one whose data was stored.
    for (tenant, token) in [(0, ADMIN_TOKEN), (1, token_b.as_str())] {
        let shared: Vec<&(i32, Value)> = answers.iter().filter(|(i, _)| i % 3 == tenant).collect();
        assert!(shared.iter().all(|(_, v)| v["deliveries"] == 1 && v["event_ref"] == "shared"), "{shared:?}");
        let firsts: Vec<i32> = shared.iter().filter(|(_, v)| v["duplicate"] == false).map(|(i, _)| *i).collect();
        assert_eq!(firsts.len(), 1, "one is first: {shared:?}");
        let (_, stored) = app.get("/api/v1/events/shared", token).await;
        assert_eq!(stored["data"]["i"], firsts[0], "tenant {tenant}: {stored}");
        assert_eq!(stored["deliveries"].as_array().map(Vec::len), Some(1), "{stored}");
    }
    let unique: Vec<&Value> = answers.iter().filter(|(i, _)| i % 3 == 2).map(|(_, v)| v).collect();
    assert!(unique.iter().all(|v| v["duplicate"] == false && v["deliveries"] == 1), "{unique:?}");
    // Delivered: tenant A its 16 unique events and one "shared", tenant B one "shared".
    assert_eq!(rx_a.wait_for(17, WAIT).await.len(), 17);
    assert_eq!(rx_b.wait_for(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((rx_a.received().len(), rx_b.received().len()), (17, 1), "no repeat delivered");
    let (s, _) = app.get("/api/v1/events/unique-2", &token_b).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "tenant B does not see tenant A's event");
}

both_backends!(claims_never_hand_out_a_delivery_twice, claims_on);
async fn claims_on(backend: Backend) {
    // The store's claims, called directly on an inactive webhook (the dispatcher leaves it
    // alone): a claimed delivery is not claimed again until its lease is let go (completed,
    // released) or has ended, and only its claimer's completion moves it.
    use tocsin::domain::tenant::TenantId;
    use tocsin::domain::time::now_ms;
    use tocsin::store::{AttemptRecord, Completion, DeliveryStart, NewEvent, NextStep, Target};
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"is_active": false})).await;
    let webhook: uuid::Uuid = id.parse().unwrap();
    let store = &app.app_state.store;
    let events = (0..5)
        .map(|n| {
            let event = NewEvent {
                id: uuid::Uuid::now_v7(),
                tenant_id: TenantId::default_tenant(),
                event_ref: format!("claim-{n}"),
                event_type: "alert.created".into(),
                // One with an ordering key: its claim says so (its record is then not held back).
                ordering_key: (n == 4).then(|| "k".to_string()),
                data: br#"{"n":1}"#.to_vec().into(),
                created_at: now_ms(),
                filtered: Vec::new(),
                live_token: None,
            };
            (event, vec![Target { webhook_id: webhook, start: DeliveryStart::Pending }])
        })
        .collect();
    store.publish(events).await.unwrap();
    // Published held (the webhook is inactive); made pending behind the dispatcher's back.
    app.exec_sql(&format!("UPDATE deliveries SET state = 'pending' WHERE webhook_id = '{webhook}'")).await;
    let hour = now_ms() + 3_600_000;
    let seqs = |c: &[tocsin::store::ClaimedDelivery]| c.iter().map(|d| d.seq).collect::<Vec<_>>();
    let first = store.claim(webhook, "c1", 3, hour).await.unwrap();
    assert_eq!(first.len(), 3);
    let second = store.claim(webhook, "c2", 10, hour).await.unwrap();
    assert_eq!(second.len(), 2, "only what the first claim did not take");
    assert!(seqs(&second).iter().all(|s| !seqs(&first).contains(s)));
    assert!(store.claim(webhook, "c3", 10, hour).await.unwrap().is_empty(), "everything is claimed");
    for d in first.iter().chain(&second) {
        assert_eq!(d.ordered, d.event_ref == "claim-4", "{}", d.event_ref);
    }

    // A completion moves its delivery; another claimer's completion moves nothing.
    let completion = |done: &tocsin::store::ClaimedDelivery, claimer: &str, next: NextStep| Completion {
        attempt: AttemptRecord {
            id: uuid::Uuid::now_v7(),
            delivery_seq: done.seq,
            tenant_id: done.tenant_id.clone(),
            webhook_id: webhook,
            event_ref: done.event_ref.clone(),
            event_type: done.event_type.clone(),
            format: tocsin::destinations::default_format(),
            attempt_no: 1,
            success: true,
            http_status: Some(200),
            error: None,
            response_ms: 1,
            request_headers: "{}".into(),
            dispatched_at: now_ms(),
            response_body: Vec::new(),
            response_headers: String::new(),
            next_attempt_at: None,
            created_at: now_ms(),
        },
        next,
        claimer: claimer.into(),
        counts_for_breaker: false,
        counter_was_zero: true,
        gone: false,
        ordered: done.ordered,
        breaker: tocsin::store::Breaker { threshold: 5, cooldown_ms: 30_000, disable_after_ms: 3_600_000 },
    };
    let done = &first[0];
    store.complete(&completion(done, "c2", NextStep::Succeeded)).await.unwrap();
    let (_, e) = app.get(&format!("/api/v1/events/{}", done.event_ref), ADMIN_TOKEN).await;
    assert_ne!(e["deliveries"][0]["state"], "succeeded", "not c2's lease: {e}");
    store.complete(&completion(done, "c1", NextStep::Succeeded)).await.unwrap();
    let (_, e) = app.get(&format!("/api/v1/events/{}", done.event_ref), ADMIN_TOKEN).await;
    assert_eq!(e["deliveries"][0]["state"], "succeeded", "{e}");
    // The one with an ordering key (its record is written at once, not held for company).
    let keyed = second.iter().find(|d| d.ordered).expect("claim-4 is in the second claim");
    store.complete(&completion(keyed, "c2", NextStep::Succeeded)).await.unwrap();
    let (_, e) = app.get("/api/v1/events/claim-4", ADMIN_TOKEN).await;
    assert_eq!(e["deliveries"][0]["state"], "succeeded", "{e}");

    // Released: claimable again, by anyone; the completed one never again.
    let released: Vec<(i64, String)> = first[1..].iter().map(|d| (d.seq, "c1".to_string())).collect();
    store.release(&released).await.unwrap();
    let third = store.claim(webhook, "c3", 10, hour).await.unwrap();
    assert_eq!(seqs(&third), seqs(&first[1..]), "the released ones, and only them");

    // A lease that ended (its claimer died or stalled) lets the delivery be claimed again.
    let all: Vec<(i64, String)> = third.iter().map(|d| (d.seq, "c3".to_string())).collect();
    store.release(&all).await.unwrap();
    let short = store.claim(webhook, "c4", 10, now_ms() - 1).await.unwrap();
    assert_eq!(short.len(), 2);
    store.expire_leases(now_ms()).await.unwrap();
    let again = store.claim(webhook, "c5", 10, hour).await.unwrap();
    assert_eq!(seqs(&again), seqs(&short), "claimed again once the lease ended");

    // An attempt to be retried now: its lease ends with the completion, so the next claim has it
    // (held first, the webhook being inactive, then released as a re-enable would).
    assert!(store.claim(webhook, "c6", 10, hour).await.unwrap().is_empty());
    store.complete(&completion(&again[0], "c5", NextStep::Retry(now_ms()))).await.unwrap();
    app.exec_sql("UPDATE deliveries SET state = 'pending' WHERE state = 'held'").await;
    let retried = store.claim(webhook, "c6", 10, hour).await.unwrap();
    assert_eq!(seqs(&retried), vec![again[0].seq]);
}

both_backends!(a_publish_is_handed_straight_to_the_dispatcher, handoff_on);
async fn handoff_on(backend: Backend) {
    // Published through the API while the webhook has room: each delivery is sent once, its one
    // attempt logged, and it ends succeeded (the hand-over path); events with an ordering key
    // still go through the queue, in order.
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({})).await;
    let mut events: Vec<Value> =
        (0..20).map(|n| json!({"event": "alert.created", "data": {"n": n}, "event_ref": format!("h-{n}")})).collect();
    events.extend((0..5).map(
        |n| json!({"event": "alert.created", "data": {"n": n}, "event_ref": format!("k-{n}"), "ordering_key": "k"}),
    ));
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
    assert!(s.is_success(), "{b}");
    let got = rx.wait_for(25, WAIT).await;
    let refs: Vec<String> = got.iter().map(|r| r.event_ref()).collect();
    let unique: std::collections::HashSet<&String> = refs.iter().collect();
    assert_eq!(unique.len(), 25, "each once: {refs:?}");
    let keyed: Vec<&str> = refs.iter().map(String::as_str).filter(|r| r.starts_with("k-")).collect();
    assert_eq!(keyed, ["k-0", "k-1", "k-2", "k-3", "k-4"], "in publish order");
    let log = app.poll(&format!("/api/v1/webhooks/{id}/deliveries?per_page=100"), WAIT, |v| v["total"] == 25).await;
    assert_eq!(log["total"], 25, "one attempt each");
    for n in [0, 19] {
        let e = app.poll(&format!("/api/v1/events/h-{n}"), WAIT, |v| v["deliveries"][0]["state"] == "succeeded").await;
        assert_eq!(e["deliveries"][0]["attempts"], 1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 25, "nothing sent twice");

    // What the dispatcher takes over: only what it has room for, never for a rate-limited or
    // inactive webhook; an offer holds its room until adopted or withdrawn.
    use tocsin::fanout::HandOver as _;
    let dispatcher = &app.app_state.dispatcher;
    let store = &app.app_state.store;
    let webhook = store.webhook_by_id(id.parse().unwrap()).await.unwrap().unwrap();
    assert!(matches!(dispatcher.offer(&webhook, 10), Some(tocsin::store::DeliveryStart::Leased { .. })));
    assert!(dispatcher.offer(&webhook, 100_000).is_none(), "more than its prefetch room");
    let all_room = (1..=16_384).rev().find(|n| {
        let granted = dispatcher.offer(&webhook, *n).is_some();
        if granted {
            dispatcher.withdraw(webhook.id, *n);
        }
        granted
    });
    let room = all_room.expect("some room");
    assert!(dispatcher.offer(&webhook, room + 1).is_none(), "the first offer still holds its 10");
    dispatcher.withdraw(webhook.id, 10);
    assert!(dispatcher.offer(&webhook, room + 1).is_some(), "withdrawn: the room is back");
    dispatcher.withdraw(webhook.id, room + 1);
    let mut limited = webhook.clone();
    limited.max_per_second = Some(5);
    assert!(dispatcher.offer(&limited, 1).is_none(), "a rate-limited webhook goes through the queue");
    let mut inactive = webhook.clone();
    inactive.is_active = false;
    assert!(dispatcher.offer(&inactive, 1).is_none());
}

both_backends!(changes_apply_to_the_very_next_publish, changes_on);
async fn changes_on(backend: Backend) {
    // Publishing reads the tenant's webhooks and event types from short-lived in-memory copies:
    // every change made through the API must still apply to the publish right after it.
    let app = TestApp::delivering(backend, |_| {}).await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let (id, _) = webhook_to(&app, &first.url(), json!({})).await;
    let path = format!("/api/v1/webhooks/{id}");
    app.publish("alert.created", json!({"n": 1}), Some("c-1")).await;
    first.wait_for(1, WAIT).await;

    let (s, b) = app.patch(&path, ADMIN_TOKEN, json!({"url": second.url()})).await;
    assert!(s.is_success(), "{b}");
    app.publish("alert.created", json!({"n": 2}), Some("c-2")).await;
    let got = second.wait_for(1, WAIT).await;
    assert_eq!(got[0].event_ref(), "c-2", "the new URL is used at once");

    let (s, b) = app.patch(&path, ADMIN_TOKEN, json!({"event_types": ["email.quarantined"]})).await;
    assert!(s.is_success(), "{b}");
    let answer = app.publish("alert.created", json!({"n": 3}), Some("c-3")).await;
    assert_eq!(answer["deliveries"], 0, "unsubscribed at once: {answer}");

    let (s, b) = app.patch(&path, ADMIN_TOKEN, json!({"is_active": false, "event_types": ["*"]})).await;
    assert!(s.is_success(), "{b}");
    app.publish("alert.created", json!({"n": 4}), Some("c-4")).await;
    let (_, e) = app.get("/api/v1/events/c-4", ADMIN_TOKEN).await;
    assert_eq!(e["deliveries"][0]["state"], "held", "deactivated at once: {e}");

    let (s, _) = app.call(Method::DELETE, &path, Some(ADMIN_TOKEN), None).await;
    assert!(s.is_success());
    let answer = app.publish("alert.created", json!({"n": 5}), Some("c-5")).await;
    assert_eq!(answer["deliveries"], 0, "deleted at once: {answer}");

    // A tenant event type: created, then its schema tightened.
    let put = |schema: Value| {
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                "/api/v1/event-types/scan.finished",
                Some(ADMIN_TOKEN),
                Some(json!({"description": "scan finished", "schema": schema})),
            )
            .await
        }
    };
    let publish = || app.post("/api/v1/events", ADMIN_TOKEN, json!({"event": "scan.finished", "data": {"n": 1}}));
    let (s, b) = publish().await;
    assert_field_error(s, &b, "event");
    let (s, _) = put(json!({"type": "object"})).await;
    assert!(s.is_success());
    let (s, b) = publish().await;
    assert_eq!(s, StatusCode::ACCEPTED, "known at once: {b}");
    let (s, _) = put(json!({"type": "object", "required": ["host"]})).await;
    assert!(s.is_success());
    let (s, b) = publish().await;
    assert_field_error(s, &b, "data");
    let (s, _) = app.call(Method::DELETE, "/api/v1/event-types/scan.finished", Some(ADMIN_TOKEN), None).await;
    assert!(s.is_success());
    let (s, b) = publish().await;
    assert_field_error(s, &b, "event");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(first.received().iter().all(|r| r.event_ref() == "c-1"), "nothing more to the old URL");
}

/// SQLite only: its single writer commits the records in the order the attempts ended. On
/// PostgreSQL the records of one webhook's attempts commit on several connections at once and
/// may land out of order (a reset before the failure it follows), so "consecutive" is only
/// approximate there: a known limit, stated in the README.
#[tokio::test]
async fn a_success_resets_the_breaker_after_failures_in_the_same_batch() {
    // Five deliveries handed over together, sent one at a time: fail, fail, succeed, fail, fail.
    // Failures are counted consecutively, so the success resets the counter and a threshold of
    // 3 is never reached, although all five were read with the webhook's counter at 0.
    let app = TestApp::delivering(Backend::Sqlite, |s| {
        s.failure_threshold = 3;
        s.webhook_concurrency = 1;
    })
    .await;
    let rx = Receiver::with_plan(|n, _| if n == 2 { Reply::Ok } else { Reply::Status(500) }).await;
    let (id, _) = webhook_to(&app, &rx.url(), json!({"retry_count": 0})).await;
    let events: Vec<Value> =
        (0..5).map(|n| json!({"event": "alert.created", "data": {"n": n}, "event_ref": format!("r-{n}")})).collect();
    let (s, b) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
    assert!(s.is_success(), "{b}");
    rx.wait_for(5, WAIT).await;
    for n in 0..5 {
        app.poll(&format!("/api/v1/events/r-{n}"), WAIT, |v| {
            matches!(v["deliveries"][0]["state"].as_str(), Some("failed" | "succeeded"))
        })
        .await;
    }
    let (_, w) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(w["is_active"], true, "two failures since the success: {w}");
    assert_eq!(w["failure_count"], 2, "{w}");
}

both_backends!(every_success_of_a_burst_is_recorded_once, burst_on);
async fn burst_on(backend: Backend) {
    // Hundreds of attempts end at about the same time: their records are written in groups (on
    // PostgreSQL as multi-row statements); every one lands once, each delivery marked succeeded.
    let app = TestApp::delivering(backend, |s| s.webhook_concurrency = 32).await;
    let rx = Receiver::start().await;
    let (a, _) = webhook_to(&app, &rx.url(), json!({"event_types": ["alert.*"]})).await;
    let (b, _) = webhook_to(&app, &rx.url(), json!({"event_types": ["alert.*"]})).await;
    const N: usize = 300;
    let events: Vec<Value> = (0..N)
        .map(|i| json!({"event": "alert.created", "data": {"i": i}, "event_ref": format!("burst-{i}")}))
        .collect();
    let (s, body) = app.post("/api/v1/events/batch", ADMIN_TOKEN, json!({"events": events})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let got = rx.wait_for(2 * N, WAIT).await;
    let ids: std::collections::HashSet<String> = got.iter().map(|r| r.header("x-tocsin-delivery")).collect();
    assert_eq!(ids.len(), 2 * N, "one attempt per delivery");
    let mut logged = std::collections::HashSet::new();
    for webhook in [&a, &b] {
        let path = format!("/api/v1/webhooks/{webhook}/deliveries?per_page=100");
        app.poll(&path, WAIT, |v| v["total"] == N).await;
        for page in 1..=N / 100 {
            let (_, log) = app.get(&format!("{path}&page={page}"), ADMIN_TOKEN).await;
            for attempt in log["data"].as_array().unwrap() {
                assert_eq!(attempt["success"], true, "{attempt}");
                assert!(ids.contains(attempt["id"].as_str().unwrap()), "logged as sent: {attempt}");
                logged.insert(attempt["id"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(logged.len(), 2 * N, "every attempt logged once");
    for i in [0, N / 2, N - 1] {
        let e = app
            .poll(&format!("/api/v1/events/burst-{i}"), WAIT, |v| {
                v["deliveries"].as_array().is_some_and(|d| d.iter().all(|d| d["state"] == "succeeded"))
            })
            .await;
        assert_eq!(e["deliveries"].as_array().map(Vec::len), Some(2), "{e}");
        assert!(e["deliveries"].as_array().unwrap().iter().all(|d| d["attempts"] == 1), "{e}");
    }
}
