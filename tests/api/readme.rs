//! The README's quick start works as copied: its API calls (the JSON bodies of its `curl -d '…'`
//! lines, to the paths they name) are answered as it says, against a real server.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, ADMIN_TOKEN};

/// The (path, body) of each `curl … -d '{…}' … http://127.0.0.1:8080/api/v1/…` in the Quick start.
fn quick_start_calls() -> Vec<(String, Value)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("## Quick start").expect("a Quick start section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut calls = Vec::new();
    let mut body: Option<Value> = None;
    for line in section.lines() {
        if let Some(i) = line.find("-d '") {
            let rest = &line[i + 4..];
            let json = &rest[..rest.rfind('\'').expect("a closing quote")];
            body = Some(serde_json::from_str(json).unwrap_or_else(|e| panic!("README JSON {json}: {e}")));
        }
        if let (Some(i), Some(b)) = (line.find("http://127.0.0.1:8080"), body.as_ref()) {
            let path = line[i + "http://127.0.0.1:8080".len()..].trim().to_string();
            calls.push((path, b.clone()));
            body = None;
        }
    }
    calls
}

#[tokio::test]
async fn the_quick_start_works_as_copied() {
    let calls = quick_start_calls();
    assert!(calls.iter().any(|(p, _)| p == "/api/v1/webhooks"), "{calls:?}");
    let publish = calls.iter().find(|(p, _)| p == "/api/v1/events").expect("a publish in the quick start");
    assert!(publish.1.get("event_ref").is_some(), "the example shows an event_ref");
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (path, body) in &calls {
        let (status, answer) = app.post(path, ADMIN_TOKEN, body.clone()).await;
        assert!(matches!(status, StatusCode::CREATED | StatusCode::ACCEPTED), "{path}: {status} {answer}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for needle in ["cargo install --path .", "target/release/tocsin", "http://127.0.0.1:8080/", "--data-dir"] {
        assert!(readme[..readme.find("## Running on PostgreSQL").unwrap()].contains(needle), "quick start: {needle}");
    }
}
