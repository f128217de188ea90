//! SIEM destinations against real receivers: Debian's rsyslog on UDP, TCP and TLS ports (its own
//! config file, parsing RFC 5424 and writing what it parsed as JSON lines), and a local
//! HEC-compatible receiver checking path, token and body.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{make_certs, Backend, TestApp, ADMIN_TOKEN};

const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Rsyslog {
    child: Child,
    out: PathBuf,
    udp: u16,
    tcp: u16,
    tls: u16,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rsyslog {
    /// [`Rsyslog::start`], or None with a note when rsyslogd is not installed (a failure when
    /// `TOCSIN_REQUIRE_RSYSLOG` is set, as in CI).
    fn start_or_skip(dir: &Path) -> Option<Self> {
        let started = Self::start(dir);
        if started.is_none() {
            assert!(std::env::var("TOCSIN_REQUIRE_RSYSLOG").is_err(), "rsyslogd is required but not installed");
            eprintln!("skipped: rsyslogd is not installed (.ci/run installs it)");
        }
        started
    }

    /// Starts rsyslogd in the foreground with its own configuration; None when not installed.
    fn start(dir: &Path) -> Option<Self> {
        if Command::new("rsyslogd").arg("-v").output().is_err() {
            return None;
        }
        let (udp, tcp, tls) = (free_udp_port(), free_port(), free_port());
        let out = dir.join("received.jsonl");
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}"
       defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key"
       maxMessageSize="64k")
module(load="imudp")
module(load="imtcp" maxSessions="100")
module(load="mmpstrucdata")
template(name="asjson" type="string" string="%jsonmesg%\n")
ruleset(name="tocsin") {{
  action(type="mmpstrucdata")
  action(type="omfile" file="{out}" template="asjson")
}}
input(type="imudp" port="{udp}" address="127.0.0.1" ruleset="tocsin")
input(type="imtcp" port="{tcp}" address="127.0.0.1" ruleset="tocsin")
input(type="imtcp" port="{tls}" address="127.0.0.1" ruleset="tocsin" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#,
            out = out.display()
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let check = Command::new("rsyslogd").args(["-N1", "-f"]).arg(&conf_path).output().unwrap();
        assert!(check.status.success(), "rsyslog config: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Self { child, out, udp, tcp, tls };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", tls)).is_err()
        {
            assert!(Instant::now() < deadline, "rsyslogd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    /// The messages rsyslog parsed so far, waiting until `n` arrived.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            // Whole lines only: rsyslog may be part way through writing the last one.
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            let whole = text.rfind('\n').map_or("", |end| &text[..end]);
            let lines: Vec<Value> = whole
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("rsyslog wrote {l}: {e}")))
                .collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "rsyslog got {} of {n} messages", lines.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

both_backends!(syslog_over_udp_tcp_and_tls_into_rsyslog, rsyslog_on);
async fn rsyslog_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_certs(dir.path());
    let Some(rsyslog) = Rsyslog::start_or_skip(dir.path()) else { return };
    let app = TestApp::delivering(backend, |s| {
        s.extra_ca_file = Some(ca.clone());
        s.render.hostname = "tocsin-test-host".into();
    })
    .await;
    let hooks = [
        ("udp", format!("syslog+udp://127.0.0.1:{}", rsyslog.udp), "syslog"),
        ("tcp", format!("syslog+tcp://127.0.0.1:{}", rsyslog.tcp), "cef"),
        ("tls", format!("syslog+tls://localhost:{}", rsyslog.tls), "syslog"),
    ];
    for (name, url, format) in &hooks {
        let created = app
            .create_webhook(json!({"name": name, "url": url, "format": format, "event_types": ["email.quarantined"]}))
            .await;
        // Syslog carries no signature: no secret is made up for it.
        assert_eq!((&created["secret"], &created["signed"]), (&json!(null), &json!(false)), "{created}");
    }
    // An event_ref with the characters SD-PARAM values must escape, and data CEF must escape.
    let event_ref = r#"ref"with]back\slash"#;
    let data = json!({
        "subject": "Reset | now = \"urgent\"\nline two",
        "sender_email": "attacker@example.com",
        "phish_score": 95,
        "reason": "policy",
        "scan_id": "s-1",
        "note": "non-ASCII: é 漢字"
    });
    app.publish("email.quarantined", data.clone(), Some(event_ref)).await;
    let got = rsyslog.wait_for(3).await;
    assert_eq!(got.len(), 3);
    for m in &got {
        assert_eq!(m["hostname"], "tocsin-test-host", "{m}");
        assert_eq!(m["app-name"], "tocsin");
        assert_eq!(m["msgid"], "email.quarantined");
        assert_eq!(m["procid"], "-");
        assert_eq!(m["protocol-version"], "1");
        assert_eq!(m["syslogfacility"], "16", "local0");
        assert_eq!(m["syslogseverity"], "2", "phish score 95 is critical");
        assert!(m["timereported"].as_str().unwrap().starts_with("20"), "{m}");
        let sd = &m["$!"]["rfc5424-sd"]["tocsin@32473"];
        assert_eq!(sd["event_ref"], event_ref, "SD-PARAM escaping round-trips: {m}");
        assert_eq!(sd["tenant"], "default");
        assert_eq!(sd["event"], "email.quarantined");
    }
    let by_input = |needle: &str| -> Vec<&Value> {
        got.iter().filter(|m| m["inputname"].as_str().unwrap_or_default().contains(needle)).collect()
    };
    assert_eq!(by_input("imudp").len(), 1);
    assert_eq!(by_input("imtcp").len(), 2);
    for m in &got {
        let msg = m["msg"].as_str().unwrap().trim_start();
        if msg.starts_with("CEF:") {
            assert!(msg.contains(r"msg=From"), "{msg}");
            assert!(msg.contains(r#"|Quarantined: Reset \| now = "urgent" line two|10|"#), "header escaping: {msg}");
            assert!(msg.contains("externalId="), "{msg}");
        } else {
            let envelope: Value = serde_json::from_str(msg).unwrap_or_else(|e| panic!("{e}: {msg}"));
            assert_eq!(envelope["data"], data);
            assert_eq!(envelope["event_ref"], event_ref);
        }
    }

    // A message longer than a datagram is cut, on a character boundary, and still parses.
    let small = TestApp::delivering(backend, |s| s.syslog_udp_max = 600).await;
    small
        .create_webhook(
            json!({"name": "udp", "url": format!("syslog+udp://127.0.0.1:{}", rsyslog.udp), "format": "syslog",
                               "event_types": ["alert.created"]}),
        )
        .await;
    small.publish("alert.created", json!({"title": "é".repeat(2000), "severity": "low"}), Some("long-one")).await;
    let got = rsyslog.wait_for(4).await;
    let long = got.iter().find(|m| m["$!"]["rfc5424-sd"]["tocsin@32473"]["event_ref"] == "long-one").unwrap();
    assert!(long["rawmsg"].as_str().unwrap().len() <= 600, "{}", long["rawmsg"]);
    assert_eq!(long["syslogseverity"], "5");
    // ... and the delivery log says it was cut.
    let has_it = |v: &Value| v["data"].as_array().is_some_and(|d| d.iter().any(|a| a["event_ref"] == "long-one"));
    let cut = small.poll("/api/v1/deliveries", WAIT, has_it).await;
    let attempt = cut["data"].as_array().unwrap().iter().find(|a| a["event_ref"] == "long-one").unwrap().clone();
    assert_eq!(attempt["success"], true, "{attempt}");
    assert!(attempt["error"].as_str().unwrap_or_default().contains("did not fit one datagram"), "{attempt}");
    // Deliveries to syslog destinations are logged like any other.
    let (_, recent) = app.get("/api/v1/deliveries", ADMIN_TOKEN).await;
    let logged: Vec<&Value> =
        recent["data"].as_array().unwrap().iter().filter(|a| a["event_ref"] == event_ref).collect();
    assert_eq!(logged.len(), 3);
    assert!(logged.iter().all(|a| a["success"] == true && a["http_status"].is_null()));
}

#[derive(Clone, Default)]
struct Hec {
    received: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Hec {
    /// A HEC-compatible receiver on a free port of 127.0.0.1.
    async fn start() -> (Self, u16) {
        let hec = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = axum::Router::new().fallback(hec_handler).with_state(hec.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (hec, port)
    }
}

async fn hec_handler(
    axum::extract::State(hec): axum::extract::State<Hec>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    hec.received.lock().unwrap().push((uri.path().to_string(), auth.clone(), parsed.clone()));
    if uri.path() != "/services/collector/event" {
        return (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"text": "The requested URL was not found", "code": 404})),
        );
    }
    match auth.strip_prefix("Splunk ") {
        None => (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"text": "Token is required", "code": 2}))),
        Some("11111111-2222-3333-4444-555555555555") if parsed["event"].is_object() => {
            (axum::http::StatusCode::OK, axum::Json(json!({"text": "Success", "code": 0})))
        }
        Some("11111111-2222-3333-4444-555555555555") => {
            (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"text": "Event field is required", "code": 12})))
        }
        Some(_) => (axum::http::StatusCode::FORBIDDEN, axum::Json(json!({"text": "Invalid token", "code": 4}))),
    }
}

