//! Asymmetric signatures (Standard Webhooks `v1a`): an ed25519 webhook's deliveries carry an
//! Ed25519 signature that Python's `cryptography` verifies with the public key the API shows
//! and the JWKS serves; rotation keeps the old key signing during its grace period; the private
//! key never leaves Tocsin.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_field_error, Backend, TestApp, ADMIN_TOKEN};
use crate::receiver::{Received, Receiver};
use crate::seeds::run;

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether every `v1a` signature in `webhook-signature` verifies with the matching key of `keys`
/// (`whpk_…`), by Python's `cryptography` (an independent Ed25519 implementation): None when
/// python3 is missing and not required.
fn python_verifies(r: &Received, keys: &[&str]) -> Option<bool> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let msg =
        [r.header("webhook-id").as_bytes(), b".", r.header("webhook-timestamp").as_bytes(), b".", &r.body].concat();
    let sigs: Vec<String> =
        r.header("webhook-signature").split(' ').map(|s| s.strip_prefix("v1a,").unwrap_or("x").to_string()).collect();
    assert_eq!(sigs.len(), keys.len(), "one signature per key: {}", r.header("webhook-signature"));
    let pairs: Vec<String> =
        sigs.iter().zip(keys).map(|(s, k)| format!("('{}', '{}')", k.strip_prefix("whpk_").unwrap(), s)).collect();
    let program = format!(
        "import base64, sys\n\
         from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey\n\
         msg = base64.b64decode('{}')\n\
         for key, sig in [{}]:\n\
         \x20   Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(base64.b64decode(sig), msg)\n",
        b64.encode(&msg),
        pairs.join(", ")
    );
    run("python3", "-c", &program)
}

both_backends!(ed25519_signatures_verify_with_the_public_key, ed25519_on);
async fn ed25519_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (s, created) = app
        .post(
            "/api/v1/webhooks",
            ADMIN_TOKEN,
            json!({"name": "asym", "url": rx.url(), "event_types": ["*"], "signing_algorithm": "ed25519"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["secret"], json!(null), "the private key never leaves: {created}");
    assert_eq!(created["signing_algorithm"], "ed25519");
    let key = created["public_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("whpk_") && b64_len(&key) == 32, "{key}");
    let id = created["id"].as_str().unwrap().to_string();
    let (_, got) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(got["public_key"], key.as_str(), "on every GET");

    app.publish("alert.created", json!({"severity": "high"}), Some("asym-1")).await;
    let r = &rx.wait_for(1, WAIT).await[0];
    assert!(r.header("webhook-signature").starts_with("v1a,"), "{}", r.header("webhook-signature"));
    assert_eq!(r.header("x-tocsin-signature"), "", "no shared-secret scheme");
    if let Some(ok) = python_verifies(r, &[&key]) {
        assert!(ok, "cryptography verifies the v1a signature");
    }

    // The JWKS a receiver fetches holds the same key.
    let (s, jwks) = app.get(&format!("/api/v1/webhooks/{id}/public-keys"), ADMIN_TOKEN).await;
    assert_eq!(s, StatusCode::OK, "{jwks}");
    let k = &jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["kid"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("current"))
    );
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.encode(x), key.strip_prefix("whpk_").unwrap());

    // Rotation: a new key; during the grace period both sign, each verifying with its own key.
    let (s, rotated) = app.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["secret"], json!(null), "{rotated}");
    let new_key = rotated["public_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    app.publish("alert.created", json!({"severity": "low"}), Some("asym-2")).await;
    let r = &rx.wait_for(2, WAIT).await[1];
    if let Some(ok) = python_verifies(r, &[&new_key, &key]) {
        assert!(ok, "both signatures verify, each with its key");
        assert_eq!(python_verifies(r, &[&key, &new_key]), Some(false), "and not with the other's");
    }
    let (_, jwks) = app.get(&format!("/api/v1/webhooks/{id}/public-keys"), ADMIN_TOKEN).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["current", "previous"], "{jwks}");

    // Mistakes are named.
    for (body, field) in [
        (json!({"name": "x", "url": rx.url(), "signing_algorithm": "rsa"}), "signing_algorithm"),
        (
            json!({"name": "x", "url": rx.url(), "signing_algorithm": "ed25519", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            "secret",
        ),
        (
            json!({"name": "x", "url": rx.url(), "secret": "whsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
            "secret",
        ),
        (
            json!({"name": "x", "url": "syslog+udp://127.0.0.1:514", "format": "syslog", "signing_algorithm": "ed25519"}),
            "signing_algorithm",
        ),
    ] {
        let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, body).await;
        assert_field_error(s, &b, field);
    }
    let (s, b) =
        app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"signing_algorithm": "hmac-sha256"})).await;
    assert_field_error(s, &b, "signing_algorithm");
    let hmac = app.create_webhook(json!({"name": "hmac", "url": rx.url()})).await;
    assert_eq!(hmac["signing_algorithm"], "hmac-sha256");
    assert!(hmac.get("public_key").is_none(), "{hmac}");
    let (s, _) = app.get(&format!("/api/v1/webhooks/{}/public-keys", hmac["id"].as_str().unwrap()), ADMIN_TOKEN).await;
    assert_eq!(s, StatusCode::CONFLICT, "a shared-secret webhook has no public key");
}

fn b64_len(key: &str) -> usize {
    base64::engine::general_purpose::STANDARD.decode(key.strip_prefix("whpk_").unwrap()).map(|k| k.len()).unwrap_or(0)
}
