//! Query plans that do not depend on luck: on a fresh PostgreSQL database (never analyzed, the
//! planner guessing every table's size), a single-event load must not scan `events`,
//! `deliveries` or `attempts` sequentially; those tables grow with history.

use std::time::Duration;

use serde_json::json;
use tocsin::store::DatabaseUrl;

use crate::helpers::{Backend, TestApp};
use crate::pg_only;
use crate::receiver::{Receiver, Reply};

pg_only! {
    async fn single_event_publishes_scan_no_growing_table_on_a_fresh_database() {
        let app = TestApp::delivering(Backend::Postgres, never_open_the_circuit).await;
        let rx = failing_some_first_attempts().await;
        app.create_webhook(webhook(&rx)).await;
        add_history(&app).await;
        let scans = load_then_scans(app, rx, 0, 0).await;
        assert_eq!(scans.len(), 3, "{scans:?}");
        // The load's statistics arrived (else the counts below would prove nothing).
        let events_index_scans = scans.iter().find(|(t, _, _, _)| t == "events").and_then(|(_, _, i, _)| *i).unwrap_or(0);
        assert!(events_index_scans >= EVENTS as i64, "the statistics did not arrive: {scans:?}");
        for (table, seq, idx, _) in &scans {
            // Start-up and the hourly prune may scan once or twice, and the first statements on
            // tiny tables; a scan per publish or per record batch would be hundreds.
            assert!(*seq <= 10, "{table}: {seq} sequential scans for {EVENTS} publishes ({idx:?} index scans)");
        }
    }
}

pg_only! {
    /// Plans made while the tables were tiny, kept as they grow: a prepared statement's plan turns
    /// generic after five runs (the hot writes' at once: `INDEX_PLANS`) and stays until the tables
    /// are next analyzed. Made over a few rows, it
    /// may be a sequential scan, which then reads all of history on every run.
    async fn plans_made_on_tiny_tables_do_not_scan_them_once_grown() {
        const WARM_UP: usize = 150;
        let app = TestApp::delivering(Backend::Postgres, never_open_the_circuit).await;
        let rx = failing_some_first_attempts().await;
        app.create_webhook(webhook(&rx)).await;
        // One at a time: each of the pool's connections runs the publish's and the records'
        // statements more than five times over tables of at most WARM_UP rows.
        for i in 0..WARM_UP {
            publish(&app, json!({"i": i}), &format!("warm-{i}"), i).await;
            rx.wait_for(requests(i + 1), Duration::from_secs(10)).await;
        }
        add_history(&app).await;
        let scans = load_then_scans(app, rx, WARM_UP, requests(WARM_UP)).await;
        let events_index_scans = scans.iter().find(|(t, _, _, _)| t == "events").and_then(|(_, _, i, _)| *i).unwrap_or(0);
        assert!(events_index_scans >= (WARM_UP + EVENTS) as i64, "the statistics did not arrive: {scans:?}");
        for (table, seq, _, read) in &scans {
            // Over tables that held at most WARM_UP rows when the plans were made, then HISTORY more:
            // none (measured: 0 rows); with plans kept from the tiny tables, 113,000 to 398,000.
            let bound = (HISTORY / 2) as i64;
            assert!(*read <= bound, "{table}: {seq} sequential scans read {read} rows (bound {bound})");
        }
    }
}

const EVENTS: usize = 400;
const HISTORY: usize = 20_000;

/// Whether event `i`'s first attempt fails (500): the records of failures and retries, and the
/// retries' claims, run too.
fn fails_first(i: usize) -> bool {
    i % 7 == 3
}

/// The requests the receiver gets for events `0..n`: one each, and one more for each that fails
/// first.
fn requests(n: usize) -> usize {
    n + (0..n).filter(|&i| fails_first(i)).count()
}

/// A receiver that answers 500 to the first attempt of each event [`fails_first`] picks (by the
/// number that ends its event_ref), 200 to everything else.
async fn failing_some_first_attempts() -> Receiver {
    let failed = std::sync::Mutex::new(std::collections::HashSet::new());
    Receiver::with_plan(move |_, req| {
        let event_ref = req.event_ref();
        let i: usize = event_ref.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        if fails_first(i) && failed.lock().unwrap().insert(event_ref) {
            Reply::Status(500)
        } else {
            Reply::Ok
        }
    })
    .await
}

