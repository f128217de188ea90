//! Webhook deliveries over HTTPS to a real TLS receiver on 127.0.0.1 whose certificate comes from
//! a private CA: trusted through `TOCSIN_EXTRA_CA_FILE`, refused (and logged) without it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::{make_certs, Backend, TestApp, ADMIN_TOKEN};

/// One request as the TLS receiver read it.
struct Request {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> String {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
    }
}

/// An HTTP/1.1 receiver behind rustls, with the certificate `make_certs` wrote into `dir`. It
/// answers every request with 200 and keeps the connection open for the next.
fn start_tls_receiver(dir: &Path) -> (u16, Arc<Mutex<Vec<Request>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(16) {
            let Ok(tcp) = tcp else { continue };
            let (config, store) = (config.clone(), store.clone());
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                // Requests on this connection until the client closes it (or the handshake fails).
                loop {
                    let mut headers = Vec::new();
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            headers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                    let length = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    store.lock().unwrap().push(Request { headers, body });
                    let stream = reader.get_mut();
                    if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
                        return;
                    }
                    let _ = stream.flush();
                }
            });
        }
    });
    (port, received)
}

both_backends!(deliveries_over_https_trust_the_extra_ca, https_on);
async fn https_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_certs(dir.path());
    let (port, received) = start_tls_receiver(dir.path());
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hook = json!({"name": "tls", "url": format!("https://localhost:{port}/hook"), "secret": secret,
                      "event_types": ["*"], "retry_count": 0});

    // Trusted through the extra CA: delivered, both signatures verify over TLS.
    let app = TestApp::delivering(backend, |s| s.extra_ca_file = Some(ca.clone())).await;
    let (s, b) = app.post("/api/v1/webhooks", ADMIN_TOKEN, hook.clone()).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    app.publish("alert.created", json!({"n": 1}), Some("over-tls")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1, "one delivery over TLS");
        let r = &got[0];
        assert!(String::from_utf8_lossy(&r.body).contains("over-tls"));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&r.body);
        assert_eq!(r.header("x-tocsin-signature"), format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
        let headers: reqwest::header::HeaderMap = r
            .headers
            .iter()
            .map(|(k, v)| (k.parse::<reqwest::header::HeaderName>().unwrap(), v.parse().unwrap()))
            .collect();
        assert!(standardwebhooks::Webhook::new(secret).unwrap().verify(&r.body, &headers).is_ok());
    }
    let log = app
        .poll(&format!("/api/v1/webhooks/{id}/deliveries"), Duration::from_secs(10), |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 1)
        })
        .await;
    assert_eq!(log["data"][0]["success"], true, "{log}");

    // Without the extra CA the certificate is not trusted: nothing is sent, the failure is logged.
    let untrusting = TestApp::delivering(backend, |_| {}).await;
    let (s, b) = untrusting.post("/api/v1/webhooks", ADMIN_TOKEN, hook).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    untrusting.publish("alert.created", json!({"n": 2}), Some("untrusted")).await;
    let log = untrusting
        .poll(&format!("/api/v1/webhooks/{id}/deliveries"), Duration::from_secs(10), |v| {
            v["data"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    let attempt = &log["data"][0];
    assert_eq!(attempt["success"], false, "{log}");
    let error = attempt["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate"), "the error names the certificate problem: {error}");
    assert_eq!(received.lock().unwrap().len(), 1, "nothing reached the receiver without trust");
}
