//! `tocsin backup` while the server takes a steady stream of publishes: the real binary copies
//! the SQLite store, and a server started on the copy has every event acknowledged before the
//! backup began, its chains intact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{run_tocsin, test_settings, tocsin_binary, Backend, TestApp, ADMIN_TOKEN};

fn tocsin(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let dir = dir.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--data-dir", &dir]);
    run_tocsin(&all)
}

#[tokio::test]
async fn a_backup_under_load_serves_every_acknowledged_event() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for worker in 0..4 {
        let (client, url, acked, stop) =
            (app.client.clone(), app.url("/api/v1/events"), acknowledged.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            let mut n = 0;
            // Bounded: at most 5,000 publishes a worker, and never past the test's end.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5000 {
                let event_ref = format!("load-{worker}-{n}");
                let body = json!({"event": "alert.created", "event_ref": event_ref, "data": {"title": "t", "severity": "low"}});
                let r = client.post(&url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::ACCEPTED);
                acked.lock().unwrap().push(event_ref);
                n += 1;
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let restore = tempfile::tempdir().unwrap();
    let copy = restore.path().join("tocsin.db");
    let (dir, to) = (app.dir.path().to_path_buf(), copy.display().to_string());
    let (code, out, err) = tokio::task::spawn_blocking(move || tocsin(&["backup", "--to", &to], &dir)).await.unwrap();
    let during = acknowledged.lock().unwrap().len();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("backed up") && out.contains("keep the master key with it"), "{out}");
    assert!(during > before.len(), "publishing went on during the backup ({} then {during})", before.len());
    // Never over an existing file.
    let (code, _, err) = tocsin(&["backup", "--to", &copy.display().to_string()], app.dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("exists"), "{err}");

    // Restore: the copy and the master key in a data directory, and a server started on it.
    std::fs::copy(app.dir.path().join("master.key"), restore.path().join("master.key")).unwrap();
    let (code, out, err) = tocsin(&["verify-log"], restore.path());
    assert_eq!(code, 0, "the copy's chains verify: {out}{err}");
    let (settings, _) = test_settings(Backend::Sqlite, restore.path()).await;
    let restored = TestApp::start(settings, restore).await;
    for event_ref in &before {
        let (s, v) = restored.get(&format!("/api/v1/events/{event_ref}"), ADMIN_TOKEN).await;
        assert_eq!(s, StatusCode::OK, "{event_ref} was acknowledged before the backup: {v}");
    }
}

#[test]
fn backup_on_postgresql_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("x.db").display().to_string();
    let out = tocsin_binary()
        .args(["backup", "--to", &to, "--database", "postgres://tocsin@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}
