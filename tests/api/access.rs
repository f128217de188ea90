//! The role matrix: admin / viewer / publisher / no token / bad token / other tenant × every route.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tocsin::domain::token::Role;

use crate::both_backends;
use crate::helpers::{webhook_body, Backend, TestApp, ADMIN_TOKEN};
use crate::pg_only;

/// Every management route, with a body that is valid for an admin.
fn routes(webhook: &str, token_id: &str) -> Vec<(Method, String, Option<Value>, bool)> {
    // (method, path, body, is_a_change)
    vec![
        (Method::GET, "/api/v1/webhooks".into(), None, false),
        (Method::POST, "/api/v1/webhooks".into(), Some(webhook_body("new")), true),
        (Method::GET, format!("/api/v1/webhooks/{webhook}"), None, false),
        (Method::PUT, format!("/api/v1/webhooks/{webhook}"), Some(json!({"name": "put"})), true),
        (Method::PATCH, format!("/api/v1/webhooks/{webhook}"), Some(json!({"name": "patch"})), true),
        (Method::POST, format!("/api/v1/webhooks/{webhook}/rotate-secret"), Some(json!({})), true),
        (Method::GET, "/api/v1/event-types".into(), None, false),
        (Method::PUT, "/api/v1/event-types/custom.thing".into(), Some(json!({"description": "a custom event"})), true),
        (
            Method::POST,
            "/api/v1/event-types/custom.other".into(),
            Some(json!({"description": "another custom event"})),
            true,
        ),
        (Method::DELETE, "/api/v1/event-types/custom.thing".into(), None, true),
        (Method::GET, "/api/v1/audit-log".into(), None, true),
        (Method::GET, "/api/v1/tenant".into(), None, false),
        (Method::PUT, "/api/v1/tenant".into(), Some(json!({"contact_email": "soc@example.com"})), true),
        (Method::GET, "/api/v1/tokens".into(), None, true),
        (Method::POST, "/api/v1/tokens".into(), Some(json!({"name": "ci", "role": "viewer"})), true),
        (Method::DELETE, format!("/api/v1/tokens/{token_id}"), None, true),
        (Method::DELETE, format!("/api/v1/webhooks/{webhook}"), None, true),
    ]
}

both_backends!(role_matrix, role_matrix_on);
async fn role_matrix_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.token("default", Role::Viewer).await;
    let publisher = app.token("default", Role::Publisher).await;
    let other_admin = app.token("other-tenant", Role::Admin).await;
    let webhook = app.create_webhook(webhook_body("target")).await["id"].as_str().unwrap().to_string();
    let (_, made) = app.post("/api/v1/tokens", ADMIN_TOKEN, json!({"name": "victim", "role": "viewer"})).await;
    let token_id = made["id"].as_str().unwrap().to_string();

    for (method, path, body, is_change) in routes(&webhook, &token_id) {
        let label = format!("{method} {path}");
        // No token, a malformed header, an unknown token: 401 with a JSON error.
        let (s, b) = app.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{label} without token: {b}");
        assert_eq!(b["error"]["code"], "unauthorized");
        let (s, _) = app.call(method.clone(), &path, Some("tsn_not_a_real_token_at_all_000000000"), body.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{label} with a bad token");
        // A publisher may only publish.
        let (s, b) = app.call(method.clone(), &path, Some(&publisher), body.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{label} as publisher: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
        // A viewer reads, never changes.
        let (s, b) = app.call(method.clone(), &path, Some(&viewer), body.clone()).await;
        if is_change {
            assert_eq!(s, StatusCode::FORBIDDEN, "{label} as viewer: {b}");
        } else {
            assert_eq!(s, StatusCode::OK, "{label} as viewer: {b}");
        }
        // Another tenant's admin does not see this tenant's objects.
        let (s, b) = app.call(method.clone(), &path, Some(&other_admin), body.clone()).await;
        if path.contains(&webhook) || path.contains(&token_id) {
            assert_eq!(s, StatusCode::NOT_FOUND, "{label} as other tenant: {b}");
        } else {
            assert!(s.is_success() || s == StatusCode::NOT_FOUND, "{label} as other tenant: {s} {b}");
            assert!(!b.to_string().contains(&webhook), "{label}: other tenant sees the webhook: {b}");
        }
        // The admin may do it.
        let (s, b) = app.call(method.clone(), &path, Some(ADMIN_TOKEN), body.clone()).await;
        assert!(s.is_success(), "{label} as admin: {s} {b}");
    }
}

both_backends!(revoked_token_is_refused, revoked_on);
async fn revoked_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, made) = app.post("/api/v1/tokens", ADMIN_TOKEN, json!({"name": "ci", "role": "viewer"})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("tsn_"));
    assert_eq!(app.get("/api/v1/webhooks", &token).await.0, StatusCode::OK);
    let (_, list) = app.get("/api/v1/tokens", ADMIN_TOKEN).await;
    assert!(!list.to_string().contains(&token), "token values are never listed");
    let id = made["id"].as_str().unwrap();
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/webhooks", &token).await.0, StatusCode::UNAUTHORIZED);
}