/// The failures stay counted, but never enough to open the circuit and delay the load.
fn never_open_the_circuit(s: &mut tocsin::config::Settings) {
    s.failure_threshold = 1_000_000;
}

/// The one webhook: every event, retried soon.
fn webhook(rx: &Receiver) -> serde_json::Value {
    json!({"name": "one", "url": rx.url(), "event_types": ["*"], "retry_count": 3, "retry_delays_ms": [10, 10, 10]})
}

/// Publishes one event; every other one with an ordering key of its own, so that the path of
/// ordered deliveries (a claim, a record written at once) runs too.
async fn publish(app: &TestApp, data: serde_json::Value, event_ref: &str, i: usize) {
    let mut body = json!({"event": "alert.created", "data": data, "event_ref": event_ref});
    if i % 2 == 1 {
        body["ordering_key"] = json!(format!("key-{i}"));
    }
    let (status, v) = app.post("/api/v1/events", crate::helpers::ADMIN_TOKEN, body).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{v}");
}

/// History, as a database has after some weeks (here: another tenant's), not yet analyzed.
async fn add_history(app: &TestApp) {
    let now = tocsin::domain::time::now_ms();
    app.exec_sql(&format!(
        "INSERT INTO events (id, tenant_id, event_ref, event_type, data, delivery_count, created_at) \
         SELECT 'h-' || i, 'history', 'h-' || i, 'alert.created', '\\x7b7d'::bytea, 1, {now} \
         FROM generate_series(1, {HISTORY}) i; \
         INSERT INTO deliveries (tenant_id, event_id, webhook_id, state, attempts, next_attempt_at, created_at, updated_at) \
         SELECT 'history', 'h-' || i, 'w-history', 'succeeded', 1, {now}, {now}, {now} FROM generate_series(1, {HISTORY}) i; \
         INSERT INTO attempts (id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, format, attempt_no, \
                               success, response_ms, request_headers, dispatched_at, created_at) \
         SELECT 'a-' || i, i, 'history', 'w-history', 'h-' || i, 'alert.created', 'json', 1, 1, 5, '{{}}', {now}, {now} \
         FROM generate_series(1, {HISTORY}) i;"
    ))
    .await;
}

/// Publishes EVENTS single events from 16 concurrent publishers and waits for their deliveries
/// (`before` events were delivered already, in `before_requests` requests); then stops the server and returns each growing table's
/// (name, sequential scans, index scans, rows read by sequential scans) once the load's
/// statistics have arrived.
async fn load_then_scans(
    app: TestApp,
    rx: Receiver,
    before: usize,
    before_requests: usize,
) -> Vec<(String, i64, Option<i64>, i64)> {
    let app = std::sync::Arc::new(app);
    let mut publishers = Vec::new();
    for p in 0..16 {
        let app = app.clone();
        publishers.push(tokio::spawn(async move {
            for i in (p..EVENTS).step_by(16) {
                publish(&app, json!({"severity": "high", "i": i}), &format!("plan-{i}"), i).await;
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    rx.wait_for(before_requests + requests(EVENTS), Duration::from_secs(60)).await;
    let app = std::sync::Arc::try_unwrap(app).ok().expect("publishers are done");
    let DatabaseUrl::Postgres(url) = app.settings.database.clone() else { unreachable!() };
    // The server's connections flush their statistics as they close.
    let _database = app.stop_keeping_database().await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut scans: Vec<(String, i64, Option<i64>, i64)> = Vec::new();
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rows = client
            .query(
                "SELECT relname::text, seq_scan, idx_scan, seq_tup_read FROM pg_stat_user_tables \
                 WHERE relname IN ('events', 'deliveries', 'attempts') ORDER BY relname",
                &[],
            )
            .await
            .unwrap();
        scans = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, Option<i64>>(2), r.get::<_, i64>(3)))
            .collect();
        // Wait until the statistics of the load have arrived (an index scan per publish at least).
        if scans.iter().find(|(t, _, _, _)| t == "events").and_then(|(_, _, i, _)| *i).unwrap_or(0)
            >= (before + EVENTS) as i64
        {
            break;
        }
    }
    scans
}
