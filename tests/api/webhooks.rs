//! Webhook CRUD, pagination, partial updates, secrets, rotation, persistence across restarts.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{webhook_body, Backend, TestApp, ADMIN_TOKEN};

both_backends!(crud_round_trip, crud_round_trip_on);
async fn crud_round_trip_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create_webhook(json!({
            "name": "Slack - Critical Findings",
            "url": "https://hooks.slack.com/services/T00/B00/xxx",
            "event_types": ["critical_finding", "alert.*"],
            "format": "slack",
            "retry_count": 5,
            "timeout_ms": 8000,
            "headers": {"X-Api-Key": "abc"},
            "description": "SOC channel",
            "owner_email": "soc@example.com"
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["format"], "slack");
    assert_eq!(created["event_types"], json!(["critical_finding", "alert.*"]));
    assert_eq!(created["failure_count"], 0);
    assert_eq!(created["headers"]["X-Api-Key"], "********", "header values are masked");

    let (status, got) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "Slack - Critical Findings");
    assert_eq!(got["retry_count"], 5);
    assert_eq!(got["timeout_ms"], 8000);

    // PATCH and PUT are both partial.
    let (status, patched) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"retry_count": 1})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["retry_count"], 1);
    assert_eq!(patched["name"], "Slack - Critical Findings");
    assert_eq!(patched["timeout_ms"], 8000);
    let (status, put) = app
        .call(Method::PUT, &format!("/api/v1/webhooks/{id}"), Some(ADMIN_TOKEN), Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["name"], "Renamed");
    assert_eq!(put["retry_count"], 1);
    assert_eq!(put["format"], "slack");

    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{id}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(pagination_newest_first, pagination_on);
async fn pagination_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..7 {
        app.create_webhook(webhook_body(&format!("hook-{i}"))).await;
    }
    let (status, page1) = app.get("/api/v1/webhooks?page=1&per_page=3", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["total"], 7);
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&page1), ["hook-6", "hook-5", "hook-4"]);
    let (_, page3) = app.get("/api/v1/webhooks?page=3&per_page=3", ADMIN_TOKEN).await;
    assert_eq!(names(&page3), ["hook-0"]);
    let (_, beyond) = app.get("/api/v1/webhooks?page=9&per_page=3", ADMIN_TOKEN).await;
    assert_eq!(names(&beyond), Vec::<String>::new());
    assert_eq!(beyond["total"], 7);
    for bad in ["per_page=101", "per_page=0", "page=0", "page=x"] {
        let (status, body) = app.get(&format!("/api/v1/webhooks?{bad}"), ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["field"], bad.split('=').next().unwrap(), "{body}");
    }
    let (status, body) = app.get("/api/v1/webhooks?sort=name", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "sort");
}

both_backends!(secret_shown_only_at_creation, secret_only_once_on);
async fn secret_only_once_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut body = webhook_body("with secret");
    body["secret"] = json!("optional-hmac-secret-1234");
    let created = app.create_webhook(body).await;
    assert_eq!(created["secret"], "optional-hmac-secret-1234");
    let id = created["id"].as_str().unwrap();
    let generated = app.create_webhook(webhook_body("generated")).await;
    let generated_secret = generated["secret"].as_str().unwrap().to_string();
    let gid = generated["id"].as_str().unwrap();

    let mut later = Vec::new();
    later.push(app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await.1);
    later.push(app.get("/api/v1/webhooks", ADMIN_TOKEN).await.1);
    later.push(app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"name": "x"})).await.1);
    later.push(app.patch(&format!("/api/v1/webhooks/{gid}"), ADMIN_TOKEN, json!({"is_active": false})).await.1);
    later.push(app.get("/api/v1/audit-log", ADMIN_TOKEN).await.1);
    let (status, rotated) = app.post(&format!("/api/v1/webhooks/{gid}/rotate-secret"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, generated_secret);
    // A second rotation during the grace period would cut the previous secret short: refused.
    let (status, again) = app.post(&format!("/api/v1/webhooks/{gid}/rotate-secret"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(again["error"]["message"].as_str().unwrap().contains("signs until"), "{again}");
    // A rotation may set the new secret itself.
    let (status, given) = app
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            ADMIN_TOKEN,
            json!({"secret": "given-rotation-secret-0123"}),
        )
        .await;
    assert_eq!((status, given["secret"].as_str()), (StatusCode::OK, Some("given-rotation-secret-0123")), "{given}");
    later.push(app.get(&format!("/api/v1/webhooks/{gid}"), ADMIN_TOKEN).await.1);
    later.push(app.get("/api/v1/audit-log", ADMIN_TOKEN).await.1);
    for v in &later {
        let text = v.to_string();
        for s in ["optional-hmac-secret-1234", &generated_secret, &new_secret] {
            assert!(!text.contains(s), "a secret leaked in a later response: {text}");
        }
        assert!(!text.contains(ADMIN_TOKEN));
    }
    // During the grace period the webhook says the previous secret still signs.
    let shown = &later[5];
    assert!(shown["previous_secret_expires_at"].is_string(), "{shown}");

    // Custom header values are sealed at rest too, and read back as they were given.
    let headers = json!({"headers": {"X-Api-Key": "header-value-secret-99"}});
    let (status, patched) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, headers).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let w = app.app_state.store.webhook_by_id(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(w.headers.iter().next().map(|(_, v)| v.as_str()), Some("header-value-secret-99"));
    // At rest the secrets are sealed: the SQLite file never holds them in plaintext.
    if backend == Backend::Sqlite {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(app.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains("tocsin.db") {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(!bytes.is_empty());
        for s in ["optional-hmac-secret-1234", generated_secret.as_str(), new_secret.as_str(), "header-value-secret-99"]
        {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "plaintext secret in the database file");
        }
    } else if let tocsin::store::DatabaseUrl::Postgres(url) = &app.settings.database {
        // On PostgreSQL: what the webhooks table holds, read directly.
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let rows = client.query("SELECT headers, encode(secret, 'escape') AS secret FROM webhooks", &[]).await.unwrap();
        let stored: String =
            rows.iter().map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1))).collect();
        assert!(stored.contains("X-Api-Key"), "the header's name is stored: {stored}");
        for s in ["optional-hmac-secret-1234", generated_secret.as_str(), new_secret.as_str(), "header-value-secret-99"]
        {
            assert!(!stored.contains(s), "plaintext secret in the webhooks table");
        }
    }
}

