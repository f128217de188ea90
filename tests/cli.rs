//! The real `tocsin` binary: start-up, configuration errors, bootstrap token, token commands.

#![allow(clippy::let_underscore_must_use, clippy::string_slice)] // tests: no untrusted input reaches them

#[path = "support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn tocsin(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOCSIN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TOCSIN_LOG", "warn");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `tocsin serve` and waits until it answers /healthz.
fn serve(dir: &std::path::Path, port: u16) -> Child {
    let child = tocsin(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    if !listening(port) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("tocsin serve did not start");
    }
    child
}

/// Whether something listens on the port within 20 s.
fn listening(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Stops with SIGTERM (graceful) and returns everything it printed on stdout.
fn stop(mut child: Child) -> String {
    unsafe_kill_term(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        out.push_str(&line.unwrap());
        out.push('\n');
    }
    out
}

fn unsafe_kill_term(pid: u32) {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
}

fn get(port: u16, path: &str, token: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

#[test]
fn bootstrap_token_is_printed_once_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = serve(dir.path(), port);
    assert!(dir.path().join("tocsin-data/tocsin.db").exists(), "SQLite under ./tocsin-data by default");
    let key = dir.path().join("tocsin-data/master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let token_line = |out: &str| out.lines().find(|l| l.starts_with("tsn_")).map(str::to_string);
    // The token is printed before the server listens; read it after a graceful stop.
    let out = stop(child);
    let token = token_line(&out).expect("first start prints a bootstrap token");

    let port = free_port();
    let child = serve(dir.path(), port);
    assert_eq!(get(port, "/api/v1/webhooks", &token), 200);
    assert_eq!(get(port, "/api/v1/webhooks", "tsn_wrong"), 401);
    let out = stop(child);
    assert_eq!(token_line(&out), None, "the bootstrap token is never printed again: {out}");
}

#[test]
fn bad_settings_stop_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, name) in [
        ("TOCSIN_LISTEN", "not-an-address", "TOCSIN_LISTEN"),
        ("TOCSIN_DATABASE_URL", "mysql://localhost/x", "TOCSIN_DATABASE_URL"),
        ("TOCSIN_MASTER_KEY", "tooshort", "TOCSIN_MASTER_KEY"),
        ("TOCSIN_ADMIN_TOKEN", "short", "TOCSIN_ADMIN_TOKEN"),
        ("TOCSIN_RETRY_DELAYS_MS", "1,x", "TOCSIN_RETRY_DELAYS_MS"),
        // Once accepted and then a panic at shutdown (the grace period overflowed an instant).
        ("TOCSIN_SHUTDOWN_GRACE_SECS", "18446744073709551615", "TOCSIN_SHUTDOWN_GRACE_SECS"),
        ("TOCSIN_RETENTION_DAYS", "106751991167301", "TOCSIN_RETENTION_DAYS"),
        ("TOCSIN_ALLOW_DESTINATIONS", "10.0.0.0/99", "TOCSIN_ALLOW_DESTINATIONS"),
        ("TOCSIN_PROFILE", "nosuch", "TOCSIN_PROFILE"),
        ("TOCSIN_PROFILE_DIR", "/nonexistent/profiles", "TOCSIN_PROFILE_DIR"),
    ] {
        let out = tocsin(dir.path()).arg("serve").env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(name), "{err}");
        if var == "TOCSIN_MASTER_KEY" {
            assert!(!err.contains(value), "the key is not echoed");
        }
    }
    let out = tocsin(dir.path()).args(["serve", "--listen", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(from command line)"));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "listen = 5\n").unwrap();
    let out = tocsin(dir.path()).args(["serve", "--config"]).arg(&cfg).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[test]
fn precedence_flag_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let (p_flag, p_env, p_file) = (free_port(), free_port(), free_port());
    let cfg = dir.path().join("tocsin.toml");
    std::fs::write(&cfg, format!("listen = \"127.0.0.1:{p_file}\"\ndata_dir = \"from-file\"\n")).unwrap();
    let mut child = tocsin(dir.path())
        .args(["serve", "--config", cfg.to_str().unwrap(), "--listen", &format!("127.0.0.1:{p_flag}")])
        .env("TOCSIN_LISTEN", format!("127.0.0.1:{p_env}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut listening = false;
    while Instant::now() < deadline && !listening {
        listening = std::net::TcpStream::connect(("127.0.0.1", p_flag)).is_ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    let env_port_used = std::net::TcpStream::connect(("127.0.0.1", p_env)).is_ok();
    unsafe_kill_term(child.id());
    let _ = child.wait();
    assert!(listening, "did not listen on the flag's port");
    assert!(!env_port_used);
    assert!(dir.path().join("from-file/tocsin.db").exists(), "data_dir from the file applies");
}

#[test]
fn token_commands_and_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let out = tocsin(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tocsin(dir.path()).args(["token", "create", "--tenant", "acme", "--role", "viewer"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("tsn_") && token.len() > 40, "{token}");
    let out = tocsin(dir.path()).args(["token", "list", "--tenant", "acme"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listing.contains("viewer") && !listing.contains(&token), "{listing}");
    let id = listing.split_whitespace().next().unwrap().to_string();

    let port = free_port();
    let child = serve(dir.path(), port);
    assert_eq!(get(port, "/api/v1/webhooks", &token), 200);
    let out = tocsin(dir.path()).args(["token", "revoke", "--tenant", "acme", &id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(port, "/api/v1/webhooks", &token), 401);
    stop(child);

    let out = tocsin(dir.path()).args(["token", "create", "--role", "root"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role"));

    // From another directory the server's data is not found: nothing is created, and the
    // message says how to point at it; with --data-dir it works from anywhere.
    let elsewhere = tempfile::tempdir().unwrap();
    for args in [&["token", "create", "--role", "viewer"][..], &["token", "list"], &["tenant", "profile"]] {
        let out = tocsin(elsewhere.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no Tocsin database at") && err.contains("--data-dir"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: no token printed");
    }
    assert!(!elsewhere.path().join("tocsin-data").exists(), "no empty store was made");
    let data_dir = dir.path().join("tocsin-data");
    let out = tocsin(elsewhere.path())
        .args(["token", "create", "--role", "viewer", "--data-dir", data_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn tenant_profile_command() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tocsin(dir.path()).arg("migrate").output().unwrap().status.success());
    let run = |args: &[&str]| {
        let out = tocsin(dir.path()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, shown, err) = run(&["tenant", "profile", "--tenant", "acme"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.contains("profile tocsin (the deployment's default)"), "{shown}");
    let (code, set, err) = run(&["tenant", "profile", "--tenant", "acme", "netrecon"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(set.contains("now speaks profile netrecon"), "{set}");
    assert!(run(&["tenant", "profile", "--tenant", "acme"]).1.contains("profile netrecon (its own)"));
    assert!(run(&["tenant", "profile", "--tenant", "other"]).1.contains("profile tocsin"), "tenants are apart");
    let (code, _, err) = run(&["tenant", "profile", "--tenant", "acme", "nosuch"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no profile named 'nosuch'") && err.contains("netrecon"), "{err}");
    let (code, cleared, _) = run(&["tenant", "profile", "--tenant", "acme", "--clear"]);
    assert_eq!(code, Some(0));
    assert!(cleared.contains("now speaks profile tocsin"), "{cleared}");
    // The deployment's default, and a profile file with a mistake, named in one line.
    let out =
        tocsin(dir.path()).args(["tenant", "profile", "--tenant", "acme", "--profile", "gophish"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("profile gophish (the deployment's default)"));
    let custom = dir.path().join("profiles/broken");
    std::fs::create_dir_all(&custom).unwrap();
    std::fs::write(
        custom.join("profile.toml"),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/gophish/profile.toml"))
            .unwrap()
            .replace("name = \"gophish\"", "name = \"broken\"")
            .replace("sha256=hex", "md5"),
    )
    .unwrap();
    let out =
        tocsin(dir.path()).args(["serve"]).env("TOCSIN_PROFILE_DIR", dir.path().join("profiles")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("profile broken") && err.contains("signature.format"), "{err}");
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "token"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("TOCSIN_DATABASE_URL"));
}

/// Starts `tocsin listen --port PORT ARGS…` with its output piped, and waits until it listens.
fn listen(dir: &std::path::Path, port: u16, args: &[&str]) -> Child {
    let mut command = tocsin(dir);
    command.args(["listen", "--port", &port.to_string()]).args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "listen did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn listen_prints_deliveries_checks_signatures_and_rehearses_failures() {
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut child = listen(dir.path(), port, &["--secret", secret, "--json", "--fail-first", "1"]);
    let body = r#"{"event":"alert.created","emitted_at":"2026-05-08T14:30:45Z","event_ref":"r-1","tenant_id":"default","data":{}}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let seed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let ts = "1778250645";
    let standard = tocsin::signing::standard_signature(
        &tocsin::domain::secret::Secret::from_stored(secret.as_bytes().to_vec()),
        "r-1",
        1778250645,
        body.as_bytes(),
    );
    let post = |sig: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json"])
            .args(["-H", &format!("X-Tocsin-Signature: {sig}"), "-H", "webhook-id: r-1"])
            .args(["-H", &format!("webhook-timestamp: {ts}"), "-H", &format!("webhook-signature: {standard}")])
            .args(["-H", "X-Tocsin-Delivery: d-1", "--data-binary", body])
            .arg(format!("http://127.0.0.1:{port}/hook"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(post(&seed), "500", "--fail-first 1");
    assert_eq!(post(&seed), "200");
    assert_eq!(post("sha256=00"), "200");
    let stats = Command::new("curl").arg("-s").arg(format!("http://127.0.0.1:{port}/_tocsin/stats")).output().unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["unique"], 1);
    assert_eq!(stats["duplicates"], 2);
    assert_eq!(stats["bad_signatures"], 1);
    assert!(stats["latency_ms"].is_object(), "{stats}");
    // The cheap form a load test polls: the same counts, no percentiles.
    let counts =
        Command::new("curl").arg("-s").arg(format!("http://127.0.0.1:{port}/_tocsin/counts")).output().unwrap();
    let counts: serde_json::Value = serde_json::from_slice(&counts.stdout).unwrap();
    for field in ["requests", "unique", "duplicates", "bad_signatures", "first_ms", "last_ms"] {
        assert_eq!(counts[field], stats[field], "{field}: {counts}");
    }
    assert!(counts.get("latency_ms").is_none(), "{counts}");
    unsafe_kill_term(child.id());
    let _ = child.wait();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push(serde_json::from_str::<serde_json::Value>(&line.unwrap()).unwrap());
    }
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["event"], "alert.created");
    assert_eq!(lines[0]["event_ref"], "r-1");
    assert_eq!(lines[0]["delivery"], "d-1");
    assert_eq!(lines[0]["signature"], "ok");
    assert_eq!(lines[0]["standard_signature"], "ok");
    assert!(lines[0]["latency_ms"].is_number());
    assert_eq!(lines[2]["signature"], "BAD");
}

/// What a person testing an integration sees: the payload and the status answered; a body
/// without the envelope (Slack's) named by its headers; a delivery signed during a rotation
/// checked against the previous-secret header; deliveries passed on to a local app, whose answer
/// is the answer; an app that is down answered with 502, saying why.
#[test]
fn listen_shows_payloads_forwards_and_knows_rotations() {
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let (app_port, port, text_port, closed) = (free_port(), free_port(), free_port(), free_port());
    let mut app = listen(dir.path(), app_port, &["--json", "--status", "201"]);
    let forward = format!("http://127.0.0.1:{app_port}/app");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut child = listen(dir.path(), port, &["--secret", secret, "--json", "--forward", &forward]);
    let body = r#"{"text":"[HIGH] Email quarantined","blocks":[]}"#;
    let sign = |key: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let post = |port: u16| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json"])
            .args(["-H", "X-Tocsin-Event: email.quarantined", "-H", "webhook-id: ref-9"])
            .args(["-H", &format!("X-Tocsin-Signature: {}", sign("whsec_the_new_secret_after_rotation"))])
            .args(["-H", &format!("X-Tocsin-Signature-Previous: {}", sign(secret)), "--data-binary", body])
            .arg(format!("http://127.0.0.1:{port}/hook"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(post(port), "201", "the local app's answer is the answer");
    unsafe_kill_term(child.id());
    let _ = child.wait();
    unsafe_kill_term(app.id());
    let _ = app.wait();
    let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["event"], "email.quarantined", "{line}");
    assert_eq!(line["event_ref"], "ref-9", "{line}");
    assert_eq!(line["status"], 201, "{line}");
    assert_eq!(line["signature"], "ok (previous secret)", "{line}");
    assert_eq!(line["payload"]["text"], "[HIGH] Email quarantined", "{line}");
    let passed = BufReader::new(app.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let passed: serde_json::Value = serde_json::from_str(&passed).unwrap();
    assert_eq!(passed["payload"]["text"], "[HIGH] Email quarantined", "the app got the body: {passed}");
    assert_eq!(passed["event_ref"], "ref-9", "and the headers: {passed}");

    // Printed for people: the summary line with the status, then the payload indented; an app
    // that is down is a 502 that says why.
    let down = format!("http://127.0.0.1:{closed}/");
    let mut text = listen(dir.path(), text_port, &["--secret", secret, "--forward", &down]);
    assert_eq!(post(text_port), "502");
    unsafe_kill_term(text.id());
    let _ = text.wait();
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut text.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(printed.contains("email.quarantined") && printed.contains("ref=ref-9"), "{printed}");
    assert!(printed.contains("answered=502") && printed.contains("cannot forward"), "{printed}");
    assert!(printed.contains("\n    {\n      \"blocks\": []"), "the payload, indented: {printed}");
}

#[test]
fn listen_reads_a_profiles_headers() {
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = "your-hmac-secret";
    let out = tocsin(dir.path()).args(["listen", "--profile", "nosuch"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no profile named 'nosuch'"));
    let mut child = listen(dir.path(), port, &["--secret", secret, "--json", "--profile", "netrecon"]);
    let body = r#"{"id":"evt-1","event":"alert.created","timestamp":"2026-03-15T10:30:00Z","tenant_id":"t","data":{}}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let seed = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json"])
        .args(["-H", &format!("X-NetRecon-Signature: {seed}"), "-H", "X-NetRecon-Delivery: d-7"])
        .args(["--data-binary", body])
        .arg(format!("http://127.0.0.1:{port}/hook"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    unsafe_kill_term(child.id());
    let _ = child.wait();
    let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (line["signature"].clone(), line["delivery"].clone()),
        (serde_json::json!("ok"), serde_json::json!("d-7"))
    );
}

/// A `curl` call: the status, or 0 when the connection closed without an answer.
fn curl(port: u16, args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}/api/v1/webhooks"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

/// With stderr on a full disk every log line fails to be written: the server still starts,
/// answers every request (none is dropped), and stops cleanly.
#[test]
fn a_log_that_cannot_be_written_takes_nothing_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let token = "tsn_cli_admin_token_0123456789abcdef";
    let mut child = tocsin(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--log", "debug"])
        .env("TOCSIN_ADMIN_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "tocsin serve exited at start-up");
        assert!(Instant::now() < deadline, "tocsin serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let auth = format!("Authorization: Bearer {token}");
    let body = r#"{"name": "SOC", "url": "https://siem.example.com/hook"}"#;
    let created = curl(port, &["-H", &auth, "-H", "Content-Type: application/json", "-d", body]);
    assert_eq!(created, 201, "created and answered");
    let refused = curl(port, &["-H", &auth, "-H", "Content-Type: application/json", "-d", "{"]);
    assert_eq!(refused, 400, "a bad request is answered too");
    assert_eq!(curl(port, &["-H", "Authorization: Bearer wrong"]), 401);
    unsafe_kill_term(child.id());
    assert!(child.wait().unwrap().success(), "a clean exit");
}

/// Debug logging on PostgreSQL never shows statement parameters (header values, URLs).
#[test]
#[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
fn debug_logs_never_show_statement_parameters() {
    if pg::pg_server_url().is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let database = runtime.block_on(pg::TestDatabase::create());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("stderr.log");
    let token = "tsn_cli_admin_token_0123456789abcdef";
    let mut child = tocsin(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--log", "debug", "--database", &database.url])
        .env("TOCSIN_ADMIN_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(listening(port), "tocsin serve did not start");
    let auth = format!("Authorization: Bearer {token}");
    let body = r#"{"name": "SOC", "url": "https://siem.example.com/hook?key=url-secret-77", "headers": {"X-Api-Key": "header-secret-42"}}"#;
    assert_eq!(curl(port, &["-H", &auth, "-H", "Content-Type: application/json", "-d", body]), 201);
    unsafe_kill_term(child.id());
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("DEBUG"), "debug logging was on: {logged}");
    for secret in ["header-secret-42", "url-secret-77"] {
        assert!(!logged.contains(secret), "{secret} in the log");
    }
    drop(database);
}

/// A wrong PostgreSQL password is said as PostgreSQL says it (not "db error"), without the
/// password.
#[test]
#[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
fn a_wrong_postgres_password_is_named() {
    let Some(url) = pg::pg_server_url() else { return };
    let (user, rest) = url.split_once("://").unwrap().1.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let wrong = format!("postgres://{user}:not-the-password-42@{rest}");
    let dir = tempfile::tempdir().unwrap();
    let out = tocsin(dir.path()).args(["migrate", "--database", &wrong]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password-42") && !err.contains("db error"), "{err}");
}

/// `tocsin listen --public-key whpk_…` checks an ed25519 webhook's `v1a` signatures.
#[test]
fn listen_checks_ed25519_signatures_with_the_public_key() {
    use tocsin::domain::secret::Secret;
    use tocsin::signing::{ed25519_signature_bytes, SigningKeys};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = Secret::generate_ed25519();
    let public = secret.ed25519_public_key().unwrap();
    let out = tocsin(dir.path()).args(["listen", "--public-key", "whpk_nope"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--public-key"));
    let mut child = listen(dir.path(), port, &["--public-key", &public, "--json", "--no-payload"]);
    let body = r#"{"event":"alert.created","event_ref":"r-9","data":{}}"#;
    let keys = SigningKeys::new(&secret);
    let good = ed25519_signature_bytes(&keys, "r-9", b"1778250645", body.as_bytes()).unwrap();
    let other =
        ed25519_signature_bytes(&SigningKeys::new(&Secret::generate_ed25519()), "r-9", b"1778250645", body.as_bytes())
            .unwrap();
    for sig in [good, other] {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-H", "webhook-id: r-9", "-H", "webhook-timestamp: 1778250645"])
            .args(["-H", &format!("webhook-signature: {}", String::from_utf8_lossy(&sig)), "--data-binary", body])
            .arg(format!("http://127.0.0.1:{port}/hook"))
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    unsafe_kill_term(child.id());
    let _ = child.wait();
    let lines: Vec<serde_json::Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines[0]["standard_signature"], "ok", "{lines:?}");
    assert_eq!(lines[1]["standard_signature"], "BAD", "another key's signature: {lines:?}");
}

/// `TOCSIN_LOG_FORMAT=json`: every line on stderr is one JSON object, a request's lines carry
/// its request id (the caller's `X-Request-Id`, answered back), and no colour codes are written
/// to a pipe.
#[test]
fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tocsin(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("TOCSIN_LOG_FORMAT", "json")
        .env("TOCSIN_LOG", "warn,tocsin=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(listening(port), "tocsin serve did not start");
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-H", "X-Request-Id: req-test-42"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(headers.contains("x-request-id: req-test-42"), "{headers}");
    unsafe_kill_term(child.id());
    child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains('\u{1b}'), "no colour codes into a pipe: {stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "listening"), "{stderr}");
    let request = lines.iter().find(|l| l["fields"]["message"] == "request").unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(request["span"]["request_id"], "req-test-42", "{request}");
    assert_eq!(request["fields"]["status"], 200);
}
