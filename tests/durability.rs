//! Crash safety of the real binary: publish 1000 events, `kill -9` the process mid-delivery,
//! restart it, and check that every event reaches the receiver at least once (duplicates are
//! counted and reported). On PostgreSQL: two processes share one database and one is killed.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

#[path = "api/receiver.rs"]
#[allow(dead_code)]
mod receiver;

#[path = "support/pg.rs"]
mod pg;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use receiver::{Receiver, Reply};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");
const ADMIN: &str = "tsn_durability_admin_token_0123456789";
const EVENTS: usize = 1000;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start(data_dir: &std::path::Path, database: Option<&str>, master_key: &str) -> Server {
    start_with(data_dir, database, master_key, &[]).await
}

async fn start_with(
    data_dir: &std::path::Path,
    database: Option<&str>,
    master_key: &str,
    env: &[(&str, &str)],
) -> Server {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env("TOCSIN_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOCSIN_DATA_DIR", data_dir)
        .env("TOCSIN_ADMIN_TOKEN", ADMIN)
        .env("TOCSIN_MASTER_KEY", master_key)
        .env("TOCSIN_ALLOW_DESTINATIONS", "127.0.0.0/8")
        .env("TOCSIN_LEASE_MARGIN_SECS", "1")
        .env("TOCSIN_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(db) = database {
        cmd.env("TOCSIN_DATABASE_URL", db);
    }
    let child = cmd.spawn().unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "tocsin serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kill9(server: &mut Server) {
    let status = Command::new("kill").args(["-9", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let _ = server.child.wait();
}

async fn create_webhook(port: u16, url: &str) {
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/webhooks"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "sink", "url": url, "event_types": ["alert.*"], "timeout_ms": 1000,
                      "retry_delays_ms": [0, 100]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

async fn publish_all(port: u16) {
    let client = reqwest::Client::new();
    for chunk in 0..EVENTS / 100 {
        let events: Vec<_> = (chunk * 100..(chunk + 1) * 100)
            .map(|i| json!({"event": "alert.created", "event_ref": format!("e-{i}"), "data": {"i": i}}))
            .collect();
        let resp = client
            .post(format!("http://127.0.0.1:{port}/api/v1/events/batch"))
            .bearer_auth(ADMIN)
            .json(&json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["accepted"], 100, "{body}");
    }
}

/// Waits until every event_ref arrived; returns how many arrived more than once.
async fn all_arrive(rx: &Receiver) -> usize {
    let got = rx
        .wait_until(Duration::from_secs(120), "every event", |r| {
            let mut seen = std::collections::HashSet::new();
            r.iter().for_each(|x| {
                seen.insert(x.event_ref());
            });
            seen.len() >= EVENTS
        })
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(r.event_ref()).or_default() += 1;
    }
    for i in 0..EVENTS {
        assert!(counts.contains_key(&format!("e-{i}")), "e-{i} never arrived");
    }
    counts.values().filter(|c| **c > 1).count()
}

/// A slow receiver so that deliveries are still in flight when the process is killed: past
/// the first [`KILL_AFTER`] requests it answers ten times slower, so that the rest take seconds
/// and a pause of the test before its kill cannot let them all through. [`quicken`] undoes it.
async fn slow_receiver() -> Receiver {
    Receiver::with_plan(|n, _| Reply::Hang(Duration::from_millis(if n < KILL_AFTER + 50 { 20 } else { 200 }))).await
}

/// The kill comes once this many requests arrived.
const KILL_AFTER: usize = 100;

fn quicken(rx: &Receiver) {
    rx.set_plan(|_, _| Reply::Hang(Duration::from_millis(20)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = "a".repeat(64);
    let rx = slow_receiver().await;
    // The default lease margin (30 s): the restart must not wait it out.
    let margin = [("TOCSIN_LEASE_MARGIN_SECS", "30")];
    let mut server = start_with(dir.path(), None, &key, &margin).await;
    create_webhook(server.port, &rx.url()).await;
    publish_all(server.port).await;
    rx.wait_for(KILL_AFTER, Duration::from_secs(60)).await;
    kill9(&mut server);
    let before = rx.received().len();
    quicken(&rx);
    assert!(before < EVENTS, "the kill came mid-delivery ({before} delivered)");
    let restarted = Instant::now();
    let _server = start_with(dir.path(), None, &key, &margin).await;
    let duplicates = all_arrive(&rx).await;
    let took = restarted.elapsed();
    eprintln!("sqlite: killed after {before} deliveries; all {EVENTS} arrived {took:?} after the restart; {duplicates} duplicates");
    // One process owns a SQLite file: the leases of the killed one are released at start-up,
    // not after their 30 s margin.
    assert!(took < Duration::from_secs(20), "the deliveries leased at the kill waited {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
async fn postgres_two_processes_one_killed_loses_nothing() {
    if pg::pg_server_url().is_none() {
        eprintln!("skipped: TOCSIN_TEST_DATABASE_URL is not set");
        return;
    }
    let database = pg::TestDatabase::create().await;
    let url = database.url.clone();

    let key = "b".repeat(64);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rx = slow_receiver().await;
    // The default lease margin (30 s): the survivor must not wait it out.
    let margin = [("TOCSIN_LEASE_MARGIN_SECS", "30")];
    let mut a = start_with(dir_a.path(), Some(&url), &key, &margin).await;
    let _b = start_with(dir_b.path(), Some(&url), &key, &margin).await;
    create_webhook(a.port, &rx.url()).await;
    publish_all(a.port).await;
    rx.wait_for(KILL_AFTER, Duration::from_secs(60)).await;
    kill9(&mut a);
    let killed = Instant::now();
    let before = rx.received().len();
    quicken(&rx);
    assert!(before < EVENTS, "the kill came mid-delivery ({before} delivered)");
    let duplicates = all_arrive(&rx).await;
    let took = killed.elapsed();
    eprintln!("postgres: process A killed after {before} deliveries; B delivered the rest {took:?} after; {duplicates} duplicates");
    // A's heartbeat stops: B takes over its leases within seconds (a heartbeat is stale after
    // 5 s), not after their 30 s margin.
    assert!(took < Duration::from_secs(20), "A's leases waited {took:?}");
    // The servers stop before their database is dropped.
    drop((a, _b));
    drop(database);
}

async fn event_state(port: u16, event_ref: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/events/{event_ref}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["deliveries"][0]["state"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_attempts_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let key = "c".repeat(64);
    let rx = Receiver::with_plan(|_, _| Reply::Hang(Duration::from_millis(800))).await;
    let mut server = start(dir.path(), None, &key).await;
    create_webhook(server.port, &rx.url()).await;
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/events", server.port))
        .bearer_auth(ADMIN)
        .json(&json!({"event": "alert.created", "data": {}, "event_ref": "in-flight"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let arrived = rx.wait_for(1, Duration::from_secs(20)).await[0].at;
    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // The receiver answers 800 ms after the request arrived: the exit came after the answer.
    assert!(arrived.elapsed() >= Duration::from_millis(800), "waited for the attempt in flight");
    // The attempt that was in flight was recorded as a success before exit: nothing is re-sent.
    let server = start(dir.path(), None, &key).await;
    assert_eq!(event_state(server.port, "in-flight").await, "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 1);
}
