//! HTTP(S) delivery: one pooled hyper client (HTTP/1.1 keep-alive, HTTP/2 by ALPN, rustls),
//! behind a connector that applies the SSRF policy to the address it actually connects to.
//! Redirects are never followed; `timeout` bounds the whole exchange.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::ssrf::AddressPolicy;

/// How many bytes of a response are kept for the delivery log.
pub const RESPONSE_EXCERPT: usize = 4096;
/// How much of a response body is read (so the connection can be reused); the rest is dropped.
const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// Resolves host names; a trait so tests can map a name to any address.
pub trait Resolve: Send + Sync + 'static {
    fn resolve(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;
}

/// The system resolver.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(
        &self,
        host: String,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    }
}

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Refused(String),
    #[error("DNS lookup of {host} failed: {source}")]
    Dns { host: String, source: std::io::Error },
    #[error("connection to {addr} failed: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("connection to {0} timed out")]
    Timeout(SocketAddr),
    #[error("{0} has no host")]
    NoHost(String),
}

/// Resolves, checks each address against the policy, connects, and checks the peer again.
#[derive(Clone)]
pub struct GuardedConnector {
    policy: Arc<AddressPolicy>,
    resolver: Arc<dyn Resolve>,
}

impl GuardedConnector {
    pub fn new(policy: AddressPolicy, resolver: Arc<dyn Resolve>) -> Self {
        Self { policy: Arc::new(policy), resolver }
    }

    /// The addresses of `host:port` the policy allows, in resolver order; the refusal reason
    /// when it allows none. Every transport (HTTP, syslog TCP/TLS/UDP) goes through here.
    pub async fn allowed_addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self
                .resolver
                .resolve(host.to_string(), port)
                .await
                .map_err(|source| ConnectError::Dns { host: host.to_string(), source })?,
        };
        let mut refusal = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.policy.check(a.ip()) {
                Ok(()) => true,
                Err(why) => {
                    refusal = Some(why);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refusal) {
            (true, Some(why)) => Err(ConnectError::Refused(why)),
            (true, None) => Err(ConnectError::NoHost(host.to_string())),
            _ => Ok(allowed),
        }
    }

    /// Checks an address actually connected to (the peer of a socket).
    pub fn check_peer(&self, peer: SocketAddr) -> Result<(), ConnectError> {
        self.policy.check(peer.ip()).map_err(ConnectError::Refused)
    }

    /// Connects to `host:port` if policy allows one of its addresses.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let mut last = ConnectError::NoHost(host.to_string());
        for addr in self.allowed_addresses(host, port).await? {
            match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let peer = stream.peer_addr().map_err(|source| ConnectError::Io { addr, source })?;
                    self.check_peer(peer)?;
                    stream.set_nodelay(true).ok();
                    return Ok(stream);
                }
                Ok(Err(source)) => last = ConnectError::Io { addr, source },
                Err(_) => last = ConnectError::Timeout(addr),
            }
        }
        Err(last)
    }
}

impl tower::Service<Uri> for GuardedConnector {
    type Response = Plain;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| ConnectError::NoHost(uri.to_string()))?.to_string();
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
            Ok(Plain(TokioIo::new(this.connect(&host, port).await?)))
        })
    }
}

/// A connection that tells the client nothing about itself. hyper-util's own TCP stream hands
/// the client its peer and local addresses, which are then copied into the extensions of every
/// response (an allocation and a map insert per delivery) for nobody here to read.
pub struct Plain(TokioIo<TcpStream>);

