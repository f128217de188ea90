//! The dashboard in real headless Chromium (Debian's `chromium` and `chromedriver`), driven over
//! the W3C WebDriver protocol: `/` leads to the sign-in; add a webhook through the wizard (for
//! each format), copy the secret shown once, send a test event to a real receiver and verify its
//! signature, see it in the deliveries; F5 after a form repeats nothing; disable and re-enable,
//! rotate, delete through the confirmation; every problem of a form named at once; tokens,
//! events, "retry all failed", the list's search; a viewer sees no change buttons and a forged
//! change is refused; sign-out ends the session. Screenshots of the main pages, at 1366×900 and
//! 390×844, go to `target/ui-screenshots/`.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "api/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use helpers::{Backend, TestApp, ADMIN_TOKEN};
use receiver::Receiver;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A minimal W3C WebDriver client for chromedriver.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Closes the browser through the driver, then ends the driver and anything it started (its
    /// process group), so that no Chromium outlives the test.
    fn drop(&mut self) {
        close_session(&self.base, &self.session);
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever of this browser is still running (its profile folder is its own).
        for pid in processes_mentioning(&self._profile.path().display().to_string()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// `DELETE /session/{id}` by hand: `Drop` cannot wait on the async client.
fn close_session(base: &str, session: &str) {
    use std::io::{Read, Write};
    let Some(addr) = base.strip_prefix("http://") else { return };
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request =
        format!("DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        // The answer comes once the browser has quit; its first bytes are enough.
        let _ = stream.read(&mut [0u8; 512]);
    }
}

/// The processes whose command line mentions `needle` (a browser profile's folder).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())))
        .filter(|(pid, _)| *pid != std::process::id())
        .filter(|(_, path)| {
            std::fs::read(path.join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .map(|(pid, _)| pid)
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    async fn start() -> Option<Self> {
        let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Several tests start Chromium at once on a small, busy machine, and one now and then
        // exits while starting ("session not created"): that start is tried again, up to three
        // times, each with a fresh profile. Anything else fails the test at once.
        let mut tries = 0;
        loop {
            tries += 1;
            let profile = tempfile::tempdir().unwrap();
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--window-size=1366,900", format!("--user-data-dir={}", profile.path().display())]
                }
            }}});
            let resp: Value =
                http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
            if let Some(session) = resp["value"]["sessionId"].as_str() {
                let session = session.to_string();
                return Some(Self { http, base, session, child, _profile: profile });
            }
            let not_created = resp["value"]["error"] == "session not created";
            assert!(not_created && tries < 3, "no session after {tries} tries: {resp}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn try_cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let req = self.http.request(method, url).json(&body.unwrap_or_else(|| json!({})));
        let v: Value = req.send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if let Some(err) = v["value"].get("error") {
            return Err(format!("webdriver {path}: {err} {}", v["value"]["message"]));
        }
        Ok(v["value"].clone())
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body).await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"][ELEMENT].as_str().map(String::from)
    }

    /// Waits for an element (pages load and scripts run asynchronously).
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            assert!(Instant::now() < deadline, "no element {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element, finding it again if the page changed under it.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            match self.try_cmd(reqwest::Method::POST, &format!("/element/{id}/click"), None).await {
                Ok(_) => return,
                Err(e) => assert!(Instant::now() < deadline, "cannot click {css}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            let typed = async {
                self.try_cmd(reqwest::Method::POST, &format!("/element/{id}/clear"), None).await?;
                self.try_cmd(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await
            };
            match typed.await {
                Ok(_) => return,
                Err(e) => assert!(Instant::now() < deadline, "cannot type into {css}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            match self.try_cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None).await {
                Ok(v) => return v.as_str().unwrap_or_default().to_string(),
                Err(e) => assert!(Instant::now() < deadline, "cannot read {css}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exec(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": []}))).await
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// Goes to step `n` (from 0) of the add/edit wizard.
    async fn step(&self, n: usize) {
        self.click(&format!("ol.steps button[data-step='{n}']")).await;
        self.exec(&format!(
            "const done = arguments[0]; const want = {n};\
             const check = () => document.querySelectorAll('fieldset.step')[want].hidden ? setTimeout(check, 20) : done(true); check();"
        ))
        .await;
    }

    /// Reloads the page, as F5 does.
    async fn refresh(&self) {
        self.cmd(reqwest::Method::POST, "/refresh", None).await;
    }

    async fn resize(&self, width: u32, height: u32) {
        self.cmd(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Waits until the element's text contains `needle` (across page loads).
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let t = match self.try_find(css).await {
                Some(id) => self
                    .try_cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                    .await
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                None => String::new(),
            };
            if t.contains(needle) {
                return t;
            }
            assert!(Instant::now() < deadline, "{css} never showed '{needle}'; it shows '{t}'");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's address contains `needle` (a form's answer has loaded, not the
    /// page it was sent from).
    async fn wait_url(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.try_cmd(reqwest::Method::GET, "/url", None).await.ok().unwrap_or_default();
            if url.as_str().is_some_and(|u| u.contains(needle)) {
                return;
            }
            assert!(Instant::now() < deadline, "the address never held '{needle}': {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sign_in(&self, app: &TestApp, token: &str) {
        self.goto(&app.url("/ui/login")).await;
        self.type_into("#token", token).await;
        self.click("button[type=submit]").await;
        self.find("header .who").await;
    }

    /// Fails if the page is wider than the window (everything usable without sideways scrolling).
    async fn assert_fits(&self, width: u32) {
        let w = self.exec("arguments[0](document.documentElement.scrollWidth)").await.as_u64().unwrap();
        assert!(w <= width as u64 + 1, "the page is {w} px wide in a {width} px window");
    }

    /// Every visible form control has a label.
    async fn assert_labelled(&self) {
        let unlabelled = self
            .exec(
                "arguments[0]([...document.querySelectorAll('input:not([type=hidden]),select,textarea')]\
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name))",
            )
            .await;
        assert_eq!(unlabelled, json!([]), "form controls without a label");
    }
}

fn seed_signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes())) == header
}

/// A headless Chromium, or none (the test is skipped) where it is not installed and not required.
async fn browser_or_skip() -> Option<Browser> {
    let browser = Browser::start().await;
    if browser.is_none() {
        assert!(std::env::var("TOCSIN_REQUIRE_CHROMIUM").is_err(), "chromium and chromedriver are required");
        eprintln!("skipped: chromedriver is not installed (.ci/run installs chromium and chromium-driver)");
    }
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_end_to_end_in_chromium() {
    let Some(b) = browser_or_skip().await else { return };
    let app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start().await;

    // The server's address leads a person to the dashboard's sign-in.
    b.goto(&app.url("/")).await;
    b.find("#token").await;
    assert!(b.exec("arguments[0](location.pathname)").await == "/ui/login");
    // Every page runs only its own origin's scripts and styles (the rest of this test runs under
    // that policy) and is never framed.
    let resp = app.client.get(app.url("/ui/login")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    b.assert_labelled().await;
    b.screenshot("01-sign-in").await;
    b.type_into("#token", "tsn_wrong_token_000000000000000000").await;
    b.click("button[type=submit]").await;
    b.wait_text("main", "not valid").await;
    b.sign_in(&app, ADMIN_TOKEN).await;

    // Add a webhook through the form; a bad field is reported next to it.
    b.click("#add-webhook").await;
    b.find("#webhook-form").await;
    b.assert_labelled().await;
    b.screenshot("02-add-webhook-form").await;
    b.type_into("#url", &rx.url()).await;
    b.step(1).await;
    b.type_into("#event-filter", "quarant").await;
    let shown = b.exec("arguments[0]([...document.querySelectorAll('#event_types label.check')].filter(l => !l.hidden && l.offsetParent).map(l => l.textContent).join('|'))").await;
    assert!(
        shown.as_str().unwrap().contains("email.quarantined") && !shown.as_str().unwrap().contains("alert.created"),
        "{shown}"
    );
    b.click("input[value='email.quarantined']").await;
    b.step(5).await;
    let review = b.text("#review").await;
    assert!(
        review.contains("email.quarantined") && review.contains(&rx.url()),
        "the review lists the values: {review}"
    );
    b.screenshot("02b-wizard-review").await;
    b.click("#save").await;
    let err = b.text("#err-name").await;
    assert!(err.contains("name"), "the wizard opens on the step with the problem: {err}");
    b.type_into("#name", "SOC quarantine feed").await;
    b.step(5).await;
    b.click("#save").await;
    let secret = b.text("#new-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(b.text("#secret-panel").await.contains("will not be shown again"));
    assert!(b.text("#flash").await.contains("created"));
    b.find("#copy-secret").await;
    b.find("#send-test").await;
    b.screenshot("03-secret-shown-once").await;

    // F5 on the page the form led to: nothing is created again, and the secret is gone.
    b.refresh().await;
    b.find("#send-test").await;
    assert!(!b.source().await.contains(&secret), "the secret is never shown again");
    assert!(b.try_find("#flash").await.is_none(), "the outcome shows once");
    let (_, hooks) = app.get("/api/v1/webhooks", ADMIN_TOKEN).await;
    assert_eq!(hooks["data"].as_array().map(Vec::len), Some(1), "F5 created no second webhook: {hooks}");
    assert_eq!(b.text("#chart-caption").await, "No calls in the last 24 hours.");
    b.screenshot("04-overview").await;

    // Send a test event; its outcome shows on the overview the form leads back to.
    b.click("#send-test").await;
    b.wait_text("#flash", "delivered").await;
    b.refresh().await;
    b.find("#send-test").await;
    assert!(b.text("#chart-caption").await.contains("(up to 1 call)"), "one call, in words");
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    assert_eq!(r.header("x-tocsin-event"), "webhook.test");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "F5 after a test sent no second one");
    assert!(seed_signature_ok(&secret, &r.body, &r.header("x-tocsin-signature")), "the copied secret verifies");
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    assert!(wh.verify(&r.body, &r.headers).is_ok(), "Standard Webhooks signature verifies");

    // Recent deliveries show it with its HTTP code.
    b.click("#all-deliveries").await;
    b.wait_text("h1", "Deliveries").await;
    let table = b.wait_text("table.deliveries", "webhook.test").await;
    assert!(table.contains("200") && table.contains("Success"), "{table}");
    b.screenshot("05-deliveries").await;
    b.click("table.deliveries tbody tr td a").await;
    b.wait_text("main", "Request headers").await;
    assert!(b.text("#response").await.contains("content-type"), "the response's headers are shown");
    assert!(b.text("main").await.contains("\"event\": \"webhook.test\""), "the request body is shown");
    assert!(b.text("main").await.contains("x-tocsin-signature"));
    b.screenshot("06-delivery-detail").await;

    // Disable and re-enable.
    let list = b.source().await;
    let id = list.split("/ui/webhooks/").nth(1).unwrap().split('/').next().unwrap().to_string();
    b.goto(&app.url(&format!("/ui/webhooks/{id}"))).await;
    b.click("#disable").await;
    b.wait_text("h1", "Disabled").await;
    b.click("#enable").await;
    b.wait_text("h1", "Active").await;
    let (_, api_view) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(api_view["is_active"], true);

    // Rotation asks first, then shows the new secret once; a second one is refused, saying why.
    b.click("#rotate").await;
    b.wait_text("main", "both the new and the current secret").await;
    b.click("#confirm-rotate").await;
    b.wait_text("#secret-panel", "will not be shown again").await;
    let rotated = b.text("#new-secret").await;
    b.refresh().await;
    b.find("#send-test").await;
    assert!(!b.source().await.contains(&rotated), "F5 shows the new secret no more");
    b.goto(&app.url(&format!("/ui/webhooks/{id}/rotate"))).await;
    b.click("#confirm-rotate").await;
    b.wait_text("main", "signs until").await;

    // Usable at 390 px.
    b.resize(390, 844).await;
    b.goto(&app.url("/ui/webhooks")).await;
    b.find("#webhooks").await;
    b.assert_fits(390).await;
    b.screenshot("07-list-390px").await;
    b.goto(&app.url(&format!("/ui/webhooks/{id}"))).await;
    b.find("#send-test").await;
    b.assert_fits(390).await;
    b.screenshot("08-overview-390px").await;
    b.resize(1366, 900).await;
    b.goto(&app.url("/ui/webhooks")).await;
    b.find("#webhooks").await;
    b.assert_fits(1366).await;
    b.screenshot("09-list").await;
    // The audit log names tokens and webhooks, wraps its details, and fits a phone.
    b.goto(&app.url("/ui/audit")).await;
    let audit = b.wait_text("#audit", "webhook.create").await;
    assert!(audit.contains("webhook “SOC quarantine feed”") && audit.contains("by token “"), "{audit}");
    assert!(!audit.contains("webhook:") && !audit.contains("token:"), "names, not ids: {audit}");
    assert!(audit.contains("UTC"), "times say their zone: {audit}");
    b.resize(390, 844).await;
    b.assert_fits(390).await;
    b.screenshot("12-audit-390px").await;
    b.resize(1366, 900).await;
    b.goto(&app.url("/ui/event-types")).await;
    b.wait_text("main", "email.quarantined").await;

    // A viewer sees the list but no change buttons; a forged change is refused.
    let viewer = app.token("default", tocsin::domain::token::Role::Viewer).await;
    b.click("header form button").await;
    b.find("#token").await;
    b.sign_in(&app, &viewer).await;
    b.find("#webhooks").await;
    assert!(b.try_find("#add-webhook").await.is_none());
    b.goto(&app.url(&format!("/ui/webhooks/{id}"))).await;
    b.find("#all-deliveries").await;
    for button in ["#edit", "#disable", "#enable", "#send-test", "#delete", "#rotate"] {
        assert!(b.try_find(button).await.is_none(), "a viewer sees {button}");
    }
    b.screenshot("10-viewer-overview").await;
    let status = b
        .exec(&format!(
            "const done = arguments[0]; const csrf = document.querySelector('input[name=csrf]').value;\
             fetch('/ui/webhooks/{id}/toggle', {{method: 'POST', body: new URLSearchParams({{csrf}})}}).then(r => done(r.status));"
        ))
        .await;
    assert_eq!(status, 403, "a viewer's forged change is refused");
    let (_, still) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(still["is_active"], true);
    let status = b
        .exec(&format!(
            "const done = arguments[0];\
             fetch('/ui/webhooks/{id}/toggle', {{method: 'POST', body: new URLSearchParams({{csrf: 'forged'}})}}).then(r => done(r.status));"
        ))
        .await;
    assert_eq!(status, 403, "a wrong CSRF token is refused");

    // Signing out ends the session: its pages lead to the sign-in again.
    b.click("header form button").await;
    b.find("#token").await;
    b.goto(&app.url(&format!("/ui/webhooks/{id}"))).await;
    b.find("#token").await;

    // Delete, as the admin, through the confirmation that names the webhook.
    b.sign_in(&app, ADMIN_TOKEN).await;
    b.goto(&app.url(&format!("/ui/webhooks/{id}"))).await;
    b.click("#delete").await;
    b.wait_text("main", "SOC quarantine feed").await;
    b.type_into("#confirm", "wrong name").await;
    b.click("#confirm-delete").await;
    b.wait_text("main", "does not match").await;
    b.type_into("#confirm", "SOC quarantine feed").await;
    b.click("#confirm-delete").await;
    b.wait_text("main", "No webhooks yet").await;
    assert!(b.text("#flash").await.contains("deleted"));
    let (status, _) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(status, 404);

    // No browser outlives the test.
    let profile = b._profile.path().display().to_string();
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&profile).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_mentioning(&profile), Vec::<u32>::new(), "Chromium processes left behind");
}

/// Under a product's profile the dashboard shows that product's contract: the wizard's optional
/// secret and retry delay (Selki's), the headers sent and a body example on the overview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_shows_its_contract_in_the_dashboard() {
    let Some(b) = browser_or_skip().await else { return };
    let app = TestApp::delivering(Backend::Sqlite, |s| s.profile = "selki".into()).await;
    let rx = Receiver::start().await;
    b.sign_in(&app, ADMIN_TOKEN).await;
    b.click("#add-webhook").await;
    b.find("#webhook-form").await;
    b.type_into("#name", "Notify Slack on Clicks").await;
    b.type_into("#url", &rx.url()).await;
    b.step(1).await;
    b.click("input[value='PHISHING_EMAIL_CLICKED']").await;
    let placeholder = b.exec("arguments[arguments.length - 1](document.querySelector('#secret').placeholder)").await;
    assert!(placeholder.as_str().unwrap_or_default().contains("unsigned"), "{placeholder}");
    b.step(3).await;
    b.type_into("#retry_delay", "5").await;
    b.step(5).await;
    b.click("#save").await;
    b.find("#unsigned").await;
    let headers = b.text("#headers-sent").await;
    for name in ["selki-webhook-id", "selki-webhook-call-id", "Selki-Webhook/1.0"] {
        assert!(headers.contains(name), "{name} missing from {headers}");
    }
    assert!(!headers.contains("selki-signature") && !headers.contains("x-tocsin"), "{headers}");
    assert!(b.text("#profile").await.contains("Selki"));
    let example = b.text("#body-example").await;
    assert!(
        example.contains("\"subscription\": \"PHISHING_EMAIL_CLICKED\"") && example.contains("campaignId"),
        "{example}"
    );
    b.screenshot("20-selki-overview").await;
    let (_, list) = app.get("/api/v1/webhooks", ADMIN_TOKEN).await;
    assert_eq!(list["data"][0]["retry_delays_ms"], json!([0, 5000]), "{list}");
    assert_eq!(list["data"][0]["signed"], false);
}

/// A form with several mistakes names them all at once, in plain words, each beside its field and
/// listed at the top (a problem in "Advanced settings" opens it); an edit that unchecks every
/// event says so instead of keeping the old subscription; custom headers can be removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_report_every_problem_and_edits_do_what_they_say() {
    let Some(b) = browser_or_skip().await else { return };
    let app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start().await;
    b.sign_in(&app, ADMIN_TOKEN).await;
    b.goto(&app.url("/ui/webhooks/new")).await;
    b.find("#webhook-form").await;
    b.type_into("#url", "ftp://nowhere").await;
    b.step(3).await;
    b.exec("arguments[0](document.querySelector('#format').value = 'splunk_hec')").await;
    b.step(5).await;
    b.click("#save").await;
    let summary = b.wait_text("#problems", "Some things to fix").await;
    for label in ["Webhook name", "Endpoint URL", "Signing secret"] {
        assert!(summary.contains(label), "{label} missing from {summary}");
    }
    assert!(!summary.contains("name: must") && !summary.contains("url: "), "plain words, not the API's: {summary}");
    assert!(summary.contains("Enter a name"), "{summary}");
    for field in ["name", "url", "secret"] {
        let text = b.exec(&format!("arguments[0](document.querySelector('#err-{field}').textContent)")).await;
        assert!(!text.as_str().unwrap_or_default().is_empty(), "no problem shown beside {field}");
    }
    // The secret's problem is on a later step: its link in the list leads there.
    b.click("#problems a[href='#secret']").await;
    assert!(b.text("#err-secret").await.contains("HEC token"), "the link shows the secret's step");
    b.screenshot("11-form-problems").await;
    b.resize(390, 844).await;
    b.assert_fits(390).await;
    b.screenshot("11b-form-problems-390px").await;
    b.resize(1366, 900).await;
    let (_, hooks) = app.get("/api/v1/webhooks", ADMIN_TOKEN).await;
    assert_eq!(hooks["data"].as_array().map(Vec::len), Some(0));

    // An edit: every event unchecked is pointed out; custom headers can be removed.
    let created = app
        .create_webhook(json!({"name": "hdrs", "url": rx.url(), "event_types": ["alert.created"],
                               "headers": {"X-Api-Key": "k-1", "X-Team": "soc"}}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    b.goto(&app.url(&format!("/ui/webhooks/{id}/edit"))).await;
    b.find("#webhook-form").await;
    b.step(1).await;
    b.click("input[value='alert.created']").await;
    b.step(5).await;
    b.click("#save").await;
    b.wait_text("#err-event_types", "event").await;
    let (_, kept) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(kept["event_types"], json!(["alert.created"]));
    b.click("input[value='alert.created']").await;
    b.step(4).await;
    assert!(b.text("#webhook-form").await.contains("X-Api-Key"), "the names of the headers set are shown");
    b.click("#clear_headers").await;
    b.step(5).await;
    b.click("#save").await;
    b.wait_text("#flash", "saved").await;
    let (_, after) = app.get(&format!("/api/v1/webhooks/{id}"), ADMIN_TOKEN).await;
    assert_eq!(after["headers"], json!({}), "{after}");
}

/// What users of Svix's portal and GitHub's settings expect: tokens managed by name (the value
/// shown once), an event found by its event_ref with each webhook's delivery of it and a manual
/// redelivery, and a list that searches and filters, failing webhooks marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_events_and_the_list_filter() {
    let Some(b) = browser_or_skip().await else { return };
    let app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start().await;
    let down = Receiver::with_plan(|_, _| receiver::Reply::Status(503)).await;
    b.sign_in(&app, ADMIN_TOKEN).await;

    // Tokens: created by name, its value shown once; revoked, it is refused.
    b.click("a[href='/ui/tokens']").await;
    b.type_into("#token-name", "PhishNet publisher").await;
    b.click("#create-token").await;
    let token = b.text("#new-secret").await;
    assert!(token.starts_with("tsn_"), "{token}");
    assert!(b.text("#secret-panel").await.contains("Copy this token now"));
    assert!(b.text("#tokens").await.contains("PhishNet publisher"));
    b.screenshot("13-token-created").await;
    b.refresh().await;
    b.find("#tokens").await;
    assert!(!b.source().await.contains(&token), "the token is shown once");
    let (s, _) = app.post("/api/v1/events", &token, json!({"event": "alert.created", "data": {"n": 1}})).await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED, "a publisher token publishes");
    let row = b.exec("arguments[0]([...document.querySelectorAll('#tokens tr')].find(r => r.textContent.includes('PhishNet publisher')).dataset.token)").await;
    b.goto(&app.url(&format!("/ui/tokens/{}/revoke", row.as_str().unwrap()))).await;
    b.click("#confirm-revoke").await;
    b.wait_text("#flash", "revoked").await;
    let (s, _) = app.post("/api/v1/events", &token, json!({"event": "alert.created", "data": {"n": 2}})).await;
    assert_eq!(s, reqwest::StatusCode::UNAUTHORIZED, "a revoked token is refused");

    // Events: found by event_ref, each webhook's delivery with where it stands, redelivered.
    app.create_webhook(json!({"name": "SIEM", "url": rx.url(), "event_types": ["*"]})).await;
    app.create_webhook(json!({"name": "Flaky", "url": down.url(), "event_types": ["*"], "retry_count": 0})).await;
    app.publish("alert.created", json!({"severity": "high"}), Some("alert-ref-77")).await;
    // The page is drawn once: it is opened after both attempts' records are in.
    let settled = |v: &serde_json::Value| {
        v["deliveries"].as_array().is_some_and(|d| {
            d.len() == 2 && d.iter().all(|d| matches!(d["state"].as_str(), Some("succeeded" | "failed")))
        })
    };
    app.poll("/api/v1/events/alert-ref-77", Duration::from_secs(20), settled).await;
    b.click("a[href='/ui/events']").await;
    b.type_into("#ref", "alert-ref-77").await;
    b.click("#event-search button").await;
    let table = b.wait_text("#event-deliveries", "Gave up").await;
    assert!(table.contains("SIEM") && table.contains("Delivered") && table.contains("Flaky"), "{table}");
    assert!(b.text("#event").await.contains("\"severity\": \"high\""), "the event's data");
    b.screenshot("14-event").await;
    b.click("#event-deliveries button").await;
    b.wait_text("#flash", "queued").await;
    rx.wait_for(2, Duration::from_secs(10)).await;
    b.wait_text("#event-deliveries", "manual redelivery").await;
    // A form sent with a ref no event can have is refused, not echoed into the redirect.
    b.exec(
        "const done = arguments[0]; const form = document.querySelector('#event-deliveries form');\
         form.querySelector('input[name=ref]').value = 'x'.repeat(100000); setTimeout(() => form.submit(), 0); done(true);",
    )
    .await;
    b.wait_text("#flash", "not an event_ref").await;
    b.type_into("#ref", "no-such-ref").await;
    b.click("#event-search button").await;
    b.wait_text("#no-event", "No event").await;

    // "Retry all failed" on a webhook's deliveries: the one that gave up goes once more.
    let before = down.received().len();
    b.goto(&app.url("/ui/webhooks?q=flaky")).await;
    b.click("#webhooks tbody a").await;
    b.click("#all-deliveries").await;
    assert!(b.text("table.deliveries").await.contains("gave up"), "a delivery that gave up is marked");
    b.click("#retry-failed").await;
    b.wait_text("#flash", "1 failed delivery queued").await;
    down.wait_for(before + 1, Duration::from_secs(10)).await;
    b.refresh().await;
    b.find("#retry-failed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(down.received().len(), before + 1, "F5 retried nothing again");

    // The list: failing webhooks marked; search and filter by state.
    b.goto(&app.url("/ui/webhooks")).await;
    let failing = b
        .exec("arguments[0]([...document.querySelectorAll('#webhooks tr.state-failing')].map(r => r.textContent))")
        .await;
    assert!(failing.to_string().contains("Flaky") && !failing.to_string().contains("SIEM"), "{failing}");
    b.type_into("#q", "siem").await;
    b.click("#webhook-filter button").await;
    b.wait_url("q=siem").await;
    let listed = b.wait_text("#webhooks", "SIEM").await;
    assert!(!listed.contains("Flaky"), "{listed}");
    b.goto(&app.url("/ui/webhooks?state=failing")).await;
    let listed = b.wait_text("#webhooks", "Flaky").await;
    assert!(!listed.contains("SIEM"), "{listed}");
    b.goto(&app.url("/ui/webhooks?q=nothing-like-this")).await;
    b.find("#no-match").await;
    b.screenshot("15-list-filtered").await;
}

/// The wizard end to end for each format: endpoint → events → format and delivery → security →
/// review, saved, then a test event reaches a real receiver in that format (an HTTP server, or a
/// UDP syslog socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_end_to_end_for_each_format() {
    let Some(b) = browser_or_skip().await else { return };
    let app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start().await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let syslog_url = format!("syslog+udp://127.0.0.1:{}", udp.local_addr().unwrap().port());
    b.sign_in(&app, ADMIN_TOKEN).await;
    let cases = [
        ("json", rx.url(), "", "\"event\":\"webhook.test\""),
        ("slack", rx.url(), "", "\"blocks\""),
        ("teams", rx.url(), "", "TextBlock"),
        ("cef", rx.url(), "", "CEF:0|"),
        ("splunk_hec", rx.url(), "hec-token-0000-1111", "\"sourcetype\""),
        ("syslog", syslog_url.clone(), "", "webhook.test"),
    ];
    for (i, (format, url, secret, expect)) in cases.iter().enumerate() {
        b.goto(&app.url("/ui/webhooks/new")).await;
        b.find("ol.steps").await;
        b.type_into("#name", &format!("{format} destination")).await;
        b.type_into("#url", url).await;
        b.click("#step-endpoint .step-next").await;
        b.click("#ev-all").await;
        b.click("#event_types .step-next").await;
        b.click("#step-filters .step-next").await;
        b.exec(&format!("arguments[0](document.querySelector('#format').value = '{format}')")).await;
        b.click("#step-delivery .step-next").await;
        if !secret.is_empty() {
            b.type_into("#secret", secret).await;
        }
        b.click("#step-security .step-next").await;
        let review = b.text("#review").await;
        assert!(review.contains(format) && review.contains(url.as_str()), "{format}: {review}");
        b.click("#save").await;
        b.wait_text("#flash", "created").await;
        b.screenshot(&format!("16-wizard-{format}")).await;
        b.click("#send-test").await;
        if *format == "syslog" {
            let mut buf = vec![0u8; 65536];
            let (n, _) = tokio::time::timeout(Duration::from_secs(10), udp.recv_from(&mut buf)).await.unwrap().unwrap();
            let line = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(line.contains(expect), "{format}: {line}");
        } else {
            let got = rx.wait_for(i + 1, Duration::from_secs(10)).await;
            let body = String::from_utf8_lossy(&got[i].body).to_string();
            assert!(body.contains(expect), "{format}: {body}");
        }
        let (_, hooks) = app.get("/api/v1/webhooks", ADMIN_TOKEN).await;
        let made =
            hooks["data"].as_array().unwrap().iter().find(|w| w["name"] == format!("{format} destination")).cloned();
        assert_eq!(made.map(|w| w["format"].clone()), Some(json!(format)), "{hooks}");
    }
}

