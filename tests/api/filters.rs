//! Payload filters: `min_severity` (the severity the formats show) and `filter` (a CEL
//! expression) decide at publish time which subscribed webhooks get a delivery; the publish
//! answer counts only real deliveries, the event's detail names the webhooks that filtered it
//! out, and a bad expression is a 422 naming `filter` and where.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_field_error, Backend, TestApp, ADMIN_TOKEN};
use crate::receiver::Receiver;

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

both_backends!(payload_filters_decide_deliveries_at_publish, filters_on);
async fn filters_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let (strict, all, broken) = (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    let hook = |name: &str, url: String, extra: serde_json::Value| {
        let mut body = json!({"name": name, "url": url, "event_types": ["email.*"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let strict_hook = app
        .create_webhook(hook(
            "strict",
            strict.url(),
            json!({"min_severity": "high", "filter": r#"data.phish_score >= 90 && data.source == "auto""#}),
        ))
        .await;
    assert_eq!(strict_hook["min_severity"], "high");
    assert_eq!(strict_hook["filter"], r#"data.phish_score >= 90 && data.source == "auto""#);
    app.create_webhook(hook("all", all.url(), json!({}))).await;
    // A field the events do not have: never a match, never an error.
    let broken_hook =
        app.create_webhook(hook("broken", broken.url(), json!({"filter": "data.no_such_field > 1"}))).await;

    let publish = |score: i64, source: &str, r: &str| json!({"event": "email.quarantined", "event_ref": r, "data": {"subject": "x", "phish_score": score, "source": source}});
    let (s, b) = app.post("/api/v1/events", ADMIN_TOKEN, publish(95, "auto", "f-1")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["deliveries"], 2, "strict and all, not broken: {b}");
    let (_, b) = app.post("/api/v1/events", ADMIN_TOKEN, publish(95, "manual", "f-2")).await;
    assert_eq!(b["deliveries"], 1, "the expression says no: {b}");
    let (_, b) = app.post("/api/v1/events", ADMIN_TOKEN, publish(50, "auto", "f-3")).await;
    assert_eq!(b["deliveries"], 1, "medium is below high: {b}");
    assert_eq!(all.wait_for(3, WAIT).await.len(), 3);
    let got = strict.wait_for(1, WAIT).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(strict.received().len(), 1);
    assert_eq!(got[0].event_ref(), "f-1");
    assert!(broken.received().is_empty());

    // The event's detail names who filtered it out.
    let (_, e) = app.get("/api/v1/events/f-2", ADMIN_TOKEN).await;
    let filtered: Vec<&str> =
        e["filtered"].as_array().unwrap().iter().map(|f| f["webhook_id"].as_str().unwrap()).collect();
    assert!(filtered.contains(&strict_hook["id"].as_str().unwrap()), "{e}");
    assert!(filtered.contains(&broken_hook["id"].as_str().unwrap()), "{e}");
    assert_eq!(e["deliveries"].as_array().unwrap().len(), 1, "{e}");

    // Mistakes are named, with where in the expression.
    let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, hook("x", all.url(), json!({"filter": "data.x >="}))).await;
    assert_field_error(s, &b, "filter");
    assert!(b["error"]["message"].as_str().unwrap().contains("1:"), "the position: {b}");
    let (s, b) =
        app.post("/api/v1/webhooks", ADMIN_TOKEN, hook("x", all.url(), json!({"min_severity": "urgent"}))).await;
    assert_field_error(s, &b, "min_severity");

    // "" removes a filter: everything subscribed flows again.
    let id = strict_hook["id"].as_str().unwrap();
    let (s, b) =
        app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"filter": "", "min_severity": ""})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["filter"].clone(), b["min_severity"].clone()), (json!(null), json!(null)));
    let (_, b) = app.post("/api/v1/events", ADMIN_TOKEN, publish(10, "manual", "f-4")).await;
    assert_eq!(b["deliveries"], 2, "{b}");
}