impl hyper_util::client::legacy::connect::Connection for Plain {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

impl hyper::rt::Read for Plain {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Plain {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

/// The outcome of one HTTP exchange that produced a response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body_excerpt: Vec<u8>,
    /// The response's headers as a JSON object (see [`headers_json`]).
    pub headers: String,
}

/// Response headers kept per attempt, at most.
const RESPONSE_HEADERS_KEPT: usize = 32;
/// ... and at most this many bytes of each value.
const RESPONSE_HEADER_VALUE_BYTES: usize = 256;

/// A response's headers as a JSON object for the delivery log: the first
/// [`RESPONSE_HEADERS_KEPT`], values cut to [`RESPONSE_HEADER_VALUE_BYTES`], cookies masked (a
/// receiver's session is none of the log's readers' business).
pub fn headers_json(headers: &axum::http::HeaderMap) -> String {
    use crate::domain::text::{clip_chars, push_json_string};
    // Written by hand: this runs for every attempt, and a serde_json map cost the Tokio side a
    // few per cent of its CPU in scenario (a).
    let mut out = String::with_capacity(32 + 48 * headers.keys_len().min(RESPONSE_HEADERS_KEPT));
    out.push('{');
    let mut value = String::new();
    for (i, name) in headers.keys().take(RESPONSE_HEADERS_KEPT).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, name.as_str());
        out.push(':');
        value.clear();
        for (j, v) in headers.get_all(name).iter().enumerate() {
            if j > 0 {
                value.push_str(", ");
            }
            if name == axum::http::header::SET_COOKIE {
                value.push('…');
            } else {
                value.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        if value.len() > RESPONSE_HEADER_VALUE_BYTES {
            value = clip_chars(&value, RESPONSE_HEADER_VALUE_BYTES);
        }
        push_json_string(&mut out, &value);
    }
    out.push('}');
    out
}

/// Why an exchange produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

type HttpsConnector = hyper_rustls::HttpsConnector<GuardedConnector>;

/// The shared HTTP client of the dispatcher.
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpsConnector, Full<Bytes>>,
}

/// Root certificates: the bundled Mozilla roots plus an optional extra PEM bundle (on-premises
/// CAs); and an optional client certificate (PEM chain and key) for receivers that ask for one.
pub fn tls_config(extra_ca_pem: Option<&[u8]>, client: Option<(&[u8], &[u8])>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        use rustls::pki_types::pem::PemObject;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            roots.add(cert?)?;
            added += 1;
        }
        anyhow::ensure!(added > 0, "the extra CA bundle holds no certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_slice_iter(chain).collect::<Result<Vec<_>, _>>()?;
            anyhow::ensure!(!certs.is_empty(), "the client certificate file holds no certificate");
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key)?;
            builder.with_client_auth_cert(certs, key)?
        }
    })
}

impl HttpTransport {
    /// `max_in_flight`: the most requests the caller has in flight at once. That many connections
    /// to one host may be kept idle: fewer, and a burst that used more closes the extra ones when
    /// it ends and opens new ones at the next (a fan-out to ten webhooks on one receiver, 64 each,
    /// opened and closed about 300 connections a second with a bound of 512).
    pub fn new(connector: GuardedConnector, tls: rustls::ClientConfig, max_in_flight: usize) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(max_in_flight)
            .build(https);
        Self { client }
    }

    /// POSTs `body` with `headers`; the whole exchange is bounded by `timeout`.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<HttpResponse, SendError> {
        // Built in place: the builder moves its parts on every header it is given.
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        let map = request.headers_mut();
        map.reserve(headers.len());
        for (name, value) in headers {
            map.append(name, value);
        }
        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(request).await.map_err(classify)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let headers = headers_json(response.headers());
            let body = Limited::new(response.into_body(), RESPONSE_READ_LIMIT);
            let mut excerpt = match body.collect().await {
                Ok(collected) => collected.to_bytes().to_vec(),
                Err(_) => Vec::new(),
            };
            excerpt.truncate(RESPONSE_EXCERPT);
            Ok(HttpResponse { status, retry_after, body_excerpt: excerpt, headers })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout(started.elapsed().as_millis() as u64)),
        }
    }
}