both_backends!(reactivation_resets_failure_count, reactivation_on);
async fn reactivation_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create_webhook(webhook_body("flaky")).await;
    let id = created["id"].as_str().unwrap();
    let (_, off) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": false})).await;
    assert_eq!(off["is_active"], false);
    assert_eq!(off["disabled_reason"], "manual");
    // The breaker's counter, as the dispatcher would have left it after four failed attempts.
    app.exec_sql(&format!("UPDATE webhooks SET failure_count = 4 WHERE id = '{id}'")).await;
    let (_, before) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(before["failure_count"], 4);
    let (_, on) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"is_active": true})).await;
    assert_eq!(on["is_active"], true);
    assert_eq!(on["failure_count"], 0);
    assert_eq!(on["disabled_reason"], serde_json::Value::Null);
}

both_backends!(data_survives_restart, restart_on);
async fn restart_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create_webhook(webhook_body("durable")).await;
    let id = created["id"].as_str().unwrap().to_string();
    let app = app.restart().await;
    let (status, got) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["name"], "durable");
    let (_, audit) = app.get("/api/v1/audit-log", ADMIN_TOKEN).await;
    assert_eq!(audit["data"][0]["action"], "webhook.create");
}

both_backends!(audit_log_records_changes, audit_on);
async fn audit_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create_webhook(webhook_body("audited")).await;
    let id = created["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"timeout_ms": 2000})).await;
    app.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), ADMIN_TOKEN, json!({})).await;
    app.call(Method::DELETE, &format!("/api/v1/webhooks/{id}"), Some(ADMIN_TOKEN), None).await;
    let (status, audit) = app.get("/api/v1/audit-log", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["webhook.delete", "webhook.rotate_secret", "webhook.update", "webhook.create"]);
    let update = &audit["data"][2];
    assert_eq!(update["target"], format!("webhook:{id}"));
    assert_eq!(update["details"]["fields"], json!(["timeout_ms"]));
    assert!(update["actor"].as_str().unwrap().starts_with("token:"));
    assert!(update["at"].as_str().unwrap().ends_with('Z'));
}

both_backends!(health_and_openapi, health_on);
async fn health_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/readyz", None, None).await.0, StatusCode::OK);
    let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/webhooks", "/webhooks/{id}", "/webhooks/{id}/rotate-secret", "/event-types", "/audit-log", "/tokens"]
    {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    for method in ["get", "put", "patch", "delete"] {
        assert!(doc["paths"]["/webhooks/{id}"][method].is_object(), "{method}");
    }
    assert!(doc["components"]["schemas"]["WebhookInput"].is_object());
}

both_backends!(viewers_never_see_credentials_in_urls, viewer_masking_on);
async fn viewer_masking_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX?token=hunter2";
    let (status, created) =
        app.post("/api/v1/webhooks", ADMIN_TOKEN, json!({"name": "chat", "url": url, "format": "slack"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let viewer = app.token("default", tocsin::domain::token::Role::Viewer).await;
    let (_, one) = app.get(&format!("/api/v1/webhooks/{id}"), &viewer).await;
    let (_, list) = app.get("/api/v1/webhooks", &viewer).await;
    for shown in [&one["url"], &list["data"][0]["url"]] {
        assert_eq!(shown, "https://hooks.slack.com/services/…?token=…");
    }
    for text in [one.to_string(), list.to_string()] {
        assert!(!text.contains("XXXXXXXX") && !text.contains("hunter2"), "{text}");
    }
    let (_, as_admin) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(as_admin["url"], url, "admins see the whole URL");
}
