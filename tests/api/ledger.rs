//! The tamper-evident log, end to end on both stores: configuration changes and deliveries make
//! the audit and attempts chains; the real `tocsin verify-log` passes on them and names the first
//! entry changed, removed or cut behind a forged checkpoint directly in the database; the export
//! verifies with the README's own script; retention keeps the rest verifiable; two servers on one
//! PostgreSQL database extend one chain.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tocsin::store::DatabaseUrl;

use crate::both_backends;
use crate::helpers::{run_tocsin, Backend, TestApp, ADMIN_TOKEN};
use crate::pg_only;
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(15);

/// `tocsin verify-log` on the app's store: (exit code, stdout, stderr).
fn verify_log(app: &TestApp) -> (i32, String, String) {
    let dir = app.dir.path().display().to_string();
    let mut args = vec!["verify-log".to_string(), "--data-dir".to_string(), dir];
    if let DatabaseUrl::Postgres(url) = &app.settings.database {
        args.extend(["--database".to_string(), url.clone()]);
    }
    run_tocsin(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The README's script that checks an export, as printed there.
fn readme_script() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme.split("<!-- verify-export -->").nth(1).expect("the README marks its export script");
    let body = after.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
    assert!(body.lines().count() <= 12, "the script stays short: {body}");
    body.to_string()
}

/// Runs the README's script on an export: Some(passed) (None: no Python here).
fn script_passes(export: &str) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let (script, file) = (dir.path().join("verify.py"), dir.path().join("audit-log.ndjson"));
    std::fs::write(&script, readme_script()).unwrap();
    std::fs::write(&file, export).unwrap();
    match Command::new("python3").arg(&script).arg(&file).output() {
        Ok(out) => Some(out.status.success()),
        Err(e) => {
            assert!(std::env::var_os("TOCSIN_REQUIRE_SNIPPETS").is_none(), "python3 is required: {e}");
            None
        }
    }
}

async fn export(app: &TestApp) -> String {
    let r = app.client.get(app.url("/api/v1/audit-log/export")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    r.text().await.unwrap()
}

both_backends!(chains_verify_and_tampering_is_named, chains_on);
async fn chains_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    // A receiver that fails every third request: failed and successful attempts alike.
    let rx = Receiver::with_plan(|n, _| if n % 3 == 0 { Reply::Status(500) } else { Reply::Ok }).await;
    let hook = app.create_webhook(json!({"name": "soc", "url": rx.url(), "event_types": ["alert.*"]})).await;
    let id = hook["id"].as_str().unwrap().to_string();
    let (s, _) = app.patch(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN, json!({"description": "SOC"})).await;
    assert_eq!(s, StatusCode::OK);
    let doomed = app.create_webhook(json!({"name": "old", "url": rx.url(), "event_types": ["alert.*"]})).await;
    for i in 0..6 {
        app.publish(
            "alert.created",
            json!({"title": format!("port {i}"), "severity": "high"}),
            Some(&format!("e-{i}")),
        )
        .await;
    }
    let delivered =
        |v: &Value| v["data"].as_array().is_some_and(|d| d.iter().filter(|a| a["success"] == true).count() >= 12);
    app.poll("/api/v1/deliveries", WAIT, delivered).await;
    // Deleting a webhook keeps its attempts: they are links of the chain.
    let doomed = format!("/api/v1/webhooks/{}", doomed["id"].as_str().unwrap());
    let (s, _) = app.call(reqwest::Method::DELETE, &doomed, Some(ADMIN_TOKEN), None).await;
    assert!(s.is_success(), "{s}");

    let (code, out, err) = verify_log(&app);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok: audit chain of tenant default: 4 entries from 1"), "{out}");
    assert!(out.contains("ok: attempts chain of tenant default:"), "{out}");
    assert!(out.contains("verified: 2 chains"), "{out}");

    // The export verifies offline with the README's script, and a changed line does not.
    let exported = export(&app).await;
    let lines: Vec<Value> = exported.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{exported}");
    assert_eq!(lines[0]["entry"]["action"], "webhook.create");
    assert_eq!(lines[0]["prev_hash"], "0".repeat(64));
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    if let Some(passed) = script_passes(&exported) {
        assert!(passed, "the README's script verifies an export");
        assert!(!script_passes(&exported.replacen("webhook.update", "webhook.read", 1)).unwrap());
    }

    // An audit entry changed in the database: verify-log names it, and the export no longer verifies.
    app.exec_sql("UPDATE audit_log SET actor = 'cli' WHERE chain_seq = 2").await;
    let (code, out, err) = verify_log(&app);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("TAMPERED: audit chain of tenant default: entry 2 (id ")
            && err.contains("its hash does not match its content"),
        "{err}"
    );
    if let Some(passed) = script_passes(&export(&app).await) {
        assert!(!passed, "an export of a changed log does not verify");
    }
    let actor = lines[1]["entry"]["actor"].as_str().unwrap();
    app.exec_sql(&format!("UPDATE audit_log SET actor = '{actor}' WHERE chain_seq = 2")).await;
    assert_eq!(verify_log(&app).0, 0, "restored, it verifies again");

    // An attempt whose status was changed; attempts removed from the start.
    app.exec_sql("UPDATE attempts SET http_status = 299 WHERE tenant_id = 'default' AND chain_seq = 1").await;
    let (code, _, err) = verify_log(&app);
    assert_eq!(code, 1);
    assert!(err.contains("attempts chain of tenant default: entry 1 (id "), "{err}");
    app.exec_sql("DELETE FROM attempts WHERE tenant_id = 'default' AND chain_seq <= 3").await;
    let (code, _, err) = verify_log(&app);
    assert_eq!(code, 1);
    assert!(err.contains("attempts chain of tenant default: entry 1: missing"), "{err}");
    // The last audit entry removed: the head says there was one more.
    app.exec_sql("DELETE FROM audit_log WHERE chain_seq = 4").await;
    let (_, _, err) = verify_log(&app);
    assert!(err.contains("audit chain of tenant default: entry 4: missing: the chain's head is entry 4"), "{err}");
    // The head wound back to match what is left: its signature gives it away.
    app.exec_sql(
        "UPDATE chain_heads SET seq = 3, hash = (SELECT hash FROM audit_log WHERE tenant_id = 'default' AND chain_seq = 3) \
         WHERE chain = 'audit' AND tenant_id = 'default'",
    )
    .await;
    let (code, _, err) = verify_log(&app);
    assert_eq!(code, 1);
    assert!(err.contains("audit chain of tenant default: entry 3: the chain's head is not signed"), "{err}");
}

