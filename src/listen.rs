//! `tocsin listen`: a local webhook receiver for people testing their integration, and the sink
//! of the load test. It prints each delivery (event, event_ref, attempt id, latency) and whether
//! both signatures verify, and can rehearse failures (`--status`, `--fail-first`, `--delay-ms`).
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
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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
    /// Read the headers a product profile names (phishnet, pentest, netrecon, selki, gophish)
    /// instead of the X-Tocsin ones
    #[arg(long)]
    pub profile: Option<String>,
    /// Print one JSON object per delivery
    #[arg(long)]
    pub json: bool,
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
    /// The header with the attempt's id, if the profile sends one.
    delivery_header: Option<String>,
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

async fn receive(State(l): State<Arc<Listener>>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived_us = now_us();
    let n = l.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let env: Option<Envelope> = serde_json::from_slice(&body).ok();
    let (sig, std_sig) = match &l.keys {
        None => ("unchecked", "unchecked"),
        Some(keys) => {
            let seed = verify_seed(keys, &body, header(&l.seed_header));
            let ts = header("webhook-timestamp").parse::<i64>().unwrap_or_default();
            let standard = verify_standard(keys, header("webhook-id"), ts, &body, header("webhook-signature"));
            (if seed { "ok" } else { "BAD" }, if standard { "ok" } else { "BAD" })
        }
    };
    let (event, event_ref) = env.as_ref().map(|e| (e.event.as_str(), e.event_ref.as_str())).unwrap_or(("?", "?"));
    let sent_us = env
        .as_ref()
        .and_then(|e| e.data.as_ref().and_then(|d| d.bench_sent_us))
        .or_else(|| env.as_ref().and_then(|e| e.emitted_at.as_deref()).and_then(parse_rfc3339_us));
    let latency_us = sent_us.map(|s| (arrived_us - s).max(0));
    {
        let mut c = l.counts.lock().expect("counts");
        if !c.seen.insert(event_ref.to_string()) {
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
    if !l.args.quiet {
        let delivery = l.delivery_header.as_deref().map(header).unwrap_or_default().to_string();
        let latency_ms = latency_us.map(|u| u as f64 / 1000.0);
        let line = if l.args.json {
            serde_json::json!({"event": event, "event_ref": event_ref, "delivery": delivery, "latency_ms": latency_ms,
                               "signature": sig, "standard_signature": std_sig, "bytes": body.len()})
            .to_string()
        } else {
            format!(
                "{}  {event:<24} ref={event_ref}  delivery={delivery}  latency={}  signature={sig}  webhook-signature={std_sig}",
                crate::domain::time::rfc3339_ms(now_ms()),
                latency_ms.map(|m| format!("{m:.1}ms")).unwrap_or_else(|| "?".into()),
            )
        };
        if let Ok(mut out) = l.out.lock() {
            writeln!(out, "{line}").ok();
            out.flush().ok();
        }
    }
    if l.args.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(l.args.delay_ms)).await;
    }
    let status = if n < l.args.fail_first { 500 } else { l.args.status };
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), "ok").into_response()
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
    let (seed_header, delivery_header) = match &args.profile {
        None => (
            format!("{}-signature", args.header_prefix.to_ascii_lowercase()),
            Some(format!("{}-delivery", args.header_prefix.to_ascii_lowercase())),
        ),
        Some(name) => {
            let profiles = crate::profile::Profiles::builtin();
            let profile = profiles.get(name).ok_or_else(|| {
                anyhow::anyhow!("--profile: no profile named '{name}' (there are {})", profiles.names().join(", "))
            })?;
            (
                profile.signature.header.as_str().to_string(),
                profile.headers.delivery.as_ref().map(|h| h.as_str().to_string()),
            )
        }
    };
    let listener = Arc::new(Listener {
        args: args.clone(),
        keys,
        seed_header,
        delivery_header,
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
            "tocsin listen: receiving on http://{addr}/ (any path){}",
            if args.secret.is_some() { ", checking signatures" } else { "" }
        );
    }
    axum::serve(tcp, app).with_graceful_shutdown(crate::app::shutdown_signal()).await?;
    Ok(())
}