/// Turns a client error into a message naming the cause (refused by the guard, refused or reset
/// by the peer, TLS, DNS…).
fn classify(e: hyper_util::client::legacy::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(ConnectError::Refused(why)) = err.downcast_ref::<ConnectError>() {
            return SendError::Refused(why.clone());
        }
        source = err.source();
    }
    SendError::Failed(crate::domain::text::error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_headers_are_kept_capped_with_cookies_masked() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h.append("set-cookie", "session=s3cr3t; HttpOnly".parse().unwrap());
        h.append("vary", "accept".parse().unwrap());
        h.append("vary", "origin".parse().unwrap());
        h.insert("x-long", "a".repeat(1000).parse().unwrap());
        let kept: serde_json::Value = serde_json::from_str(&headers_json(&h)).unwrap();
        assert_eq!(kept["content-type"], "application/json");
        assert_eq!(kept["set-cookie"], "…");
        assert_eq!(kept["vary"], "accept, origin");
        assert_eq!(kept["x-long"].as_str().unwrap().chars().count(), RESPONSE_HEADER_VALUE_BYTES);
        for i in 0..100 {
            h.insert(axum::http::HeaderName::try_from(format!("x-h{i}")).unwrap(), "v".parse().unwrap());
        }
        let kept: serde_json::Value = serde_json::from_str(&headers_json(&h)).unwrap();
        assert!(kept.as_object().unwrap().len() <= RESPONSE_HEADERS_KEPT);
        assert!(!headers_json(&h).contains("s3cr3t"));
    }

    /// Maps every name to one address, as a hostile DNS server would.
    struct FixedResolver(IpAddr);

    impl Resolve for FixedResolver {
        fn resolve(
            &self,
            _: String,
            port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>> {
            let addr = SocketAddr::new(self.0, port);
            Box::pin(async move { Ok(vec![addr]) })
        }
    }

    fn transport(resolves_to: &str, allow: Vec<ipnet::IpNet>) -> HttpTransport {
        let connector =
            GuardedConnector::new(AddressPolicy::new(allow), Arc::new(FixedResolver(resolves_to.parse().unwrap())));
        HttpTransport::new(connector, tls_config(None, None).unwrap(), 8)
    }

    async fn post(t: &HttpTransport, url: &str) -> Result<HttpResponse, SendError> {
        t.post(&url.parse().unwrap(), vec![], Bytes::from_static(b"{}"), Duration::from_secs(30)).await
    }

    #[tokio::test]
    async fn a_name_resolving_to_metadata_or_loopback_is_refused() {
        for (ip, why) in [("169.254.169.254", "link-local"), ("127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private")]
        {
            let err = post(&transport(ip, vec![]), "http://innocent.example/hook").await.unwrap_err();
            match err {
                SendError::Refused(msg) => assert!(msg.contains(why) && msg.contains("SSRF"), "{msg}"),
                other => panic!("expected a refusal for {ip}, got {other:?}"),
            }
        }
        let err = post(&transport("8.8.8.8", vec![]), "http://169.254.169.254/latest/meta-data").await.unwrap_err();
        assert!(matches!(err, SendError::Refused(_)), "a literal address skips DNS but not the guard: {err:?}");
    }

    #[tokio::test]
    async fn a_burst_as_large_as_the_bound_reuses_its_connections() {
        // A receiver that counts the connections it accepts.
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), service).await.ok();
                });
            }
        });
        let connector = GuardedConnector::new(
            AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
            Arc::new(FixedResolver("127.0.0.1".parse().unwrap())),
        );
        let t = HttpTransport::new(connector, tls_config(None, None).unwrap(), 40);
        let url = format!("http://127.0.0.1:{port}/hook");
        for _ in 0..3 {
            let burst: Vec<_> = (0..40).map(|_| post(&t, &url)).collect();
            for r in futures_util::future::join_all(burst).await {
                assert_eq!(r.unwrap().status, 200);
            }
        }
        let n = accepted.load(Ordering::SeqCst);
        assert!(n <= 40, "three bursts of 40 opened {n} connections: the later ones must reuse the first's");
    }

    #[tokio::test]
    async fn allowed_network_connects_and_a_reset_is_a_failure() {
        // A peer that accepts and closes at once: the attempt fails with a clear error, never panics.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                drop(sock);
            }
        });
        let t = transport("127.0.0.1", vec!["127.0.0.0/8".parse().unwrap()]);
        let err = post(&t, &format!("http://sink.test:{port}/hook")).await.unwrap_err();
        assert!(matches!(err, SendError::Failed(_)), "{err:?}");
        // Nothing listening: connection refused.
        drop(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let err = post(&t, "http://127.0.0.1:9/hook").await.unwrap_err();
        assert!(err.to_string().contains("refused") || err.to_string().contains("connect"), "{err}");
    }
}