/// The wizard's Filters step: "Try it" shows which of the latest events a filter lets through,
/// and names a mistake in the expression; a webhook saved with it delivers only what passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_is_tried_on_the_latest_events_then_saved() {
    let Some(b) = browser_or_skip().await else { return };
    let app = TestApp::delivering(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start().await;
    for (i, score) in [95, 40, 97].iter().enumerate() {
        let data = json!({"subject": "s", "phish_score": score, "source": "auto"});
        app.publish("email.quarantined", data, Some(&format!("try-{i}"))).await;
    }
    b.sign_in(&app, ADMIN_TOKEN).await;
    b.goto(&app.url("/ui/webhooks/new")).await;
    b.type_into("#name", "critical only").await;
    b.type_into("#url", &rx.url()).await;
    b.step(1).await;
    b.click("#ev-all").await;
    b.step(2).await;
    b.type_into("#filter", "data.phish_score >=").await;
    b.click("#try-filter").await;
    b.wait_text("#filter-try", "Not a valid CEL expression: at 1:20").await;
    b.exec("arguments[0](document.querySelector('#filter').value = 'data.phish_score >= 90')").await;
    b.click("#try-filter").await;
    let tried = b.wait_text("#filter-try", "2 of the last 3 events pass").await;
    assert!(tried.contains("try-1") && tried.contains("filtered out"), "{tried}");
    b.screenshot("17-filter-tried").await;
    b.step(5).await;
    b.click("#save").await;
    b.wait_text("#flash", "created").await;
    app.publish("email.quarantined", json!({"subject": "s", "phish_score": 10}), Some("try-low")).await;
    app.publish("email.quarantined", json!({"subject": "s", "phish_score": 99}), Some("try-high")).await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "only what passes");
    assert_eq!(got[0].event_ref(), "try-high");
}

