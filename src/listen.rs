//! `tocsin listen`: a local webhook receiver for people testing their integration, and the sink
//! of the load test. It prints each delivery (event, event_ref, attempt id, latency, the status it
//! answered, whether both signatures verify, with the current or the previous secret) and its
//! payload, indented; it can pass deliveries on to a local app (`--forward`, answering with that
//! app's answer) and rehearse failures (`--status`, `--fail-first`, `--delay-ms`). Every format
//! sent over HTTP is understood: the event and event_ref come from the envelope, or from the
//! headers for bodies without one (Slack, Teams, CEF, Splunk HEC, a product's own shape).
//! With `--quiet` it only counts, and serves its counts at `GET /_tocsin/stats` (with latency
//! percentiles) and `GET /_tocsin/counts` (without: cheap to poll).

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

use crate::domain::secret::Secret;
use crate::domain::time::now_ms;
use crate::signing::{verify_seed, verify_standard, SigningKeys};

#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Port to listen on (127.0.0.1)
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Address to bind (defaults to loopback)
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// The webhook's signing secret: check both signatures of every delivery
    #[arg(long)]
    pub secret: Option<String>,
    /// Prefix of the service's headers
    #[arg(long, default_value = "X-Tocsin")]
    pub header_prefix: String,
    /// An ed25519 webhook's public key (whpk_…): check its `webhook-signature: v1a,…` signatures
    #[arg(long)]
    pub public_key: Option<String>,
    /// Read the headers a product profile names (phishnet, pentest, netrecon, selki, gophish)
    /// instead of the X-Tocsin ones
    #[arg(long)]
    pub profile: Option<String>,
    /// Print one JSON object per delivery (with its payload)
    #[arg(long)]
    pub json: bool,
    /// Print only the one-line summary of each delivery, not its payload
    #[arg(long)]
    pub no_payload: bool,
    /// Pass every delivery on to this URL (a local app: http://127.0.0.1:3000/hook) and answer
    /// with its answer
    #[arg(long)]
    pub forward: Option<String>,
    /// Print nothing; count (see GET /_tocsin/stats)
    #[arg(long)]
    pub quiet: bool,
    /// Answer every delivery with this HTTP status
    #[arg(long, default_value_t = 200)]
    pub status: u16,
    /// Answer the first N deliveries with 500, then --status
    #[arg(long, default_value_t = 0)]
    pub fail_first: u64,
    /// Wait this long before answering
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    event: String,
    #[serde(default)]
    event_ref: String,
    #[serde(default)]
    emitted_at: Option<String>,
    #[serde(default)]
    data: Option<BenchData>,
}

/// The load test stamps each event with the time it was published.
#[derive(Deserialize)]
struct BenchData {
    #[serde(default)]
    bench_sent_us: Option<i64>,
}

#[derive(Default)]
struct Counts {
    seen: HashSet<String>,
    duplicates: u64,
    latencies_us: Vec<u32>,
    bad_signatures: u64,
    first_ms: Option<i64>,
    last_ms: i64,
}

struct Listener {
    args: ListenArgs,
    /// The secret's signing keys, set up once (each request is checked with both).
    keys: Option<SigningKeys>,
    seed_header: String,
    /// During a rotation: the header signed with the previous secret.
    previous_header: Option<String>,
    /// The headers with the event type and the attempt's id, if the profile sends them.
    event_header: Option<String>,
    delivery_header: Option<String>,
    forward: Option<Forward>,
    /// `--public-key`, decoded: the 32 bytes of an Ed25519 public key.
    public_key: Option<Vec<u8>>,
    /// Whether deliveries carry the Standard Webhooks headers (Tocsin's own do): then one
    /// without them counts as a bad signature.
    expects_standard: bool,
    requests: AtomicU64,
    counts: Mutex<Counts>,
    out: Mutex<std::io::BufWriter<std::io::Stdout>>,
}

fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