both_backends!(retention_keeps_the_chain_verifiable, retention_on);
async fn retention_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    let rx = Receiver::start().await;
    app.create_webhook(json!({"name": "soc", "url": rx.url(), "event_types": ["alert.*"]})).await;
    for i in 0..3 {
        app.publish("alert.created", json!({"title": "t", "severity": "low"}), Some(&format!("old-{i}"))).await;
    }
    rx.wait_for(3, WAIT).await;
    let state = &app.app_state;
    app.poll("/api/v1/deliveries", WAIT, |v| v["data"].as_array().is_some_and(|d| d.len() == 3)).await;
    let cut = tocsin::domain::time::now_ms() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    for i in 0..2 {
        app.publish("alert.created", json!({"title": "t", "severity": "low"}), Some(&format!("new-{i}"))).await;
    }
    rx.wait_for(5, WAIT).await;
    app.poll("/api/v1/deliveries", WAIT, |v| v["data"].as_array().is_some_and(|d| d.len() == 5)).await;
    // Those made before `cut` are pruned.
    let pruned = state.store.prune(cut, &state.cipher).await.unwrap();
    assert_eq!(pruned, 3);
    let report = state.store.verify_chains(&state.cipher).await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    let attempts = report.chains.iter().find(|c| c.chain == tocsin::store::chain::Chain::Attempts).unwrap();
    assert_eq!((attempts.first_seq, attempts.entries, attempts.head.seq), (4, 2, 5));
    let (code, out, err) = verify_log(&app);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("attempts chain of tenant default: 2 entries from 4"), "{out}");
    // A checkpoint moved by someone without the master key does not verify.
    app.exec_sql("UPDATE chain_checkpoints SET seq = 4 WHERE chain = 'attempts'").await;
    let (code, _, err) = verify_log(&app);
    assert_eq!(code, 1);
    assert!(err.contains("signature is not the master key's"), "{err}");
}

/// `verify-log` and `backup` take the store as it is: a store a migration behind is neither
/// upgraded under its server nor verified as if it were current.
#[tokio::test]
async fn reading_commands_never_migrate_the_store() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.exec_sql("DELETE FROM schema_migrations WHERE version = 13").await;
    let (code, _, err) = verify_log(&app);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("older than this binary") && err.contains("[13]"), "{err}");
    let copy = app.dir.path().join("copy.db");
    let dir = app.dir.path().display().to_string();
    let (code, out, err) = run_tocsin(&["backup", "--to", &copy.display().to_string(), "--data-dir", &dir]);
    assert_eq!(code, 0, "{out}{err}");
    let DatabaseUrl::Sqlite(live) = &app.settings.database else { panic!("SQLite") };
    for db in [live, &copy] {
        let conn = rusqlite::Connection::open(db).unwrap();
        let n: i64 =
            conn.query_row("SELECT COUNT(*) FROM schema_migrations WHERE version = 13", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "{} was not migrated", db.display());
    }
}

