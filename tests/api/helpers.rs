//! A real Tocsin app on 127.0.0.1, on SQLite (a real file in a temp dir) or PostgreSQL (a fresh
//! database on the server named by `TOCSIN_TEST_DATABASE_URL`), driven over HTTP.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tocsin::app::Application;
use tocsin::config::Settings;
use tocsin::domain::tenant::TenantId;
use tocsin::domain::time::now_ms;
use tocsin::domain::token::{PlainToken, Role};
use tocsin::store::DatabaseUrl;
use tocsin::store::TokenRecord;

pub const ADMIN_TOKEN: &str = "tsn_test_admin_token_0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body on both backends; the PostgreSQL run is skipped (with a note) when
/// `TOCSIN_TEST_DATABASE_URL` is not set. `.ci/run` always sets it.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$body($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test]
            #[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
            async fn postgres() {
                if $crate::helpers::pg_server_url().is_none() {
                    eprintln!("skipped: TOCSIN_TEST_DATABASE_URL is not set");
                    return;
                }
                super::$body($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// A test that needs PostgreSQL: ignored unless built with `pg_tests`, and skipped (with a line
/// saying so) when `TOCSIN_TEST_DATABASE_URL` is not set.
#[macro_export]
macro_rules! pg_only {
    ($(#[$doc:meta])* async fn $name:ident() $body:block) => {
        $(#[$doc])*
        #[tokio::test]
        #[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
        async fn $name() {
            if $crate::helpers::pg_server_url().is_none() {
                eprintln!("skipped: TOCSIN_TEST_DATABASE_URL is not set");
                return;
            }
            $body
        }
    };
}

#[path = "../support/pg.rs"]
mod pg;
#[allow(unused_imports)] // not every test crate that includes these helpers runs PostgreSQL
pub use pg::{pg_server_url, TestDatabase};

/// The settings of one test app: fresh storage, a random loopback port, a known admin token.
pub async fn test_settings(backend: Backend, dir: &std::path::Path) -> (Settings, Option<TestDatabase>) {
    let mut s = Settings::for_data_dir(dir).expect("the defaults are valid");
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.admin_token = Some(tocsin::config::Sensitive(ADMIN_TOKEN.to_string()));
    s.log = "warn".into();
    let mut database = None;
    if backend == Backend::Postgres {
        let db = TestDatabase::create().await;
        s.database = DatabaseUrl::Postgres(db.url.clone());
        database = Some(db);
    }
    (s, database)
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub dir: tempfile::TempDir,
    pub app_state: tocsin::service::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL database of this app, dropped with it (last: fields drop in order).
    database: Option<TestDatabase>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// An app that may deliver to loopback receivers, with retries in milliseconds, after `tweak`.
    pub async fn delivering(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with(backend, |s| {
            s.allow_destinations = vec!["127.0.0.0/8".parse().unwrap()];
            s.retry_delays = [0u64, 50, 100, 200].iter().map(|ms| std::time::Duration::from_millis(*ms)).collect();
            tweak(s);
        })
        .await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mut settings, database) = test_settings(backend, dir.path()).await;
        tweak(&mut settings);
        let mut app = Self::start(settings, dir).await;
        app.database = database;
        app
    }

    pub async fn start(settings: Settings, dir: tempfile::TempDir) -> Self {
        let app = Application::build(settings.clone()).await.expect("app builds");
        let addr = app.local_addr();
        let app_state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("app runs");
        });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, client, settings, dir, app_state, stop: Some(stop), task: Some(task), database: None }
    }

    /// Stops the server and starts a new one on the same storage (a restart of the process).
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let database = self.database.take();
        drop(self);
        let mut app = Self::start(settings, dir).await;
        app.database = database;
        app
    }

    /// Stops the server and lets go of everything it held (its database connections close),
    /// keeping its PostgreSQL database, which is returned.
    #[allow(dead_code)] // not every test crate that includes these helpers uses it
    pub async fn stop_keeping_database(mut self) -> Option<TestDatabase> {
        self.shutdown().await;
        let database = self.database.take();
        drop(self);
        database
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request; `token` None sends no Authorization header.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// A token of `role` in `tenant`, made the way `tocsin token create` makes one.
    pub async fn token(&self, tenant: &str, role: Role) -> String {
        let token = PlainToken::generate();
        let record = TokenRecord {
            id: uuid::Uuid::now_v7(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            role,
            name: "test".into(),
            prefix: token.display_prefix(),
            created_at: now_ms(),
            revoked_at: None,
        };
        assert!(self.app_state.store.insert_token(&record, token.digest(), None).await.unwrap());
        token.expose().to_string()
    }

    /// Runs SQL directly on the app's database (to set up states only the dispatcher reaches).
    pub async fn exec_sql(&self, sql: &str) {
        match &self.settings.database {
            DatabaseUrl::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            DatabaseUrl::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap();
            }
        }
    }

    /// Creates a webhook as the admin and returns the create response.
    pub async fn create_webhook(&self, body: Value) -> Value {
        let (status, v) = self.post("/api/v1/webhooks", ADMIN_TOKEN, body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    /// Publishes one event as the admin; returns the answer.
    pub async fn publish(&self, event: &str, data: Value, event_ref: Option<&str>) -> Value {
        let mut body = json!({"event": event, "data": data});
        if let Some(r) = event_ref {
            body["event_ref"] = json!(r);
        }
        let (status, v) = self.post("/api/v1/events", ADMIN_TOKEN, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        v
    }

    /// Polls `GET path` until `pred` holds on the answer (panics after `timeout`).
    pub async fn poll(&self, path: &str, timeout: std::time::Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (_, v) = self.get(path, ADMIN_TOKEN).await;
            if pred(&v) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "timed out polling {path}: last answer {v}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// A valid create body.
pub fn webhook_body(name: &str) -> Value {
    json!({"name": name, "url": "https://siem.example.com/hook", "event_types": ["email.quarantined"]})
}

/// Asserts a JSON error naming `field`.
#[track_caller]
pub fn assert_field_error(status: StatusCode, body: &Value, field: &str) {
    assert!(status.is_client_error(), "expected 4xx for {field}, got {status}: {body}");
    assert_eq!(body["error"]["field"], json!(field), "wrong field in {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["code"].as_str().is_some(), "{body}");
}

/// A CA and a server certificate for `localhost`, made with the openssl command.
pub fn make_certs(dir: &std::path::Path) -> std::path::PathBuf {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Tocsin Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    dir.join("ca.pem")
}

/// The real `tocsin` binary, without the test's own `TOCSIN_` variables, logging warnings only.
#[allow(dead_code)] // not every test crate that includes these helpers runs the binary
pub fn tocsin_binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOCSIN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TOCSIN_LOG", "warn");
    cmd
}

/// Runs the binary with `args`: (exit code, stdout, stderr).
#[allow(dead_code)]
pub fn run_tocsin(args: &[&str]) -> (i32, String, String) {
    let out = tocsin_binary().args(args).output().expect("tocsin runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}