/// Signs in over plain HTTP as a browser would (the sign-in form's token, then the form), with
/// `session` as the browser's current session cookie; returns the new session cookie.
async fn sign_in_over_http(app: &TestApp, session: Option<&str>) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie_of = |resp: &reqwest::Response, name: &str| {
        resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
            v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or_default().to_string())
        })
    };
    let form = client.get(app.url("/ui/login")).send().await.unwrap();
    let login = cookie_of(&form, "tocsin_login").expect("the sign-in form sets its cookie");
    let mut cookies = format!("tocsin_login={login}");
    if let Some(s) = session {
        cookies.push_str(&format!("; tocsin_session={s}"));
    }
    let signed_in = client
        .post(app.url("/ui/login"))
        .header("cookie", cookies)
        .form(&[("csrf", login.as_str()), ("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(signed_in.status().is_redirection(), "{}", signed_in.status());
    cookie_of(&signed_in, "tocsin_session").expect("a session cookie")
}

#[tokio::test]
async fn signing_in_again_ends_the_session_before() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let first = sign_in_over_http(&app, None).await;
    let second = sign_in_over_http(&app, Some(&first)).await;
    assert_ne!(first, second);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let open = |session: String| {
        let request = client.get(app.url("/ui/webhooks")).header("cookie", format!("tocsin_session={session}"));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(open(second).await, reqwest::StatusCode::OK, "the new session works");
    assert!(open(first).await.is_redirection(), "the session before it no longer does");
}