pg_only! {
    /// Two servers on one PostgreSQL database record the attempts of one tenant, each its own
    /// deliveries, into the same chain at once: it stays one unbroken chain (each server locks its
    /// head, and creates it only while it has not seen it).
    async fn two_servers_extend_one_chain() {
        let first = TestApp::delivering(Backend::Postgres, |_| {}).await;
        // The same settings: the same database and data directory (the master key signs the heads).
        let second = TestApp::start(first.settings.clone(), tempfile::tempdir().unwrap()).await;
        let rx = Receiver::start().await;
        first.create_webhook(json!({"name": "soc", "url": rx.url(), "event_types": ["alert.*"]})).await;
        let events = 24;
        let refs: Vec<String> = (0..events).map(|i| format!("e-{i}")).collect();
        let publishes = refs.iter().enumerate().map(|(i, r)| {
            let app = if i % 2 == 0 { &first } else { &second };
            app.publish("alert.created", json!({"title": r, "severity": "high"}), Some(r))
        });
        futures_util::future::join_all(publishes).await;
        rx.wait_for(events, WAIT).await;
        let recorded = |v: &Value| {
            v["data"].as_array().is_some_and(|d| d.iter().filter(|a| a["success"] == true).count() >= events)
        };
        first.poll("/api/v1/deliveries?limit=100", WAIT, recorded).await;

        let (code, out, err) = verify_log(&first);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("ok: attempts chain of tenant default: {events} entries from 1")), "{out}");
        drop(second);
    }
}

pg_only! {
    /// PostgreSQL: a chained insert that writes fewer rows than it links fails its transaction,
    /// though `COMMIT` went with the statements (the heads' write-back counts the chain's new
    /// entries in the same statement): nothing is written and the head stays where it was.
    async fn a_chained_insert_short_of_its_rows_commits_nothing() {
        use tocsin::store::chain::Chain;
        use tocsin::store::postgres::PgBackend;
        use tocsin::store::sql::Stmt;
        use tocsin::store::Backend as _;
        let db = crate::helpers::TestDatabase::create().await;
        let store = PgBackend::connect(&db.url).await.unwrap();
        store.migrate(tocsin::store::migrations::postgres()).await.unwrap();
        let entry = |sql: &'static str, n: i64| {
            let params = tocsin::params!["default", "test", "check", format!("entry {n}"), "{}", n, None::<i64>, None::<String>, None::<String>];
            Stmt::chained_row(sql, params, Chain::Audit, [6, 7, 8])
        };
        const INSERT: &str = "INSERT INTO audit_log (tenant_id, actor, action, target, details, at, chain_seq, prev_hash, hash) \
                              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        const INSERTS_NOTHING: &str = "INSERT INTO audit_log (tenant_id, actor, action, target, details, at, chain_seq, prev_hash, hash) \
                                       SELECT * FROM (VALUES ($1, $2, $3, $4, $5, CAST($6 AS BIGINT), \
                                       CAST($7 AS BIGINT), $8, $9)) AS v WHERE false";
        store.write(vec![entry(INSERT, 1)]).await.unwrap();
        let err = store.write(vec![entry(INSERT, 2), entry(INSERTS_NOTHING, 3)]).await.unwrap_err();
        assert!(err.to_string().contains("a chained insert wrote fewer rows than it linked"), "{err}");
        let rows = store.query("SELECT COUNT(*) AS n FROM audit_log", Vec::new()).await.unwrap();
        assert_eq!(rows[0].int("n").unwrap(), 1, "the entry beside the short insert was rolled back");
        let head = store
            .query("SELECT seq FROM chain_heads WHERE chain = 'audit' AND tenant_id = 'default'", Vec::new())
            .await
            .unwrap();
        assert_eq!(head[0].int("seq").unwrap(), 1);
        // The chain goes on from there.
        store.write(vec![entry(INSERT, 4)]).await.unwrap();
        let rows = store.query("SELECT MAX(chain_seq) AS n FROM audit_log", Vec::new()).await.unwrap();
        assert_eq!(rows[0].int("n").unwrap(), 2);
    }
}
