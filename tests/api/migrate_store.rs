//! `tocsin migrate-store`: a populated SQLite store moved into an empty PostgreSQL database by
//! the real binary; `tocsin serve` on PostgreSQL then lists the same webhooks, shows the history,
//! delivers the delivery that was still pending, signed with the secret made before the move,
//! and its chains verify.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tocsin::store::DatabaseUrl;

use crate::helpers::{run_tocsin as tocsin, Backend, TestApp, TestDatabase, ADMIN_TOKEN};
use crate::pg_only;
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(20);

pg_only! {
    async fn a_sqlite_store_moves_to_postgresql_and_goes_on() {
        // The receiver fails the first try of "still-pending": its delivery waits for a retry.
        let failed_once = Arc::new(AtomicBool::new(false));
        let flag = failed_once.clone();
        let rx = Receiver::with_plan(move |_, r| {
            if r.event_ref() == "still-pending" && !flag.swap(true, Ordering::SeqCst) {
                Reply::Status(500)
            } else {
                Reply::Ok
            }
        })
        .await;
        let mut app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
        let hook = app
            .create_webhook(json!({"name": "soc", "url": rx.url(), "event_types": ["alert.*"], "retry_delays_ms": [3000]}))
            .await;
        let secret = hook["secret"].as_str().unwrap().to_string();
        let id = hook["id"].as_str().unwrap().to_string();
        for i in 0..3 {
            app.publish(
                "alert.created",
                json!({"title": format!("old {i}"), "severity": "high"}),
                Some(&format!("old-{i}")),
            )
            .await;
        }
        rx.wait_for(3, WAIT).await;
        app.publish("alert.created", json!({"title": "late", "severity": "high"}), Some("still-pending")).await;
        rx.wait_until(WAIT, "the failed first try", |got| got.iter().any(|r| r.event_ref() == "still-pending")).await;
        app.poll("/api/v1/deliveries", WAIT, |v| v["data"].as_array().is_some_and(|d| d.len() == 4)).await;
        app.shutdown().await;

        let db = TestDatabase::create().await;
        let DatabaseUrl::Sqlite(path) = &app.settings.database else { panic!("a SQLite app") };
        let from = format!("sqlite://{}", path.display());
        let (code, out, err) = tocsin(&["migrate-store", "--from", &from, "--to", &db.url]);
        assert_eq!(code, 0, "{out}{err}");
        for line in ["webhooks: 1 rows", "events: 4 rows", "attempts: 4 rows", "copied "] {
            assert!(out.contains(line), "{line} in {out}");
        }
        // Never into a database that already has data.
        let (code, _, err) = tocsin(&["migrate-store", "--from", &from, "--to", &db.url]);
        assert_eq!(code, 2);
        assert!(err.contains("not empty"), "{err}");

        // `serve` on PostgreSQL with the same data directory (the master key) goes on.
        let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
        let mut settings = app.settings.clone();
        settings.database = DatabaseUrl::Postgres(db.url.clone());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        let moved = TestApp::start(settings, dir).await;
        let (s, list) = moved.get("/api/v1/webhooks", ADMIN_TOKEN).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["data"][0]["id"], id.as_str(), "{list}");
        let (_, history) = moved.get(&format!("/api/v1/webhooks/{id}/deliveries"), ADMIN_TOKEN).await;
        assert!(history["data"].as_array().unwrap().len() >= 4, "{history}");
        // The pending delivery is delivered from PostgreSQL, signed with the secret made before.
        let got = rx
            .wait_until(WAIT, "the retry after the move", |got| {
                got.iter().filter(|r| r.event_ref() == "still-pending").count() >= 2
            })
            .await;
        let retried = got.iter().filter(|r| r.event_ref() == "still-pending").nth(1).unwrap();
        let wh = standardwebhooks::Webhook::new(&secret).unwrap();
        assert!(wh.verify(&retried.body, &retried.headers).is_ok(), "signed with the secret from before the move");
        moved
            .poll("/api/v1/events/still-pending", WAIT, |v| {
                v["deliveries"].as_array().is_some_and(|d| d.iter().any(|x| x["state"] == "succeeded"))
            })
            .await;
        // The chains came along whole.
        let (code, out, err) =
            tocsin(&["verify-log", "--data-dir", &moved.dir.path().display().to_string(), "--database", &db.url]);
        assert_eq!(code, 0, "{out}{err}");
        drop(moved);
        drop(db);
    }
}

pg_only! {
    /// A copy that fails part way keeps nothing in the target: the same command, run again once
    /// the cause is mended, copies everything (a half-filled target would refuse it as not empty).
    async fn a_failed_copy_leaves_the_target_empty() {
        let mut app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
        let rx = Receiver::start().await;
        app.create_webhook(json!({"name": "soc", "url": rx.url(), "event_types": ["alert.*"]})).await;
        app.publish("alert.created", json!({"title": "one", "severity": "high"}), Some("one")).await;
        rx.wait_for(1, WAIT).await;
        app.shutdown().await;
        let DatabaseUrl::Sqlite(path) = &app.settings.database else { panic!("a SQLite app") };
        // `webhooks` is copied last (tables go in name order): a value PostgreSQL refuses there
        // fails the copy after the events, deliveries and attempts went in.
        let source = rusqlite::Connection::open(path).unwrap();
        source.execute("UPDATE webhooks SET retry_count = 'many'", []).unwrap();

        let db = TestDatabase::create().await;
        let from = format!("sqlite://{}", path.display());
        let (code, out, err) = tocsin(&["migrate-store", "--from", &from, "--to", &db.url]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("the copy failed") && err.contains("nothing was kept"), "{err}");
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        for table in ["events", "deliveries", "attempts", "api_tokens", "webhooks", "chain_heads"] {
            let n: i64 = client.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[]).await.unwrap().get(0);
            assert_eq!(n, 0, "{table} emptied again");
        }

        source.execute("UPDATE webhooks SET retry_count = 5", []).unwrap();
        drop(source);
        let (code, out, err) = tocsin(&["migrate-store", "--from", &from, "--to", &db.url]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("events: 1 rows") && out.contains("webhooks: 1 rows"), "{out}");
        let seq: i64 = client.query_one("SELECT nextval(pg_get_serial_sequence('deliveries', 'seq'))", &[]).await.unwrap().get(0);
        assert!(seq >= 2, "the identity goes on after the copied delivery: {seq}");
        drop(client);
        drop(db);
    }
}
