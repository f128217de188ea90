//! Every bad field of every write route is answered with a 4xx JSON error naming it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_field_error, webhook_body, Backend, TestApp, ADMIN_TOKEN};

/// (field named in the error, fields to merge into a valid webhook body)
fn bad_webhook_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("name", json!({"name": ""})),
        ("name", json!({"name": "x".repeat(201)})),
        ("name", json!({"name": 5})),
        ("url", json!({"url": "ftp://example.com/x"})),
        ("url", json!({"url": "not a url"})),
        ("url", json!({"url": "https://user:pw@example.com/"})),
        ("url", json!({"url": "http://127.0.0.1:9000/hook"})),
        ("url", json!({"url": "http://169.254.169.254/latest/meta-data"})),
        ("url", json!({"url": "http://[::1]/x"})),
        ("url", json!({"url": "http://[::ffff:127.0.0.1]/x"})),
        ("secret", json!({"secret": "short"})),
        ("secret", json!({"secret": "whsec_***notbase64***"})),
        ("event_types", json!({"event_types": []})),
        ("event_types", json!({"event_types": "email.quarantined"})),
        ("event_types[1]", json!({"event_types": ["email.quarantined", "no.such.event"]})),
        ("event_types[0]", json!({"event_types": ["nosuchfamily.*"]})),
        ("event_types[0]", json!({"event_types": ["bad name"]})),
        ("format", json!({"format": "xml"})),
        ("retry_count", json!({"retry_count": 11})),
        ("retry_count", json!({"retry_count": -1})),
        ("retry_count", json!({"retry_count": "3"})),
        ("retry_count", json!({"retry_count": 2.5})),
        ("timeout_ms", json!({"timeout_ms": 999})),
        ("timeout_ms", json!({"timeout_ms": 30001})),
        ("retry_delays_ms", json!({"retry_delays_ms": []})),
        ("retry_delays_ms[1]", json!({"retry_delays_ms": [0, -5]})),
        ("headers.Host", json!({"headers": {"Host": "evil.example"}})),
        ("headers.Content-Type", json!({"headers": {"Content-Type": "text/plain"}})),
        ("headers.X-Tocsin-Signature", json!({"headers": {"X-Tocsin-Signature": "sha256=00"}})),
        ("headers.webhook-signature", json!({"headers": {"webhook-signature": "v1,x"}})),
        ("headers.X-Split", json!({"headers": {"X-Split": "a\r\nInjected: yes"}})),
        ("headers.bad name", json!({"headers": {"bad name": "x"}})),
        ("headers.X-Num", json!({"headers": {"X-Num": 5}})),
        ("is_active", json!({"is_active": "yes"})),
        ("description", json!({"description": "x".repeat(2001)})),
        ("max_per_second", json!({"max_per_second": 0})),
        ("owner_email", json!({"owner_email": "not-an-email"})),
        ("colour", json!({"colour": "red"})),
        ("id", json!({"id": "00000000-0000-0000-0000-000000000000"})),
        ("failure_count", json!({"failure_count": 0})),
        ("created_at", json!({"created_at": "2026-01-01T00:00:00Z"})),
    ]
}