fn parse_rfc3339_us(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

fn percentile(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

/// How a signature checked: with the secret given, with it in the previous-secret header (the
/// webhook's secret was rotated since), not at all (no `--secret`), or not.
fn seed_check(l: &Listener, keys: &SigningKeys, body: &[u8], headers: &HeaderMap) -> &'static str {
    // A profile may send the hex digest without the `sha256=` prefix.
    let verifies = |value: &str| {
        !value.is_empty() && (verify_seed(keys, body, value) || verify_seed(keys, body, &format!("sha256={value}")))
    };
    if verifies(header_of(headers, &l.seed_header)) {
        "ok"
    } else if l.previous_header.as_deref().is_some_and(|h| verifies(header_of(headers, h))) {
        "ok (previous secret)"
    } else {
        "BAD"
    }
}

/// `whpk_` + base64 of 32 bytes, as the API shows an ed25519 webhook's key.
fn parse_public_key(raw: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let key = raw
        .strip_prefix(crate::domain::secret::WHPK)
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter(|k| k.len() == 32);
    key.ok_or_else(|| anyhow::anyhow!("--public-key: give the webhook's public_key as the API shows it (whpk_…)"))
}

/// Whether a `v1a,…` signature in `webhook-signature` verifies with `key` over
/// `{webhook-id}.{webhook-timestamp}.{body}` (during a rotation the header carries two).
fn verify_v1a(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    use base64::Engine as _;
    let message = [
        header_of(headers, "webhook-id").as_bytes(),
        b".",
        header_of(headers, "webhook-timestamp").as_bytes(),
        b".",
        body,
    ]
    .concat();
    let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key);
    header_of(headers, "webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1a,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .any(|sig| public.verify(&message, &sig).is_ok())
}

/// A header's value as text ("" when absent or not text).
fn header_of<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn receive(
    State(l): State<Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived_us = now_us();
    let n = l.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| header_of(&headers, name);
    let env: Option<Envelope> = serde_json::from_slice(&body).ok();
    let (sig, std_sig) = match &l.keys {
        None if l.public_key.is_some() => {
            let ok = verify_v1a(l.public_key.as_deref().unwrap_or_default(), &headers, &body);
            ("absent", if ok { "ok" } else { "BAD" })
        }
        None => ("unchecked", "unchecked"),
        Some(keys) => {
            let ts = header("webhook-timestamp").parse::<i64>().unwrap_or_default();
            let standard = verify_standard(keys, header("webhook-id"), ts, &body, header("webhook-signature"));
            let standard = if header("webhook-signature").is_empty() && !l.expects_standard {
                "absent"
            } else if standard {
                "ok"
            } else {
                "BAD"
            };
            (seed_check(&l, keys, &body, &headers), standard)
        }
    };
    // The envelope's, else the headers' (a body in another shape: Slack, Teams, CEF, HEC).
    let from_env = |f: fn(&Envelope) -> &str| env.as_ref().map(f).filter(|v| !v.is_empty()).map(str::to_string);
    let event = from_env(|e| &e.event)
        .or_else(|| l.event_header.as_deref().map(header).filter(|v| !v.is_empty()).map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let event_ref = from_env(|e| &e.event_ref)
        .or_else(|| Some(header("webhook-id")).filter(|v| !v.is_empty()).map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let sent_us = env
        .as_ref()
        .and_then(|e| e.data.as_ref().and_then(|d| d.bench_sent_us))
        .or_else(|| env.as_ref().and_then(|e| e.emitted_at.as_deref()).and_then(parse_rfc3339_us));
    let latency_us = sent_us.map(|s| (arrived_us - s).max(0));
    {
        let mut c = l.counts.lock().expect("counts");
        if !c.seen.insert(event_ref.clone()) {
            c.duplicates += 1;
        }
        if let Some(us) = latency_us {
            c.latencies_us.push(us.min(u32::MAX as i64) as u32);
        }
        if sig == "BAD" || std_sig == "BAD" {
            c.bad_signatures += 1;
        }
        c.first_ms.get_or_insert(arrived_us / 1000);
        c.last_ms = arrived_us / 1000;
    }
    if l.args.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(l.args.delay_ms)).await;
    }
    let answer = match &l.forward {
        Some(f) => f.send(method, &uri, &headers, body.clone()).await,
        None => {
            let status = if n < l.args.fail_first { 500 } else { l.args.status };
            Answer {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body: Bytes::from_static(b"ok"),
                note: None,
            }
        }
    };
    if !l.args.quiet {
        let delivery = l.delivery_header.as_deref().map(header).unwrap_or_default();
        let latency_ms = latency_us.map(|u| u as f64 / 1000.0);
        let payload = || -> serde_json::Value {
            serde_json::from_slice(&body).unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into())
        };
        let mut text = if l.args.json {
            let mut line = serde_json::json!({"event": event, "event_ref": event_ref, "delivery": delivery,
                "latency_ms": latency_ms, "signature": sig, "standard_signature": std_sig, "bytes": body.len(),
                "status": answer.status.as_u16()});
            if !l.args.no_payload {
                line["payload"] = payload();
            }
            if let Some(note) = &answer.note {
                line["forward_error"] = note.as_str().into();
            }
            line.to_string()
        } else {
            let mut line = format!(
                "{}  {event:<24} ref={event_ref}  delivery={delivery}  latency={}  answered={}  signature={sig}  \
                 webhook-signature={std_sig}",
                crate::domain::time::rfc3339_ms(now_ms()),
                latency_ms.map(|m| format!("{m:.1}ms")).unwrap_or_else(|| "?".into()),
                answer.status.as_u16(),
            );
            if let Some(note) = &answer.note {
                line.push_str(&format!("  ({note})"));
            }
            if !l.args.no_payload {
                let shown = match payload() {
                    serde_json::Value::String(text) => text,
                    v => serde_json::to_string_pretty(&v).unwrap_or_default(),
                };
                for l in shown.lines() {
                    line.push_str("\n    ");
                    line.push_str(l);
                }
            }
            line
        };
        text.push('\n');
        if let Ok(mut out) = l.out.lock() {
            out.write_all(text.as_bytes()).ok();
            out.flush().ok();
        }
    }
    (answer.status, answer.body).into_response()
}