both_backends!(tenants_are_isolated, tenants_on);
async fn tenants_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.token("acme", Role::Admin).await;
    app.create_webhook(webhook_body("default's")).await;
    let (status, created) = app.post("/api/v1/webhooks", &other, webhook_body("acme's")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, mine) = app.get("/api/v1/webhooks", &other).await;
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["data"][0]["name"], "acme's");
    let (_, theirs) = app.get("/api/v1/webhooks", ADMIN_TOKEN).await;
    assert_eq!(theirs["total"], 1);
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await.0, StatusCode::NOT_FOUND);
    let (_, audit) = app.get("/api/v1/audit-log", ADMIN_TOKEN).await;
    assert!(!audit.to_string().contains(id), "audit entries are per tenant");
    // Another tenant's admin deleting it is told 404 and changes nothing: its held delivery
    // stays, and no deletion is written to either audit log.
    let (s, b) = app
        .patch(&format!("/api/v1/webhooks/{id}"), &other, json!({"is_active": false, "event_types": ["alert.*"]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let event = json!({"event": "alert.created", "data": {"n": 1}, "event_ref": "acme-held"});
    assert_eq!(app.post("/api/v1/events", &other, event).await.0, StatusCode::ACCEPTED);
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, e) = app.get("/api/v1/events/acme-held", &other).await;
    assert_eq!(e["deliveries"][0]["state"], "held", "the other tenant's delete left it: {e}");
    for token in [ADMIN_TOKEN, other.as_str()] {
        let (_, audit) = app.get("/api/v1/audit-log", token).await;
        assert!(!audit.to_string().contains("webhook.delete"), "{audit}");
    }
    // Event types defined by one tenant are not the other's.
    let (s, _) = app
        .call(Method::PUT, "/api/v1/event-types/acme.only", Some(&other), Some(json!({"description": "acme"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, types) = app.get("/api/v1/event-types", ADMIN_TOKEN).await;
    assert!(!types.to_string().contains("acme.only"));
    let mut body = webhook_body("uses acme type");
    body["event_types"] = json!(["acme.only"]);
    let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, body.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(app.post("/api/v1/webhooks", &other, body).await.0, StatusCode::CREATED);
}

both_backends!(concurrent_requests_each_get_their_own_tokens_answer, concurrent_tokens_on);
/// Token lookups of concurrent requests may be read together (PostgreSQL): each request is still
/// answered for its own token, whether live, revoked or unknown.
async fn concurrent_tokens_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.token("default", Role::Viewer).await;
    let (status, made) = app.post("/api/v1/tokens", ADMIN_TOKEN, json!({"name": "gone", "role": "admin"})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let revoked = made["token"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap();
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let unknown = format!("tsn_{}", "x".repeat(40));
    // (token, expected status of a viewer's read, of an admin's write)
    let cases = [
        (ADMIN_TOKEN.to_string(), StatusCode::OK, StatusCode::CREATED),
        (viewer, StatusCode::OK, StatusCode::FORBIDDEN),
        (revoked, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
        (unknown, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
    ];
    let calls = (0..64).map(|i| {
        let (token, read, write) = cases[i % cases.len()].clone();
        let app = &app;
        async move {
            let (got_read, _) = app.get("/api/v1/webhooks", &token).await;
            let body = json!({"name": format!("t{i}"), "role": "viewer"});
            let (got_write, _) = app.post("/api/v1/tokens", &token, body).await;
            (i, (read, write), (got_read, got_write))
        }
    });
    for (i, expected, got) in futures_util::future::join_all(calls).await {
        assert_eq!(got, expected, "request pair {i}");
    }
}

pg_only! {
    /// PostgreSQL: a token revoked through one server is refused by another at its next request.
    async fn revocation_applies_at_once_on_every_server() {
        let first = TestApp::spawn(Backend::Postgres).await;
        let second = TestApp::start(first.settings.clone(), tempfile::tempdir().unwrap()).await;
        let (status, made) = first.post("/api/v1/tokens", ADMIN_TOKEN, json!({"name": "ci", "role": "viewer"})).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let token = made["token"].as_str().unwrap().to_string();
        assert_eq!(second.get("/api/v1/webhooks", &token).await.0, StatusCode::OK);
        let id = made["id"].as_str().unwrap();
        let (status, _) = first.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(second.get("/api/v1/webhooks", &token).await.0, StatusCode::UNAUTHORIZED);
    }
}

pg_only! {
    /// PostgreSQL: a server keeps the tokens publishes use (no read per publish), and a token
    /// revoked through another server is still refused by the next publish: its insert finds
    /// the token revoked and stores nothing. Every other answer to a kept token (an invalid
    /// event, a repeat, a batch with nothing valid) is given only after the token is read afresh.
    async fn a_kept_token_revoked_elsewhere_publishes_nothing() {
        let first = TestApp::spawn(Backend::Postgres).await;
        let second = TestApp::start(first.settings.clone(), tempfile::tempdir().unwrap()).await;
        let event = |r: &str| json!({"event": "alert.created", "event_ref": r, "data": {"title": r, "severity": "high"}});
        let invalid = json!({"event": "alert.created", "data": "not an object"});
        // Each case is the first request after the revocation: the second server still keeps
        // the token (a refusal makes it forget it).
        let cases = [
            ("/api/v1/events", event("after-revocation")),
            ("/api/v1/events", event("kept-0")),
            ("/api/v1/events", invalid.clone()),
            ("/api/v1/events/batch", json!({"events": [invalid]})),
            ("/api/v1/events/batch", json!({"events": [event("batch-after")]})),
            // A batch large enough to be written on its own (not combined with others).
            ("/api/v1/events/batch", json!({"events": (0..40).map(|i| event(&format!("big-{i}"))).collect::<Vec<_>>()})),
        ];
        for (n, (path, body)) in cases.into_iter().enumerate() {
            let (status, made) =
                first.post("/api/v1/tokens", ADMIN_TOKEN, json!({"name": "pub", "role": "publisher"})).await;
            assert_eq!(status, StatusCode::CREATED, "{made}");
            let token = made["token"].as_str().unwrap().to_string();
            // Twice through the second server: the second publish uses the token it kept.
            for r in [format!("kept-{n}"), format!("kept-again-{n}")] {
                let (status, b) = second.post("/api/v1/events", &token, event(&r)).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{b}");
            }
            let id = made["id"].as_str().unwrap();
            let (status, _) =
                first.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN), None).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let (status, b) = second.post(path, &token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {body}: {b}");
            assert_eq!(b["error"]["code"], "unauthorized", "{b}");
        }
        for r in ["after-revocation", "batch-after", "big-0", "big-39"] {
            let (status, b) = first.get(&format!("/api/v1/events/{r}"), ADMIN_TOKEN).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{r} was stored: {b}");
        }
        let (status, b) = first.get("/api/v1/events/kept-again-0", ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{b}");

        // A refused caller among live publishes.
        let live = first.token("default", Role::Publisher).await;
        let (_, made) = first.post("/api/v1/tokens", ADMIN_TOKEN, json!({"name": "pub", "role": "publisher"})).await;
        let revoked = made["token"].as_str().unwrap().to_string();
        assert_eq!(second.post("/api/v1/events", &revoked, event("kept-combined")).await.0, StatusCode::ACCEPTED);
        let id = made["id"].as_str().unwrap();
        first.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN), None).await;
        // Live publishes before and after it, which may be written together with it: each is
        // answered for its own event (the split of a combined write's outcomes among its callers
        // is unit-tested in store/postgres/batch.rs, where it is certain to be exercised).
        let live_publish = |i: usize| {
            let (second, live, r) = (&second, &live, format!("combined-{i}"));
            async move { (r.clone(), second.post("/api/v1/events", live, event(&r)).await) }
        };
        let before = futures_util::future::join_all((0..8).map(live_publish));
        let refused = async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            second.post("/api/v1/events/batch", &revoked, json!({"events": [event("r-1"), event("r-2")]})).await
        };
        let after = async {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            futures_util::future::join_all((8..16).map(live_publish)).await
        };
        let (before, refused, after) = futures_util::future::join3(before, refused, after).await;
        assert_eq!(refused.0, StatusCode::UNAUTHORIZED, "{}", refused.1);
        for (r, (status, b)) in before.into_iter().chain(after) {
            assert_eq!(status, StatusCode::ACCEPTED, "{r}: {b}");
            assert_eq!((b["event_ref"].as_str(), b["duplicate"].as_bool()), (Some(r.as_str()), Some(false)), "{b}");
        }

        // A live token's invalid event is still answered for what it is, also when kept.
        assert_eq!(second.post("/api/v1/events", &live, event("live-1")).await.0, StatusCode::ACCEPTED);
        let (status, b) = second.post("/api/v1/events", &live, json!({"event": "alert.created", "data": 1})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (status, b) = second.post("/api/v1/events", &live, event("live-1")).await;
        assert_eq!((status, b["duplicate"].clone()), (StatusCode::ACCEPTED, json!(true)), "{b}");
    }
}
