//! Query plans that do not depend on luck: on a fresh PostgreSQL database (never analyzed, the
//! planner guessing every table's size), a single-event load must not scan `events`,
//! `deliveries` or `attempts` sequentially; those tables grow with history.

use std::time::Duration;

use serde_json::json;
use tocsin::store::DatabaseUrl;

use crate::helpers::{Backend, TestApp};
use crate::receiver::Receiver;

#[tokio::test]
#[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
async fn single_event_publishes_scan_no_growing_table_on_a_fresh_database() {
    if crate::helpers::pg_server_url().is_none() {
        eprintln!("skipped: TOCSIN_TEST_DATABASE_URL is not set");
        return;
    }
    const EVENTS: usize = 400;
    const HISTORY: usize = 20_000;
    let app = TestApp::delivering(Backend::Postgres, |_| {}).await;
    let rx = Receiver::start().await;
    app.create_webhook(json!({"name": "one", "url": rx.url(), "event_types": ["*"]})).await;
    // History, as a database has after some weeks (here: another tenant's), not yet analyzed.
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
    let app = std::sync::Arc::new(app);
    let mut publishers = Vec::new();
    for p in 0..16 {
        let app = app.clone();
        publishers.push(tokio::spawn(async move {
            for i in (p..EVENTS).step_by(16) {
                app.publish("alert.created", json!({"severity": "high", "i": i}), Some(&format!("plan-{i}"))).await;
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    rx.wait_for(EVENTS, Duration::from_secs(60)).await;
    let app = std::sync::Arc::try_unwrap(app).ok().expect("publishers are done");
    let DatabaseUrl::Postgres(url) = app.settings.database.clone() else { unreachable!() };
    // The server's connections flush their statistics as they close.
    let _database = app.stop_keeping_database().await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut scans = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rows = client
            .query(
                "SELECT relname::text, seq_scan, idx_scan FROM pg_stat_user_tables \
                 WHERE relname IN ('events', 'deliveries', 'attempts') ORDER BY relname",
                &[],
            )
            .await
            .unwrap();
        scans = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, Option<i64>>(2))).collect();
        // Wait until the statistics of the load have arrived (an index scan per publish at least).
        if scans.iter().find(|(t, _, _)| t == "events").and_then(|(_, _, i)| *i).unwrap_or(0) >= EVENTS as i64 {
            break;
        }
    }
    assert_eq!(scans.len(), 3, "{scans:?}");
    // The load's statistics arrived (else the counts below would prove nothing).
    let events_index_scans = scans.iter().find(|(t, _, _)| t == "events").and_then(|(_, _, i)| *i).unwrap_or(0);
    assert!(events_index_scans >= EVENTS as i64, "the statistics did not arrive: {scans:?}");
    for (table, seq, idx) in &scans {
        // Start-up and the hourly prune may scan once or twice, and the first statements on
        // tiny tables; a scan per publish or per record batch would be hundreds.
        assert!(*seq <= 10, "{table}: {seq} sequential scans for {EVENTS} publishes ({idx:?} index scans)");
    }
}