both_backends!(splunk_hec_receiver, hec_on);
async fn hec_on(backend: Backend) {
    let (hec, port) = Hec::start().await;
    let app = TestApp::delivering(backend, |s| s.render.splunk_index = Some("security".into())).await;
    let url = format!("http://127.0.0.1:{port}/services/collector/event");
    let good = app
        .create_webhook(
            json!({"name": "hec", "url": url, "format": "splunk_hec", "secret": "11111111-2222-3333-4444-555555555555",
                               "event_types": ["alert.*"]}),
        )
        .await;
    let bad = app
        .create_webhook(json!({"name": "hec-bad", "url": url, "format": "splunk_hec", "secret": "99999999-0000-0000-0000-000000000000",
                               "event_types": ["alert.*"], "retry_count": 0}))
        .await;
    let (s, b) =
        app.post("/api/v1/webhooks", ADMIN_TOKEN, json!({"name": "x", "url": url, "format": "splunk_hec"})).await;
    crate::helpers::assert_field_error(s, &b, "secret");
    // A signed webhook turned into HEC would send its signing secret as the token, in the clear
    // and perhaps to a new URL: the change takes a new secret, and so does the way back.
    let signed = app.create_webhook(json!({"name": "signed", "url": url, "event_types": ["email.*"]})).await;
    let path = format!("/api/v1/webhooks/{}", signed["id"].as_str().unwrap());
    let (s, b) = app.patch(&path, ADMIN_TOKEN, json!({"format": "splunk_hec"})).await;
    crate::helpers::assert_field_error(s, &b, "secret");
    let token = "22222222-3333-4444-5555-666666666666";
    let (s, b) = app.patch(&path, ADMIN_TOKEN, json!({"format": "splunk_hec", "secret": token})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.patch(&path, ADMIN_TOKEN, json!({"format": "json"})).await;
    crate::helpers::assert_field_error(s, &b, "secret");
    app.publish(
        "alert.created",
        json!({"title": "New open port detected", "severity": "high", "device_ip": "192.168.1.10"}),
        Some("hec-1"),
    )
    .await;
    let good_id = good["id"].as_str().unwrap();
    let bad_id = bad["id"].as_str().unwrap();
    let log = app
        .poll(&format!("/api/v1/webhooks/{good_id}/deliveries"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    assert_eq!(log["data"][0]["success"], true, "{log}");
    assert_eq!(log["data"][0]["request_headers"]["authorization"], "Splunk ********", "the token never shows");
    let received = hec.received.lock().unwrap().clone();
    let (path, auth, body) = received.iter().find(|(_, a, _)| a.contains("1111")).unwrap();
    assert_eq!(path, "/services/collector/event");
    assert_eq!(auth, "Splunk 11111111-2222-3333-4444-555555555555");
    assert_eq!(body["source"], "tocsin");
    assert_eq!(body["sourcetype"], "tocsin:alert.created");
    assert_eq!(body["index"], "security");
    assert!(body["time"].as_f64().unwrap() > 1.7e9);
    assert_eq!(body["event"]["event_ref"], "hec-1");
    assert_eq!(body["event"]["data"]["device_ip"], "192.168.1.10");
    let log = app
        .poll(&format!("/api/v1/webhooks/{bad_id}/deliveries"), WAIT, |v| {
            v["data"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    assert_eq!(log["data"][0]["http_status"], 403);
    assert_eq!(log["data"][0]["error"], "HTTP 403: HEC code 4: Invalid token", "HEC's error is read into the log");
    // Preview renders without sending, and never shows the token.
    let before = hec.received.lock().unwrap().len();
    let (s, preview) = app.post(&format!("/api/v1/webhooks/{good_id}/preview"), ADMIN_TOKEN, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{preview}");
    let body: Value = serde_json::from_str(preview["body"].as_str().unwrap()).unwrap();
    assert!(body["sourcetype"].as_str().unwrap().starts_with("tocsin:alert."));
    assert!(!preview.to_string().contains("11111111-2222"));
    assert_eq!(hec.received.lock().unwrap().len(), before);
}

both_backends!(formats_through_the_api, formats_api_on);
async fn formats_api_on(backend: Backend) {
    let app = TestApp::delivering(backend, |_| {}).await;
    // A syslog destination takes syslog or cef; preview works for every format.
    let (s, b) = app
        .post(
            "/api/v1/webhooks",
            ADMIN_TOKEN,
            json!({"name": "x", "url": "syslog+tcp://127.0.0.1:601", "format": "slack"}),
        )
        .await;
    crate::helpers::assert_field_error(s, &b, "format");
    for format in ["json", "slack", "teams", "cef", "syslog"] {
        let created = app
            .create_webhook(json!({"name": format, "url": "https://hooks.example.com/x", "format": format, "event_types": ["email.*"]}))
            .await;
        let id = created["id"].as_str().unwrap();
        let (s, p) = app
            .post(&format!("/api/v1/webhooks/{id}/preview"), ADMIN_TOKEN, json!({"event": "email.quarantined"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{p}");
        let body = p["body"].as_str().unwrap();
        match format {
            "cef" => assert!(body.starts_with("CEF:0|Tocsin|Tocsin|"), "{body}"),
            "syslog" => assert!(body.starts_with("<130>1 "), "{body}"),
            _ => {
                serde_json::from_str::<Value>(body).unwrap();
            }
        }
        let (s, b) =
            app.post(&format!("/api/v1/webhooks/{id}/preview"), ADMIN_TOKEN, json!({"event": "nope.nope"})).await;
        crate::helpers::assert_field_error(s, &b, "event");
    }
}

both_backends!(ocsf_over_http_syslog_and_hec, ocsf_on);
/// The five products' example events as OCSF over HTTP (signed like any webhook), as the MSG of
/// syslog messages into rsyslog, and as Splunk HEC events; every object that arrives validates
/// with pydantic-ocsf.
async fn ocsf_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_certs(dir.path());
    let Some(rsyslog) = Rsyslog::start_or_skip(dir.path()) else { return };
    let (hec, hec_port) = Hec::start().await;
    let rx = crate::receiver::Receiver::start().await;
    let app = TestApp::delivering(backend, |s| s.extra_ca_file = Some(ca.clone())).await;
    let seeds =
        ["email.quarantined", "critical_finding", "alert.created", "THREATS_NEW_THREAT", "campaign.clicked_link"];
    let http =
        app.create_webhook(json!({"name": "lake", "url": rx.url(), "format": "ocsf", "event_types": seeds})).await;
    let secret = http["secret"].as_str().unwrap().to_string();
    app.create_webhook(json!({"name": "siem", "url": format!("syslog+tcp://127.0.0.1:{}", rsyslog.tcp),
                              "format": "ocsf", "event_types": seeds}))
        .await;
    app.create_webhook(
        json!({"name": "splunk", "url": format!("http://127.0.0.1:{hec_port}/services/collector/event"),
                              "format": "splunk_hec_ocsf", "secret": "11111111-2222-3333-4444-555555555555",
                              "event_types": seeds}),
    )
    .await;
    let (_, types) = app.get("/api/v1/event-types", ADMIN_TOKEN).await;
    for (i, name) in seeds.iter().enumerate() {
        let example = types["data"].as_array().unwrap().iter().find(|t| t["name"] == *name).unwrap()["example"].clone();
        app.publish(name, example, Some(&format!("ocsf-{i}"))).await;
    }
    let mut objects = Vec::new();
    for r in rx.wait_for(seeds.len(), WAIT).await {
        let wh = standardwebhooks::Webhook::new(&secret).unwrap();
        assert!(wh.verify(&r.body, &r.headers).is_ok(), "an OCSF body is signed like any other");
        assert_eq!(r.header("content-type"), "application/json");
        objects.push(r.json());
    }
    for m in rsyslog.wait_for(seeds.len()).await {
        let msg = m["msg"].as_str().unwrap().trim_start();
        objects.push(serde_json::from_str(msg).unwrap_or_else(|e| panic!("{e}: {msg}")));
    }
    let deadline = Instant::now() + WAIT;
    while hec.received.lock().unwrap().len() < seeds.len() {
        assert!(Instant::now() < deadline, "HEC got {} of {}", hec.received.lock().unwrap().len(), seeds.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, auth, body) in hec.received.lock().unwrap().iter() {
        assert_eq!(auth, "Splunk 11111111-2222-3333-4444-555555555555");
        assert!(body["sourcetype"].as_str().unwrap().starts_with("ocsf:"), "{body}");
        objects.push(body["event"].clone());
    }
    assert_eq!(objects.len(), 3 * seeds.len());
    for o in &objects {
        assert!(o["metadata"]["uid"].as_str().unwrap().starts_with("ocsf-"), "{o}");
        assert_eq!(o["metadata"]["tenant_uid"], "default");
    }
    let finding = objects.iter().find(|o| o["metadata"]["event_code"] == "critical_finding").unwrap();
    assert_eq!((&finding["class_uid"], &finding["finding_info"]["uid"]), (&json!(2002), &json!("f-1025")));
    if let Some(valid) = crate::ocsf::all_valid(&objects) {
        assert!(valid, "pydantic-ocsf rejected an object (printed above)");
    }
}
