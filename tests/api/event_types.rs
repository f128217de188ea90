//! The event-type catalogue.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_field_error, Backend, TestApp, ADMIN_TOKEN};

both_backends!(catalogue_crud, catalogue_on);
async fn catalogue_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, list) = app.get("/api/v1/event-types", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    let quarantined = list["data"].as_array().unwrap().iter().find(|e| e["name"] == "email.quarantined").unwrap();
    assert_eq!(quarantined["built_in"], true);
    assert_eq!(quarantined["example"]["phish_score"], 95);
    assert!(quarantined["description"].as_str().unwrap().contains("quarantined"));

    let body = json!({
        "description": "A custom detection",
        "schema": {"type": "object", "required": ["host"]},
        "example": {"host": "db-1"}
    });
    let (s, b) =
        app.call(Method::PUT, "/api/v1/event-types/custom.detection", Some(ADMIN_TOKEN), Some(body.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app.call(Method::PUT, "/api/v1/event-types/custom.detection", Some(ADMIN_TOKEN), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "a second PUT replaces");
    let (_, list) = app.get("/api/v1/event-types", ADMIN_TOKEN).await;
    let custom = list["data"].as_array().unwrap().iter().find(|e| e["name"] == "custom.detection").unwrap().clone();
    assert_eq!(custom["built_in"], false);
    assert_eq!(custom["example"]["host"], "db-1");
    // A webhook can now subscribe to it and to its family.
    let (s, b) = app
        .post(
            "/api/v1/webhooks",
            ADMIN_TOKEN,
            json!({"name": "c", "url": "https://x.example/h", "event_types": ["custom.*"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // Built-in types are read-only.
    let (s, b) = app.call(Method::DELETE, "/api/v1/event-types/email.quarantined", Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, _) = app.call(Method::DELETE, "/api/v1/event-types/custom.detection", Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.call(Method::DELETE, "/api/v1/event-types/custom.detection", Some(ADMIN_TOKEN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both_backends!(event_type_validation, event_type_validation_on);
async fn event_type_validation_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let put = |name: &str, body: serde_json::Value| {
        let path = format!("/api/v1/event-types/{name}");
        let app = &app;
        async move { app.call(Method::PUT, &path, Some(ADMIN_TOKEN), Some(body)).await }
    };
    let (s, b) = put("bad%20name", json!({"description": "x"})).await;
    assert_field_error(s, &b, "name");
    let (s, b) = put("ok.name", json!({})).await;
    assert_field_error(s, &b, "description");
    let (s, b) = put("ok.name", json!({"description": ""})).await;
    assert_field_error(s, &b, "description");
    let (s, b) = put("ok.name", json!({"description": "d", "schema": [1]})).await;
    assert_field_error(s, &b, "schema");
    let (s, b) = put("ok.name", json!({"description": "d", "example": "text"})).await;
    assert_field_error(s, &b, "example");
    let (s, b) = put("ok.name", json!({"description": "d", "colour": "red"})).await;
    assert_field_error(s, &b, "colour");
    let (s, b) = put("ok.name", json!({"description": 5})).await;
    assert_field_error(s, &b, "description");
}

both_backends!(published_data_must_match_the_schema, schema_on);
async fn schema_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let schema = json!({
        "type": "object",
        "required": ["host", "severity"],
        "properties": {"host": {"type": "string"}, "severity": {"enum": ["low", "medium", "high", "critical"]}}
    });
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/event-types/edr.detection",
            Some(ADMIN_TOKEN),
            Some(json!({"description": "EDR detection", "schema": schema})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let publish = |data: serde_json::Value| {
        let app = &app;
        async move { app.post("/api/v1/events", ADMIN_TOKEN, json!({"event": "edr.detection", "data": data})).await }
    };
    let (s, b) = publish(json!({"host": "db-1", "severity": "high"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = publish(json!({"severity": "high"})).await;
    assert_field_error(s, &b, "data");
    let (s, b) = publish(json!({"host": 5, "severity": "high"})).await;
    assert_field_error(s, &b, "data.host");
    let (s, b) = publish(json!({"host": "x", "severity": "apocalyptic"})).await;
    assert_field_error(s, &b, "data.severity");
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/event-types/edr.bad",
            Some(ADMIN_TOKEN),
            Some(json!({"description": "bad schema", "schema": {"type": "no-such-type"}})),
        )
        .await;
    assert_field_error(s, &b, "schema");
}
