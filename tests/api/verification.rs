//! Endpoint ownership verification: a webhook that asks for it (`"verify": true`, or
//! `TOCSIN_VERIFY_ENDPOINTS`) sends its endpoint a signed challenge; until the endpoint answers it,
//! the webhook is `pending` and its deliveries are held (never dropped); `POST /verify` tries
//! again, and once verified they flow. SIEM transports are `exempt`.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, ADMIN_TOKEN};
use crate::receiver::{Received, Receiver, Reply};

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Answers a verification with its challenge, anything else with "ok".
fn echo(_: usize, r: &Received) -> Reply {
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    match body["challenge"].as_str() {
        Some(c) if body["event"] == "webhook.verification" => Reply::Body(json!({"challenge": c}).to_string()),
        _ => Reply::Ok,
    }
}

both_backends!(endpoints_prove_their_ownership, verification_on);
async fn verification_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    // An endpoint that answers the challenge: verified at once, signed like any delivery.
    let owner = Receiver::with_plan(echo).await;
    let created =
        app.create_webhook(json!({"name": "own", "url": owner.url(), "event_types": ["*"], "verify": true})).await;
    assert_eq!((created["verification"].as_str(), created["is_active"].as_bool()), (Some("verified"), Some(true)));
    let challenge = &owner.received()[0];
    assert_eq!(challenge.json()["event"], "webhook.verification");
    let secret = created["secret"].as_str().unwrap();
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    assert!(wh.verify(&challenge.body, &challenge.headers).is_ok(), "the challenge is signed");

    // One that does not: pending, its deliveries held; enabling it by hand is refused.
    let other = Receiver::start().await;
    let created =
        app.create_webhook(json!({"name": "other", "url": other.url(), "event_types": ["*"], "verify": true})).await;
    assert_eq!((created["verification"].as_str(), created["is_active"].as_bool()), (Some("pending"), Some(false)));
    let id = created["id"].as_str().unwrap().to_string();
    let published = app.publish("alert.created", json!({"n": 1}), Some("held-1")).await;
    assert_eq!(published["deliveries"], 2);
    owner.wait_for(2, WAIT).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(other.received().len(), 1, "only the challenge: the event is held");
    let (_, e) = app.get("/api/v1/events/held-1", ADMIN_TOKEN).await;
    assert!(e["deliveries"].as_array().unwrap().iter().any(|d| d["state"] == "held"), "{e}");
    let (s, b) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = app.post(&format!("/api/v1/webhooks/{id}/verify"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("challenge"), "says why: {b}");

    // The endpoint learns to answer: verified, and the held event flows.
    other.set_plan(echo);
    let (s, b) = app.post(&format!("/api/v1/webhooks/{id}/verify"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["verification"].as_str(), b["is_active"].as_bool()), (Some("verified"), Some(true)));
    let got = other.wait_until(WAIT, "the held event", |r| r.iter().any(|x| x.event_ref() == "held-1")).await;
    assert!(got.iter().any(|x| x.event_ref() == "held-1"));

    // A new URL proves itself again.
    let elsewhere = Receiver::start().await;
    let (_, b) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"url": elsewhere.url()})).await;
    assert_eq!((b["verification"].as_str(), b["is_active"].as_bool()), (Some("pending"), Some(false)), "{b}");
    assert_eq!(b["disabled_reason"], "unverified", "{b}");
    // ... and once it answers, the webhook is active again.
    elsewhere.set_plan(echo);
    let (s, b) = app.post(&format!("/api/v1/webhooks/{id}/verify"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["verification"].as_str(), b["is_active"].as_bool()), (Some("verified"), Some(true)), "{b}");

    // A syslog destination cannot answer: exempt.
    let siem = app
        .create_webhook(
            json!({"name": "siem", "url": "syslog+udp://127.0.0.1:5514", "format": "syslog", "verify": true}),
        )
        .await;
    assert_eq!(siem["verification"], "exempt");
}

/// The deployment's setting asks every new webhook.
#[tokio::test]
async fn the_deployment_setting_asks_every_webhook() {
    let app = TestApp::delivering(Backend::Sqlite, |s| s.verify_endpoints = true).await;
    let rx = Receiver::start().await;
    let created = app.create_webhook(json!({"name": "x", "url": rx.url()})).await;
    assert_eq!(created["verification"], "pending");
    let plain = app.create_webhook(json!({"name": "y", "url": rx.url(), "verify": false})).await;
    assert_eq!(plain["verification"], "not_required", "a webhook may say no");
}