/// What `listen` answered a delivery.
struct Answer {
    status: StatusCode,
    body: Bytes,
    /// Why a forward failed, if it did.
    note: Option<String>,
}

/// Passes deliveries on to a local app, as they came (method, path and query appended to its
/// URL's, headers but the connection's own, body).
struct Forward {
    to: Uri,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Forward {
    fn new(url: &str) -> anyhow::Result<Self> {
        let to: Uri = url.parse().map_err(|e| anyhow::anyhow!("--forward: {url} is not a URL: {e}"))?;
        if to.scheme_str() != Some("http") || to.host().is_none() {
            anyhow::bail!("--forward: give an http:// URL of a local app, e.g. http://127.0.0.1:3000/hook");
        }
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        Ok(Self { to, client })
    }

    async fn send(&self, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Answer {
        let base = self.to.path().trim_end_matches('/');
        let extra = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let path = if extra == "/" && !base.is_empty() { base.to_string() } else { format!("{base}{extra}") };
        let target = format!("http://{}{}", self.to.authority().map(|a| a.as_str()).unwrap_or_default(), path);
        let mut request = match hyper::Request::builder().method(method).uri(&target).body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Answer::failed(format!("cannot forward to {target}: {e}")),
        };
        for (name, value) in headers {
            if !matches!(name.as_str(), "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive") {
                request.headers_mut().append(name.clone(), value.clone());
            }
        }
        let sent = tokio::time::timeout(Duration::from_secs(30), self.client.request(request)).await;
        match sent {
            Ok(Ok(response)) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(body) => Answer { status, body: body.to_bytes(), note: None },
                    Err(e) => Answer::failed(format!("{target} answered {status} but its body broke off: {e}")),
                }
            }
            Ok(Err(e)) => {
                Answer::failed(format!("cannot forward to {target}: {}", crate::domain::text::error_chain(&e)))
            }
            Err(_) => Answer::failed(format!("{target} did not answer within 30 s")),
        }
    }
}

impl Answer {
    /// The app could not be reached: the sender sees 502 and retries, as it would for any endpoint.
    fn failed(note: String) -> Self {
        Self { status: StatusCode::BAD_GATEWAY, body: Bytes::from(note.clone()), note: Some(note) }
    }
}

