//! Each seed product's documented contract, end to end: the document's API calls as printed (only
//! the endpoint URL points at a real receiver on 127.0.0.1), the product's example events, and
//! what arrives checked against the document: body shape, every documented header, and the
//! signature, with the seed's own snippet where it prints one.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tocsin::domain::token::Role;

use crate::both_backends;
use crate::helpers::{assert_field_error, Backend, TestApp, ADMIN_TOKEN};
use crate::receiver::{Received, Receiver, Reply};
use crate::seeds::{
    assert_verified, hmac_sha256_hex_verifies, netrecon_node_verifies, netrecon_python_verifies, phishnet_node_verifies,
};

const WAIT: Duration = Duration::from_secs(15);

async fn app_speaking(backend: Backend, profile: &str) -> TestApp {
    let profile = profile.to_string();
    TestApp::delivering(backend, move |s| s.profile = profile).await
}

/// The catalogue's example of an event type, as the API lists it.
async fn example(app: &TestApp, event: &str) -> Value {
    let (status, list) = app.get("/api/v1/event-types", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let found = list["data"].as_array().unwrap().iter().find(|t| t["name"] == event).cloned();
    found.unwrap_or_else(|| panic!("{event} is not in the catalogue: {list}"))["example"].clone()
}

/// The keys of a JSON object body, in the order they were sent.
fn keys(body: &[u8]) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                out.push(k);
            }
            Ok(out)
        }
    }
    use serde::Deserializer as _;
    serde_json::Deserializer::from_slice(body).deserialize_map(Keys).expect("a JSON object")
}

fn is_rfc3339_utc_secs(s: &str) -> bool {
    s.len() == 20
        && s.ends_with('Z')
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// The published Standard Webhooks library's check, sent alongside every profile's own.
/// (A secret that is not `whsec_…` is the key as it is, as the library's `from_bytes` takes it.)
fn standard_ok(secret: &str, r: &Received) -> bool {
    let wh = if secret.starts_with("whsec_") {
        standardwebhooks::Webhook::new(secret)
    } else {
        standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec())
    };
    wh.is_ok_and(|wh| wh.verify(&r.body, &r.headers).is_ok())
}

