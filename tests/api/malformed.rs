//! Every route the API publishes in its OpenAPI document, given malformed input: path parameters
//! that are not ids (or not UTF-8), junk query strings, bodies that are not JSON, and each
//! property of its request schema set to values of the wrong type or size. Each is answered
//! with a 2xx or a 4xx whose body is a JSON error with a message, never a 5xx or plain text.
//!
//! The routes and properties are read from the server's own document, so a route added later
//! is covered without a change here.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, ADMIN_TOKEN};

/// Values of every JSON type, at the edges of their ranges.
fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(2.5),
        json!(true),
        json!(""),
        json!("x".repeat(70_000)),
        json!("\u{0}"),
        json!("line\nbreak, bell \u{7}, escape \u{1b}[31m"),
        // A filter that compiles, but with a NUL in its string (PostgreSQL stores no NUL).
        json!("data.note == \"\u{0}\""),
        json!("💥".repeat(50)),
        json!("http://169.254.169.254/latest/meta-data"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"a": {"b": [{}]}}),
    ]
}

/// Bodies that are not the JSON object a write takes.
fn raw_bodies() -> Vec<Vec<u8>> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    [b"".as_slice(), b"{", b"null", b"[]", b"\"x\"", b"{\"a\":", b"\xff\xfe", b"{}{}", deep.as_bytes()]
        .iter()
        .map(|b| b.to_vec())
        .collect()
}

const QUERIES: &[&str] = &[
    "",
    "?page=-1&per_page=abc",
    "?page=99999999999999999999&per_page=0",
    "?since=yesterday&until=2026-13-45T99:00:00Z",
    "?state=%ff%fe&event=%00&q=%",
    "?limit=-5&cursor=AAAA&format=bogus&unknown=1",
];

/// Follows a `$ref` into the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => r.trim_start_matches("#/").split('/').fold(doc, |node, part| &node[part]),
        None => schema,
    }
}

/// The names of a request schema's properties, through `allOf`/`oneOf`/`anyOf`.
fn properties(doc: &Value, schema: &Value, depth: usize) -> Vec<String> {
    let schema = resolve(doc, schema);
    if depth > 4 {
        return Vec::new();
    }
    let mut names: Vec<String> =
        schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            names.extend(properties(doc, part, depth + 1));
        }
    }
    names.sort();
    names.dedup();
    names
}

/// A path with each `{parameter}` replaced by each of its candidates.
fn expand(path: &str, candidates: &[(&str, Vec<String>)]) -> Vec<String> {
    let mut paths = vec![path.to_string()];
    for (param, values) in candidates {
        let key = format!("{{{param}}}");
        if !path.contains(&key) {
            continue;
        }
        paths = paths.iter().flat_map(|p| values.iter().map(|v| p.replace(&key, v))).collect();
    }
    paths
}

both_backends!(every_route_answers_malformed_input_with_a_json_4xx, malformed_on);
async fn malformed_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let webhook = app
        .create_webhook(json!({"name": "target", "url": "https://example.com/hook", "event_types": ["alert.*"]}))
        .await;
    let id = webhook["id"].as_str().unwrap().to_string();
    app.publish("alert.created", json!({"n": 1}), Some("malformed-1")).await;
    let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let long = "x".repeat(3000);
    let candidates: Vec<(&str, Vec<String>)> = vec![
        ("id", vec![id.clone(), "not-a-uuid".into(), "%ff%fe".into(), long.clone()]),
        ("attempt_id", vec!["00000000-0000-0000-0000-000000000000".into(), "-1".into(), "%ff".into()]),
        ("event_ref", vec!["malformed-1".into(), "%00".into(), "%ff".into(), long.clone()]),
        ("name", vec!["alert.created".into(), "custom.malformed".into(), "NO%20SUCH".into(), "%ff".into(), long]),
    ];

    let mut sent = 0usize;
    let mut statuses = std::collections::BTreeMap::new();
    let mut wrong = Vec::new();
    let mut check = |method: &Method, url: &str, what: &str, status: StatusCode, body: &str| {
        sent += 1;
        *statuses.entry(status.as_u16()).or_insert(0usize) += 1;
        let json_error = serde_json::from_str::<Value>(body).is_ok_and(|v| v["error"]["message"].is_string());
        if status.is_server_error() || (status.is_client_error() && !json_error) {
            wrong.push(format!(
                "{method} {} ({what}): {status} {}",
                &url[..url.len().min(150)],
                &body[..body.len().min(200)]
            ));
        }
    };
    let paths = doc["paths"].as_object().expect("the document lists its paths");
    assert!(paths.len() >= 20, "{} paths", paths.len());
    // Deletes last: the webhook the others address by its real id is gone after them.
    let mut operations: Vec<(Method, &String, &Value)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .filter_map(move |(m, op)| Some((m.to_uppercase().parse::<Method>().ok()?, path, op)))
        })
        .collect();
    operations.sort_by_key(|(m, _, _)| *m == Method::DELETE);
    for (method, path, op) in operations {
        for concrete in expand(path, &candidates) {
            let url = app.url(&format!("/api/v1{concrete}"));
            let send = |query: &str, body: Option<(Vec<u8>, &str)>| {
                let mut req = app.client.request(method.clone(), format!("{url}{query}")).bearer_auth(ADMIN_TOKEN);
                if let Some((bytes, content_type)) = body {
                    req = req.header("content-type", content_type).body(bytes);
                }
                async move {
                    let resp = req.send().await.expect("the server answers");
                    let status = resp.status();
                    (status, resp.text().await.unwrap_or_default())
                }
            };
            if method == Method::GET || method == Method::DELETE {
                for query in QUERIES {
                    let (status, body) = send(query, None).await;
                    check(&method, &format!("{url}{query}"), "query", status, &body);
                }
                continue;
            }
            for raw in raw_bodies() {
                let what = format!("body {:?}", String::from_utf8_lossy(&raw[..raw.len().min(12)]));
                let (status, body) = send("", Some((raw, "application/json"))).await;
                check(&method, &url, &what, status, &body);
            }
            let (status, body) = send("", Some((b"{}".to_vec(), "text/plain"))).await;
            check(&method, &url, "text/plain", status, &body);
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            for property in properties(&doc, schema, 0) {
                for value in wrong_values() {
                    let bytes = serde_json::to_vec(&json!({ &property: value })).unwrap();
                    let (status, body) = send("", Some((bytes, "application/json"))).await;
                    check(&method, &url, &format!("{property} = {:.40}", value.to_string()), status, &body);
                }
            }
        }
    }
    eprintln!("{sent} malformed requests, {} answered wrongly; by status: {statuses:?}", wrong.len());
    assert!(sent > 1000, "only {sent} requests: the document's routes were not all reached");
    // Every method was taken from the document: a 405 would mean the document is wrong.
    assert!(!statuses.contains_key(&405), "{statuses:?}");
    assert!(wrong.is_empty(), "{} of {sent} answered wrongly:\n{}", wrong.len(), wrong.join("\n"));
}