/// The counts so far, without the latency percentiles.
fn count_fields(l: &Listener, c: &Counts) -> serde_json::Value {
    serde_json::json!({
        "requests": l.requests.load(Ordering::Relaxed),
        "unique": c.seen.len(),
        "duplicates": c.duplicates,
        "bad_signatures": c.bad_signatures,
        "first_ms": c.first_ms,
        "last_ms": c.last_ms,
    })
}

/// The counts and the latency percentiles (sorts every latency seen: ask once, at the end).
async fn stats(State(l): State<Arc<Listener>>) -> Json<serde_json::Value> {
    let c = l.counts.lock().expect("counts");
    let mut sorted = c.latencies_us.clone();
    drop(c);
    sorted.sort_unstable();
    let c = l.counts.lock().expect("counts");
    let mut fields = count_fields(&l, &c);
    fields["latency_ms"] = serde_json::json!({"p50": percentile(&sorted, 0.5), "p95": percentile(&sorted, 0.95), "p99": percentile(&sorted, 0.99)});
    Json(fields)
}

/// The counts only: cheap enough to poll while a load test waits (the percentiles of `stats`
/// sort every latency, which polled ten times a second took CPU from the server under test).
async fn counts(State(l): State<Arc<Listener>>) -> Json<serde_json::Value> {
    let c = l.counts.lock().expect("counts");
    Json(count_fields(&l, &c))
}

async fn reset(State(l): State<Arc<Listener>>) -> StatusCode {
    *l.counts.lock().expect("counts") = Counts::default();
    l.requests.store(0, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// Runs the receiver until the process is stopped.
pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid --bind/--port: {}:{}", args.bind, args.port))?;
    let keys = args.secret.as_deref().map(|s| SigningKeys::new(&Secret::from_stored(s.as_bytes().to_vec())));
    let prefix = args.header_prefix.to_ascii_lowercase();
    let (seed_header, previous_header, event_header, delivery_header, expects_standard) = match &args.profile {
        None => (
            format!("{prefix}-signature"),
            Some(format!("{prefix}-signature-previous")),
            Some(format!("{prefix}-event")),
            Some(format!("{prefix}-delivery")),
            true,
        ),
        Some(name) => {
            let profiles = crate::profile::Profiles::builtin();
            let profile = profiles.get(name).ok_or_else(|| {
                anyhow::anyhow!("--profile: no profile named '{name}' (there are {})", profiles.names().join(", "))
            })?;
            let name = |h: &Option<axum::http::HeaderName>| h.as_ref().map(|h| h.as_str().to_string());
            (
                profile.signature.header.as_str().to_string(),
                name(&profile.signature.previous_header),
                name(&profile.headers.event),
                name(&profile.headers.delivery),
                profile.headers.standard_webhooks,
            )
        }
    };
    let listener = Arc::new(Listener {
        args: args.clone(),
        keys,
        seed_header,
        previous_header,
        event_header,
        delivery_header,
        forward: args.forward.as_deref().map(Forward::new).transpose()?,
        public_key: args.public_key.as_deref().map(parse_public_key).transpose()?,
        expects_standard,
        requests: AtomicU64::new(0),
        counts: Mutex::new(Counts::default()),
        out: Mutex::new(std::io::BufWriter::new(std::io::stdout())),
    });
    let app = Router::new()
        .route("/_tocsin/stats", get(stats))
        .route("/_tocsin/counts", get(counts))
        .route("/_tocsin/reset", post(reset))
        .fallback(receive)
        .with_state(listener);
    let tcp = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    if !args.quiet {
        eprintln!(
            "tocsin listen: receiving on http://{addr}/ (any path){}{}",
            if args.secret.is_some() { ", checking signatures" } else { "" },
            args.forward.as_deref().map(|f| format!(", passing deliveries on to {f}")).unwrap_or_default()
        );
    }
    axum::serve(tcp, app).with_graceful_shutdown(crate::app::shutdown_signal()).await?;
    Ok(())
}