both_backends!(phishnet_contract, phishnet_on);
async fn phishnet_on(backend: Backend) {
    let app = app_speaking(backend, "phishnet").await;
    let rx = Receiver::start().await;
    // "Add endpoint, select events, Save. A signing secret is displayed."
    let created = app
        .create_webhook(json!({"name": "SOC", "url": rx.url(), "event_types": ["email.quarantined", "email.restored"]}))
        .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let data = json!({
        "scan_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "message_id": "<CABc123@mail.gmail.com>",
        "sender_email": "attacker@example.com",
        "sender_domain": "example.com",
        "sender_display": "IT Support",
        "subject": "Urgent: reset your password now",
        "phish_score": 95,
        "source": "auto",
        "reason": "policy"
    });
    // event_ref "always equals scan_id inside data": taken from it when none is given...
    let answer = app.publish("email.quarantined", data.clone(), None).await;
    assert_eq!(answer["event_ref"], "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    // ... and a different one is refused.
    let (status, refused) = app
        .post("/api/v1/events", ADMIN_TOKEN, json!({"event": "email.restored", "event_ref": "other-ref", "data": data}))
        .await;
    assert_field_error(status, &refused, "event_ref");
    // A scan_id that cannot be an event_ref is refused, not replaced.
    let mut long = data.clone();
    long["scan_id"] = json!("x".repeat(200));
    let (status, refused) =
        app.post("/api/v1/events", ADMIN_TOKEN, json!({"event": "email.quarantined", "data": long})).await;
    assert_field_error(status, &refused, "data.scan_id");

    let r = rx.wait_for(1, WAIT).await.remove(0);
    let body = r.json();
    assert_eq!(keys(&r.body), ["event", "emitted_at", "event_ref", "data"], "the PhishNet envelope: {body}");
    assert_eq!(body["event"], "email.quarantined");
    assert_eq!(body["event_ref"], body["data"]["scan_id"]);
    assert!(is_rfc3339_utc_secs(body["emitted_at"].as_str().unwrap()), "{body}");
    assert_eq!(body["data"], data);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("user-agent"), "PhishNet-Webhook/1.0");
    assert_eq!(r.header("x-phishnet-event"), "email.quarantined");
    assert!(uuid::Uuid::parse_str(&r.header("x-phishnet-delivery")).is_ok(), "{:?}", r.headers);
    assert!(is_rfc3339_utc_secs(&r.header("x-phishnet-timestamp")), "{:?}", r.headers);
    let signature = r.header("x-phishnet-signature");
    assert!(signature.starts_with("sha256=") && signature.len() == 71, "{signature}");
    assert_verified(phishnet_node_verifies(&secret, &r.body, &signature), "PhishNet's Node.js snippet");
    assert_verified(hmac_sha256_hex_verifies(&secret, &r.body, &signature), "HMAC-SHA256 over the body");
    assert!(standard_ok(&secret, &r), "the Standard Webhooks headers are sent alongside");
    assert!(r.headers.get("x-tocsin-signature").is_none(), "no Tocsin-named header: {:?}", r.headers);

    // The other event type, with its documented reason.
    let mut restored = data.clone();
    restored["reason"] = json!("user_restore");
    restored["source"] = json!("manual");
    restored["scan_id"] = json!("9c1f0a2e-1b7d-4a51-8d0f-2f4b7a6c5e11");
    assert_eq!(
        app.publish("email.restored", restored, None).await["event_ref"],
        "9c1f0a2e-1b7d-4a51-8d0f-2f4b7a6c5e11"
    );
    let r = rx.wait_for(2, WAIT).await.remove(1);
    assert_eq!(
        (r.json()["event"].clone(), r.json()["event_ref"].clone()),
        (json!("email.restored"), r.json()["data"]["scan_id"].clone())
    );
    assert_verified(
        phishnet_node_verifies(&secret, &r.body, &r.header("x-phishnet-signature")),
        "PhishNet's Node.js snippet",
    );

    // "Send test event" signs like any other delivery.
    let (status, tested) =
        app.post(&format!("/api/v1/webhooks/{}/test", created["id"].as_str().unwrap()), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    let test = rx.wait_for(3, WAIT).await.remove(2);
    assert_verified(
        phishnet_node_verifies(&secret, &test.body, &test.header("x-phishnet-signature")),
        "PhishNet's Node.js snippet (test event)",
    );
}

both_backends!(netrecon_contract, netrecon_on);
async fn netrecon_on(backend: Backend) {
    let app = app_speaking(backend, "netrecon").await;
    let rx = Receiver::start().await;
    let base = "/api/v1/integrations/webhooks";
    // "Configure a Webhook", as printed (the URL is the receiver's).
    let (status, created) = app
        .post(
            base,
            ADMIN_TOKEN,
            json!({
                "url": rx.url(),
                "secret": "your-hmac-secret",
                "events": ["alert.created", "scan.completed", "device.discovered"],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["events"], json!(["alert.created", "scan.completed", "device.discovered"]), "{created}");
    assert_eq!(created["active"], true);
    assert_eq!(created["retry_count"], 4, "NetRecon makes 5 attempts: {created}");
    assert!(created.get("event_types").is_none() && created.get("is_active").is_none(), "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // The same validation as Tocsin's routes, in NetRecon's field names.
    let (status, bad) = app.post(base, ADMIN_TOKEN, json!({"url": rx.url(), "events": ["no.such_event"]})).await;
    assert_field_error(status, &bad, "events[0]");
    assert!(bad["error"]["message"].as_str().unwrap().starts_with("events[0]:"), "{bad}");
    // And the same roles: a viewer may list but not create.
    let viewer = app.token("default", Role::Viewer).await;
    assert_eq!(app.post(base, &viewer, json!({"url": rx.url()})).await.0, StatusCode::FORBIDDEN);
    let (status, listed) = app.get(base, &viewer).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"][0]["events"], created["events"], "{listed}");

    let data = json!({"alert_id": "alert-uuid", "title": "New open port detected", "severity": "high", "device_ip": "192.168.1.10"});
    let answer = app.publish("alert.created", data.clone(), Some("evt-0001")).await;
    assert_eq!(answer["deliveries"], 1);
    let r = rx.wait_for(1, WAIT).await.remove(0);
    let body = r.json();
    assert_eq!(keys(&r.body), ["id", "event", "timestamp", "tenant_id", "data"], "NetRecon's payload: {body}");
    assert_eq!(body["id"], "evt-0001");
    assert_eq!(body["event"], "alert.created");
    assert_eq!(body["tenant_id"], "default");
    assert!(is_rfc3339_utc_secs(body["timestamp"].as_str().unwrap()), "{body}");
    assert_eq!(body["data"], data);
    let signature = r.header("x-netrecon-signature");
    assert_verified(netrecon_python_verifies("your-hmac-secret", &r.body, &signature), "NetRecon's Python snippet");
    assert_verified(netrecon_node_verifies("your-hmac-secret", &r.body, &signature), "NetRecon's Node.js snippet");
    assert!(standard_ok("your-hmac-secret", &r));

    // "Test a Webhook" and "Webhook Delivery Log", as printed.
    let (status, tested) = app.post(&format!("{base}/{id}/test"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["success"], true, "{tested}");
    let log = app
        .poll(&format!("{base}/{id}/deliveries?page=1&per_page=25"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 2)
        })
        .await;
    assert!(log["data"][0]["http_status"].is_number() && log["data"][0]["response_ms"].is_number(), "{log}");

    // Five attempts, then the webhook is marked as failing. (The documented waits are minutes;
    // this webhook shortens them, through NetRecon's update route.)
    let (status, updated) = app
        .call(
            Method::PUT,
            &format!("{base}/{id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"retry_delays_ms": [0, 20, 20, 20, 20]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    rx.set_plan(|_, _| Reply::Status(500));
    app.publish("alert.created", data, Some("evt-0002")).await;
    let got = rx
        .wait_until(WAIT, "5 attempts of evt-0002", |r| r.iter().filter(|x| x.event_ref() == "evt-0002").count() >= 5)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().iter().filter(|x| x.event_ref() == "evt-0002").count(), 5, "exactly 5 attempts");
    assert!(got.len() >= 7);
    // The last failure's record may be held back a moment after its attempt.
    app.poll(&format!("{base}/{id}"), WAIT, |v| v["health"] == "failing").await;

    // "Delete a Webhook".
    let (status, _) = app.call(Method::DELETE, &format!("{base}/{id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("{base}/{id}"), ADMIN_TOKEN).await.0, StatusCode::NOT_FOUND);
}

both_backends!(pentest_contract, pentest_on);
async fn pentest_on(backend: Backend) {
    let app = app_speaking(backend, "pentest").await;
    let rx = Receiver::start().await;
    // "Create webhook", as printed (a Slack destination: the receiver answers like Slack).
    let created = app
        .create_webhook(json!({
            "name": "Slack - Critical Findings",
            "url": rx.url(),
            "secret": "optional-hmac-secret",
            "event_types": ["critical_finding", "engagement_completed"],
            "format": "slack",
            "retry_count": 3,
            "timeout_ms": 5000
        }))
        .await;
    assert_eq!((created["signed"].clone(), created["format"].clone()), (json!(true), json!("slack")));
    let slack_id = created["id"].as_str().unwrap().to_string();
    // Without a secret: unsigned, with the documented default event_types and format.
    let plain = app.create_webhook(json!({"name": "Plain", "url": rx.url()})).await;
    assert_eq!(plain["secret"], Value::Null, "{plain}");
    assert_eq!((plain["signed"].clone(), plain["format"].clone()), (json!(false), json!("json")));
    assert_eq!(plain["event_types"], json!(["finding_added", "phase_changed", "engagement_completed"]));
    // "List available event types": the platform's ten.
    let (_, types) = app.get("/api/v1/event-types", ADMIN_TOKEN).await;
    let names: Vec<&str> = types["data"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    for name in [
        "finding_added",
        "finding_verified",
        "phase_changed",
        "engagement_completed",
        "engagement_signed",
        "critical_finding",
        "retest_completed",
        "report_ready",
        "surface_changed",
        "monitor_alert",
    ] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    assert!(!names.contains(&"email.quarantined") && !names.contains(&"alert.created"), "{names:?}");

    app.publish("critical_finding", example(&app, "critical_finding").await, Some("f-1")).await;
    let signed = rx.wait_for(1, WAIT).await.remove(0);
    assert!(signed.json()["blocks"].is_array(), "a Slack Block Kit message");
    let signature = signed.header("x-webhook-signature");
    assert_verified(
        hmac_sha256_hex_verifies("optional-hmac-secret", &signed.body, &signature),
        "HMAC-SHA256 over the body",
    );
    assert!(standard_ok("optional-hmac-secret", &signed));

    app.publish("finding_added", example(&app, "finding_added").await, Some("f-2")).await;
    let unsigned = rx.wait_for(2, WAIT).await.remove(1);
    assert_eq!(unsigned.json()["event"], "finding_added");
    for header in ["x-webhook-signature", "webhook-signature"] {
        assert!(unsigned.headers.get(header).is_none(), "unsigned delivery carries {header}: {:?}", unsigned.headers);
    }
    // "Update accepts partial payloads"; "Re-enabling a webhook (is_active: true) resets the
    // failure counter".
    let (status, off) =
        app.put(&format!("/api/v1/webhooks/{slack_id}"), ADMIN_TOKEN, json!({"is_active": false})).await;
    assert_eq!(
        (status, off["is_active"].clone(), off["name"].clone()),
        (StatusCode::OK, json!(false), created["name"].clone())
    );
    let (_, on) = app.put(&format!("/api/v1/webhooks/{slack_id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    assert_eq!((on["is_active"].clone(), on["failure_count"].clone()), (json!(true), json!(0)));
    // "Test webhook" and "Delivery history".
    let (status, tested) = app.post(&format!("/api/v1/webhooks/{slack_id}/test"), ADMIN_TOKEN, json!({})).await;
    assert_eq!((status, tested["success"].clone()), (StatusCode::OK, json!(true)), "{tested}");
    let (_, history) = app.get(&format!("/api/v1/webhooks/{slack_id}/deliveries"), ADMIN_TOKEN).await;
    let first = &history["data"][0];
    assert!(
        first["http_status"].is_number() && first["success"].is_boolean() && first["attempt_number"].is_number(),
        "{history}"
    );
    // "Pentesters can see that webhooks exist but cannot create, modify, or delete them."
    let viewer = app.token("default", Role::Viewer).await;
    assert_eq!(app.get("/api/v1/webhooks", &viewer).await.0, StatusCode::OK);
    assert_eq!(
        app.put(&format!("/api/v1/webhooks/{slack_id}"), &viewer, json!({"name": "x"})).await.0,
        StatusCode::FORBIDDEN
    );

    // Setting a secret later signs from then on.
    let plain_id = plain["id"].as_str().unwrap();
    let (status, rotated) =
        app.post(&format!("/api/v1/webhooks/{plain_id}/rotate-secret"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    app.publish("phase_changed", example(&app, "phase_changed").await, Some("f-3")).await;
    let now_signed = rx
        .wait_until(WAIT, "the delivery of f-3", |r| r.iter().any(|x| x.event_ref() == "f-3"))
        .await
        .into_iter()
        .find(|x| x.event_ref() == "f-3")
        .unwrap();
    let secret = rotated["secret"].as_str().unwrap();
    assert_verified(
        hmac_sha256_hex_verifies(secret, &now_signed.body, &now_signed.header("x-webhook-signature")),
        "HMAC-SHA256 after a secret was set",
    );
    // "Delete webhook".
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{slack_id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

both_backends!(selki_contract, selki_on);
async fn selki_on(backend: Backend) {
    let app = app_speaking(backend, "selki").await;
    let rx = Receiver::start().await;
    // The wizard's fields: name, URL, events; advanced: no signing secret, retry attempts and
    // delay, a custom header.
    let plain = app
        .create_webhook(json!({
            "name": "Notify Slack on Clicks",
            "url": rx.url(),
            "event_types": ["PHISHING_EMAIL_CLICKED"],
            "retry_count": 2,
            "retry_delays_ms": [0, 50],
            "headers": {"Authorization": "Bearer receiver-token"}
        }))
        .await;
    assert_eq!(plain["signed"], false);
    let signed = app
        .create_webhook(json!({"name": "Signed", "url": rx.url(), "event_types": ["PHISHING_EMAIL_CLICKED"], "secret": "selki-signing-secret-1"}))
        .await;
    let data = json!({"campaignId": "abc123", "email": "user@example.com"});
    app.publish("PHISHING_EMAIL_CLICKED", data.clone(), Some("c-1")).await;
    app.publish("PHISHING_EMAIL_CLICKED", data.clone(), Some("c-2")).await;
    let got = rx.wait_for(4, WAIT).await;
    let of = |id: &Value| -> Vec<&Received> {
        got.iter().filter(|r| r.header("selki-webhook-id") == id.as_str().unwrap()).collect()
    };
    let (unsigned, with_secret) = (of(&plain["id"]), of(&signed["id"]));
    assert_eq!((unsigned.len(), with_secret.len()), (2, 2), "Selki-Webhook-ID is the webhook's: {got:?}");
    for r in &got {
        let body = r.json();
        assert_eq!(keys(&r.body), ["timestamp", "subscription", "data"], "Selki's body: {body}");
        assert_eq!(body["subscription"], "PHISHING_EMAIL_CLICKED");
        assert_eq!(body["data"], data);
        assert!(is_rfc3339_utc_secs(body["timestamp"].as_str().unwrap()));
    }
    let calls: std::collections::HashSet<String> = got.iter().map(|r| r.header("selki-webhook-call-id")).collect();
    assert_eq!(calls.len(), 4, "Selki-Webhook-Call-ID is unique per call");
    for r in &unsigned {
        assert!(r.headers.get("selki-signature").is_none(), "signed without a secret: {:?}", r.headers);
        assert_eq!(r.header("authorization"), "Bearer receiver-token");
    }
    for r in &with_secret {
        assert_verified(
            hmac_sha256_hex_verifies("selki-signing-secret-1", &r.body, &r.header("selki-signature")),
            "HMAC-SHA256 over the body",
        );
    }
}

both_backends!(gophish_contract, gophish_on);
async fn gophish_on(backend: Backend) {
    let app = app_speaking(backend, "gophish").await;
    let rx = Receiver::start().await;
    let signed = app
        .create_webhook(json!({"name": "signed", "url": rx.url(), "event_types": ["campaign.email_opened"], "secret": "gophish-webhook-secret"}))
        .await;
    let plain =
        app.create_webhook(json!({"name": "plain", "url": rx.url(), "event_types": ["campaign.email_opened"]})).await;
    assert_eq!((signed["signed"].clone(), plain["signed"].clone()), (json!(true), json!(false)));
    // The event exactly as the document prints it.
    let event =
        r#"{"email":"foo.bar@example.com","time":"2020-01-20T17:33:55.553906Z","message":"Email Opened","details":""}"#;
    let sent = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"event":"campaign.email_opened","data":{event}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let got = rx.wait_for(2, WAIT).await;
    for r in &got {
        assert_eq!(std::str::from_utf8(&r.body).unwrap(), event, "the body is the event itself");
    }
    let with_sig: Vec<&Received> = got.iter().filter(|r| r.headers.contains_key("x-gophish-signature")).collect();
    assert_eq!(with_sig.len(), 1, "only the webhook with a secret signs");
    let header = with_sig[0].header("x-gophish-signature");
    assert!(header.starts_with("sha256="), "{header}");
    assert_verified(
        hmac_sha256_hex_verifies("gophish-webhook-secret", &with_sig[0].body, &header),
        "HMAC-SHA256 over the body",
    );
}

both_backends!(a_tenant_chooses_its_profile, tenant_profile_on);
async fn tenant_profile_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    let (_, tenant) = app.get("/api/v1/tenant", ADMIN_TOKEN).await;
    assert_eq!(
        (tenant["profile"].clone(), tenant["profile_chosen"].clone()),
        (json!("tocsin"), json!(false)),
        "{tenant}"
    );
    // NetRecon's routes belong to tenants that speak NetRecon.
    assert_eq!(app.get("/api/v1/integrations/webhooks", ADMIN_TOKEN).await.0, StatusCode::NOT_FOUND);
    let (status, bad) = app.put("/api/v1/tenant", ADMIN_TOKEN, json!({"profile": "nosuch"})).await;
    assert_field_error(status, &bad, "profile");
    let viewer = app.token("default", Role::Viewer).await;
    assert_eq!(app.put("/api/v1/tenant", &viewer, json!({"profile": "netrecon"})).await.0, StatusCode::FORBIDDEN);

    let created = app.create_webhook(json!({"name": "n", "url": rx.url(), "secret": "netrecon-tenant-secret"})).await;
    let (status, tenant) = app.put("/api/v1/tenant", ADMIN_TOKEN, json!({"profile": "netrecon"})).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!((tenant["profile"].clone(), tenant["profile_chosen"].clone()), (json!("netrecon"), json!(true)));
    // Its catalogue is NetRecon's now, and the existing webhook delivers NetRecon's contract.
    let (status, refused) =
        app.post("/api/v1/events", ADMIN_TOKEN, json!({"event": "email.quarantined", "data": {"scan_id": "x"}})).await;
    assert_field_error(status, &refused, "event");
    app.publish("scan.completed", json!({"scan_id": "s-1"}), Some("scan-1")).await;
    let r = rx.wait_for(1, WAIT).await.remove(0);
    assert_eq!(keys(&r.body), ["id", "event", "timestamp", "tenant_id", "data"]);
    assert_verified(
        netrecon_python_verifies("netrecon-tenant-secret", &r.body, &r.header("x-netrecon-signature")),
        "NetRecon's Python snippet",
    );
    let (status, listed) = app.get("/api/v1/integrations/webhooks", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["id"], created["id"]);
    // Another tenant is untouched.
    let other = app.token("acme", Role::Admin).await;
    assert_eq!(app.get("/api/v1/tenant", &other).await.1["profile"], "tocsin");
    // null returns to the deployment's default.
    let (_, back) = app.put("/api/v1/tenant", ADMIN_TOKEN, json!({"profile": null})).await;
    assert_eq!((back["profile"].clone(), back["profile_chosen"].clone()), (json!("tocsin"), json!(false)));
}

/// A vendor's seventh profile: a copy of a shipped folder, edited, loaded from
/// `TOCSIN_PROFILE_DIR`, with no code.
#[tokio::test]
async fn a_vendor_writes_a_seventh_profile_as_data() {
    let profiles = tempfile::tempdir().unwrap();
    let folder = profiles.path().join("acme");
    std::fs::create_dir_all(&folder).unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/netrecon");
    let text = std::fs::read_to_string(format!("{shipped}/profile.toml")).unwrap();
    let text = text
        .replace("name = \"netrecon\"", "name = \"acme\"")
        .replace("X-NetRecon-", "X-Acme-")
        .replace("/api/v1/integrations/webhooks", "/api/v1/acme/hooks")
        .replace("format = \"sha256=hex\"", "format = \"hex\"");
    std::fs::write(folder.join("profile.toml"), text).unwrap();
    std::fs::copy(format!("{shipped}/catalogue.toml"), folder.join("catalogue.toml")).unwrap();

    let dir = profiles.path().to_path_buf();
    let app = TestApp::delivering(Backend::Sqlite, move |s| {
        s.profile_dir = Some(dir);
        s.profile = "acme".into();
    })
    .await;
    let rx = Receiver::start().await;
    let (status, created) = app
        .post(
            "/api/v1/acme/hooks",
            ADMIN_TOKEN,
            json!({"url": rx.url(), "secret": "acme-secret-0123456", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    app.publish("device.offline", json!({"device_ip": "10.0.0.9"}), Some("d-1")).await;
    let r = rx.wait_for(1, WAIT).await.remove(0);
    let signature = r.header("x-acme-signature");
    assert_eq!(signature.len(), 64, "the bare hex digest: {signature}");
    assert_verified(
        hmac_sha256_hex_verifies("acme-secret-0123456", &r.body, &format!("sha256={signature}")),
        "HMAC-SHA256 over the body",
    );
    assert_eq!(r.header("x-acme-event"), "device.offline");
}