fn merged(base: &Value, patch: &Value) -> Value {
    let mut out = base.clone();
    for (k, v) in patch.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

both_backends!(webhook_write_validation, webhook_validation_on);
async fn webhook_validation_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_webhook(webhook_body("valid")).await["id"].as_str().unwrap().to_string();
    let (_, before) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    for (field, patch) in bad_webhook_fields() {
        let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, merged(&webhook_body("x"), &patch)).await;
        assert_field_error(s, &b, field);
        for method in [Method::PATCH, Method::PUT] {
            let (s, b) = app
                .call(method.clone(), &format!("/api/v1/webhooks/{id}"), Some(ADMIN_TOKEN), Some(patch.clone()))
                .await;
            assert_field_error(s, &b, field);
        }
    }
    // Required on create only.
    for field in ["name", "url"] {
        let mut body = webhook_body("x");
        body.as_object_mut().unwrap().remove(field);
        let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_field_error(s, &b, field);
        assert_eq!(b["error"]["code"], "missing_field");
    }
    // Several mistakes at once: the first in `field`, every one in `errors` (a form shows them
    // all); a message that names its field is not prefixed with it twice.
    let body = json!({"name": "", "url": "ftp://nowhere", "format": "splunk_hec", "retry_count": 99});
    let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, body).await;
    assert_field_error(s, &b, "name");
    let fields: Vec<&str> =
        b["error"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    for f in ["name", "url", "secret", "retry_count"] {
        assert!(fields.contains(&f), "{f} missing: {b}");
    }
    let secret = b["error"]["errors"].as_array().unwrap().iter().find(|e| e["field"] == "secret").unwrap();
    assert_eq!(secret["code"], "missing_field", "{b}");
    let (_, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, json!({"url": "https://example.com/"})).await;
    assert_eq!(b["error"]["message"], "name is required", "{b}");
    assert!(b["error"].get("errors").is_none(), "one mistake: no list: {b}");
    // Nothing was created and the existing webhook did not change.
    let (_, list) = app.get("/api/v1/webhooks", ADMIN_TOKEN).await;
    assert_eq!(list["total"], 1);
    let (_, after) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(before, after);
}

both_backends!(body_errors, body_errors_on);
async fn body_errors_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let raw = |body: Vec<u8>, content_type: Option<&str>| {
        let mut req = app.client.post(app.url("/api/v1/webhooks")).bearer_auth(ADMIN_TOKEN).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = raw(b"{\"name\": ".to_vec(), Some("application/json")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_json");
    let (s, b) = raw(b"[1, 2]".to_vec(), Some("application/json")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = raw(webhook_body("x").to_string().into_bytes(), Some("text/plain")).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(b["error"]["code"], "unsupported_media_type");
    let (s, _) = raw(webhook_body("x").to_string().into_bytes(), None).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut huge = webhook_body("x");
    huge["description"] = json!("x".repeat(2 * 1024 * 1024));
    let (s, b) = raw(huge.to_string().into_bytes(), Some("application/json")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b["error"]["code"], "payload_too_large");
    // Unknown routes and methods answer JSON too.
    let (s, b) = app.get("/api/v1/nope", ADMIN_TOKEN).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (s, b) = app.call(Method::DELETE, "/api/v1/webhooks", Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_eq!(b["error"]["code"], "method_not_allowed");
    // A malformed id is simply not found.
    let (s, _) = app.get("/api/v1/webhooks/not-a-uuid", ADMIN_TOKEN).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both_backends!(token_validation, token_validation_on);
async fn token_validation_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (field, body) in [
        ("role", json!({"name": "x", "role": "root"})),
        ("role", json!({"name": "x"})),
        ("name", json!({"name": "", "role": "viewer"})),
        ("name", json!({"role": "viewer"})),
        ("expires", json!({"name": "x", "role": "viewer", "expires": 1})),
    ] {
        let (s, b) = app.post("/api/v1/tokens", ADMIN_TOKEN, body).await;
        assert_field_error(s, &b, field);
    }
}

/// Slow clients cannot hold the server: headers and bodies have `TOCSIN_REQUEST_TIMEOUT` to
/// arrive; then the connection is closed, or the request answered 408.
#[tokio::test]
async fn slow_headers_and_bodies_time_out() {
    use std::io::{Read, Write};
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.request_timeout = std::time::Duration::from_secs(1)).await;
    let addr = app.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        // Headers that never end.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: tocsin\r\n").unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let _ = slow.read_to_end(&mut answer);
        let headers_closed_after = started.elapsed();
        // A body that never arrives.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: tocsin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event\""
        );
        slow.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = slow.read(&mut buf).unwrap_or(0);
        (headers_closed_after, String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap();
    let (headers_closed_after, body_answer) = outcome;
    assert!(headers_closed_after < std::time::Duration::from_secs(5), "closed after {headers_closed_after:?}");
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    assert!(body_answer.contains("request_timeout"), "{body_answer}");
}
