//! `GET /metrics` scraped by a real Prometheus (Debian's `prometheus`): the real `tocsin serve`
//! delivers events to a receiver on 127.0.0.1, Prometheus scrapes it with the metrics token, and
//! PromQL answers the counts the test made.

#![allow(clippy::let_underscore_must_use)] // tests: no untrusted input reaches them

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN: &str = "tsn_metrics_test_admin_token_0123456789";
const METRICS_TOKEN: &str = "metrics-scrape-token-0123456789";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_deliveries_it_was_told_of() {
    if Command::new("prometheus").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "prometheus is required in CI (.ci/run installs it)");
        eprintln!("skipped: prometheus is not installed");
        return;
    }
    // A receiver that answers 200 and counts.
    let received = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let counter = received.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_tocsin"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOCSIN_") {
            serve.env_remove(k);
        }
    }
    let _server = Killed(
        serve
            .arg("serve")
            .env("TOCSIN_DATA_DIR", dir.path())
            .env("TOCSIN_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOCSIN_ADMIN_TOKEN", ADMIN)
            .env("TOCSIN_METRICS_TOKEN", METRICS_TOKEN)
            .env("TOCSIN_ALLOW_DESTINATIONS", "127.0.0.0/8")
            .env("TOCSIN_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    wait_until("tocsin serve", Duration::from_secs(20), || {
        let r = http.get(format!("{base}/healthz")).send();
        async move { r.await.is_ok() }
    })
    .await;

    let created = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "siem", "url": receiver, "event_types": ["alert.*"]}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());
    const EVENTS: usize = 7;
    for i in 0..EVENTS {
        let r = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(ADMIN)
            .json(&json!({"event": "alert.created", "event_ref": format!("m-{i}"), "data": {"title": "t", "severity": "high"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    // An event of a type that does not exist is refused, and counted so.
    let refused = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&json!({"event": "no.such.type", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    wait_until("the deliveries", Duration::from_secs(20), || {
        let n = received.load(Ordering::SeqCst);
        async move { n >= EVENTS }
    })
    .await;

    // The endpoint itself: the token is required, and the text says what happened.
    let anonymous = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let metrics = || async { http.get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap() };
    // The receiver counted each request as it came; a delivery is counted once its answer is
    // read, a moment later.
    let succeeded = "tocsin_deliveries_total{outcome=\"succeeded\",format=\"json\"} 7";
    wait_until("the deliveries' count", Duration::from_secs(20), || async {
        metrics().await.text().await.unwrap().contains(succeeded)
    })
    .await;
    let text = metrics().await.text().await.unwrap();
    assert!(text.contains(succeeded), "{text}");
    assert!(!text.contains("m-0") && !text.contains("127.0.0.1"), "no event_ref, no URL in labels");

    // A real Prometheus scrapes it every second, with the token.
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tocsin\n    scrape_interval: 1s\n    \
             authorization:\n      credentials: {METRICS_TOKEN}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query");
        let request = http.get(url).query(&[("query", q)]).send();
        async move {
            let answer: Value = request.await.ok()?.json().await.ok()?;
            answer["data"]["result"][0]["value"][1].as_str().map(String::from)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let succeeded = loop {
        if let Some(v) = query("sum(tocsin_deliveries_total{outcome=\"succeeded\"})").await {
            break v;
        }
        assert!(Instant::now() < deadline, "Prometheus never had the deliveries");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(succeeded, EVENTS.to_string(), "PromQL counts the deliveries made");
    assert_eq!(query("tocsin_events_accepted_total").await.as_deref(), Some("7"));
    assert_eq!(query("sum(tocsin_events_rejected_total)").await.as_deref(), Some("1"));
    assert_eq!(query("sum(tocsin_webhook_circuit_open)").await.as_deref(), Some("0"));
    assert_eq!(query("tocsin_deliveries_waiting{state=\"pending\"}").await.as_deref(), Some("0"));
    assert_eq!(
        query("sum(tocsin_http_requests_total{route=\"/api/v1/events\",status=\"202\"})").await.as_deref(),
        Some("7")
    );
    assert_eq!(query("up{job=\"tocsin\"}").await.as_deref(), Some("1"));
}
