//! `tocsin-bench`: the load test. In one run on one machine it starts a sink (`tocsin listen`),
//! measures the raw ceiling (the requests the service would send, 1 KiB bodies signed both ways,
//! straight to the sink at the same concurrency; again before each scenario compared with it),
//! starts `tocsin serve` on a fresh store, creates webhooks, publishes events and waits until
//! every delivery landed, then reports throughput, latency, memory, CPU, duplicates and losses.
//!
//! Scenarios: (a) one webhook; (b) fan-out to ten; (c) ten, one hanging until its timeout;
//! (d) a backlog built while the sink is down, drained when it is up; (e) a steady 1000 events/s.
//! Loopback only; every scenario is bounded in count and time.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, Request, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use uuid::Uuid;

use tocsin::delivery::headers::{signed_headers, HeaderNames, Signed};
use tocsin::destinations::{self, EventView, RenderSettings};
use tocsin::domain::secret::Secret;
use tocsin::signing::SigningKeys;
use tocsin::transport::http::{GuardedConnector, HttpTransport, SystemResolver};
use tocsin::transport::ssrf::AddressPolicy;

/// The load test of Tocsin (starts its own sink and servers on loopback).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "tocsin-bench", version)]
pub struct BenchArgs {
    /// Scenarios to run: a, b, c, d, e (comma-separated) or all
    #[arg(long, default_value = "a,b,c,e")]
    pub scenario: String,
    /// Events of scenario (a); (b) and (c) publish a fifth as many to ten webhooks
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Pending deliveries of scenario (d)
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: u64,
    /// Seconds of scenario (e)
    #[arg(long, default_value_t = 60)]
    pub steady_secs: u64,
    /// sqlite (default, a fresh file) or a postgres:// URL of a server where a fresh database is created
    #[arg(long)]
    pub database: Option<String>,
    /// Concurrent requests of the raw-ceiling client (and the server's per-webhook concurrency)
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Run this many `tocsin serve` processes on the (PostgreSQL) database
    #[arg(long, default_value_t = 1)]
    pub servers: usize,
    /// Split the per-webhook concurrency between the servers (each gets concurrency / servers), so
    /// that an endpoint sees as many requests in flight as with one server
    #[arg(long)]
    pub split_concurrency: bool,
    /// Where to write the results as JSON
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: std::path::PathBuf,
    /// Upper bound of each scenario, in seconds
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

impl BenchArgs {
    /// The per-webhook concurrency each server is started with.
    fn concurrency_per_server(&self) -> usize {
        if self.split_concurrency {
            (self.concurrency / self.servers.max(1)).max(1)
        } else {
            self.concurrency
        }
    }
}

const ADMIN: &str = "tsn_bench_admin_token_000000000000000000";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // A wrapped server (a profiler) is asked to stop, so that the profiler writes its output.
        if std::env::var_os("TOCSIN_BENCH_SERVER_WRAPPER").is_some() {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

type Plain = Client<HttpConnector, Full<Bytes>>;

struct Api {
    client: Plain,
    base: String,
}

impl Api {
    fn new(port: u16) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), base: format!("http://127.0.0.1:{port}") }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?.map(Bytes::from);
        let (status, bytes) = self.call_raw(method, path, body).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// [`Api::call`] with a body already written as JSON text, answering the bytes unparsed.
    async fn call_raw(&self, method: Method, path: &str, body: Option<Bytes>) -> anyhow::Result<(u16, Bytes)> {
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
        req = req.header("authorization", format!("Bearer {ADMIN}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let resp = self.client.request(req.body(Full::new(body.unwrap_or_default()))?).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }
}

async fn wait_ready(api: &Api, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = api.call(Method::GET, path, None).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{} did not become ready", api.base)
}

/// The `tocsin` binary under test: `TOCSIN_BENCH_SERVER`, or the `tocsin` beside this tool (both
/// are built into the same target directory).
fn exe() -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("TOCSIN_BENCH_SERVER") {
        return Ok(path.into());
    }
    let beside = std::env::current_exe()?.with_file_name("tocsin");
    anyhow::ensure!(beside.is_file(), "no tocsin binary at {}; set TOCSIN_BENCH_SERVER", beside.display());
    Ok(beside)
}

/// The command that starts a server: this executable, or, when `TOCSIN_BENCH_SERVER_WRAPPER` is
/// set, that command line with this executable after it. A profiler that counts instructions
/// (`valgrind --tool=callgrind`) gives figures that do not drift with the machine's speed.
fn server_command() -> anyhow::Result<Command> {
    let wrapper = std::env::var("TOCSIN_BENCH_SERVER_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    Ok(match words.next() {
        None => Command::new(exe()?),
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(exe()?);
            cmd
        }
    })
}

/// A sink: `tocsin listen --quiet`, optionally slow.
async fn start_sink(delay_ms: u64) -> anyhow::Result<(Proc, u16, Api)> {
    let port = free_port();
    let child = Command::new(exe()?)
        .args([
            "listen",
            "--quiet",
            "--port",
            &port.to_string(),
            "--secret",
            SECRET,
            "--delay-ms",
            &delay_ms.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let api = Api::new(port);
    wait_ready(&api, "/_tocsin/stats").await?;
    Ok((Proc(child), port, api))
}

struct Server {
    procs: Vec<Proc>,
    api: Api,
    _dir: tempfile::TempDir,
    /// The scenario's own PostgreSQL database, if any.
    database: Option<BenchDatabase>,
}

/// A database this run created on the user's PostgreSQL server: dropped when its scenario ends.
struct BenchDatabase {
    admin_url: String,
    name: String,
    dropped: bool,
}

impl BenchDatabase {
    async fn drop_now(mut self) {
        let dropped = async {
            let (client, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await
        };
        match dropped.await {
            Ok(()) => self.dropped = true,
            Err(e) => eprintln!("could not drop the bench database {}: {e}", self.name),
        }
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if !self.dropped {
            eprintln!(
                "the bench database {} is left on the server; drop it with DROP DATABASE {}",
                self.name, self.name
            );
        }
    }
}

/// Ends a scenario: stops its servers, then drops its PostgreSQL database.
async fn finish(procs: Vec<Proc>, database: Option<BenchDatabase>) {
    drop(procs);
    if let Some(db) = database {
        db.drop_now().await;
    }
}

/// Fresh storage: a temp SQLite file, or a new database on the given PostgreSQL server.
async fn fresh_database(
    arg: &Option<String>,
    dir: &std::path::Path,
) -> anyhow::Result<(String, Option<BenchDatabase>)> {
    match arg.as_deref() {
        None | Some("sqlite") => Ok((format!("sqlite://{}/bench.db", dir.display()), None)),
        Some(url) if url.starts_with("postgres") => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let name = format!("tocsin_bench_{}", uuid::Uuid::new_v4().simple());
            client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
            let base = url.split('?').next().unwrap_or(url);
            let db_url = format!("{}/{name}", base.rsplit_once('/').map_or(base, |(b, _)| b));
            Ok((db_url, Some(BenchDatabase { admin_url: url.to_string(), name, dropped: false })))
        }
        Some(other) => anyhow::bail!("--database: expected sqlite or postgres://…, got {other}"),
    }
}

async fn start_servers(args: &BenchArgs, extra_env: &[(&str, String)]) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let (db, database) = fresh_database(&args.database, dir.path()).await?;
    let mut procs = Vec::new();
    let mut first_port = 0;
    let per_server = args.concurrency_per_server();
    for i in 0..args.servers.max(1) {
        let port = free_port();
        if i == 0 {
            first_port = port;
        }
        let mut cmd = server_command()?;
        cmd.arg("serve")
            .env("TOCSIN_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOCSIN_DATA_DIR", dir.path())
            .env("TOCSIN_DATABASE_URL", &db)
            .env("TOCSIN_ADMIN_TOKEN", ADMIN)
            .env("TOCSIN_MASTER_KEY", "b".repeat(64))
            .env("TOCSIN_ALLOW_DESTINATIONS", "127.0.0.0/8")
            .env("TOCSIN_WEBHOOK_CONCURRENCY", per_server.to_string())
            .env("TOCSIN_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        procs.push(Proc(cmd.spawn()?));
        wait_ready(&Api::new(port), "/readyz").await?;
    }
    Ok(Server { procs, api: Api::new(first_port), _dir: dir, database })
}

/// CPU seconds (user + system) and peak RSS in KiB of a process, from /proc.
fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, hwm)
}

/// CPU seconds per 1000 deliveries, to three decimals.
fn per_1000(cpu_seconds: f64, deliveries: u64) -> f64 {
    (cpu_seconds / deliveries.max(1) as f64 * 1000.0 * 1000.0).round() / 1000.0
}

/// CPU seconds of the processes beside the server that share its machine: the sink, and this
/// process (the publishers, the raw ceiling's client, the polling). With the server's own, they
/// account for the machine's time per delivery.
struct OthersCpu {
    sink: f64,
    load_test: f64,
}

impl OthersCpu {
    fn now(sink_pid: u32) -> Self {
        Self { sink: proc_usage(sink_pid).0, load_test: proc_usage(std::process::id()).0 }
    }

    fn since(&self, before: &Self) -> Self {
        Self { sink: self.sink - before.sink, load_test: self.load_test - before.load_test }
    }
}

/// The machine's CPU time from /proc/stat, in ticks: (all, idle + iowait, steal). Steal is
/// time the hypervisor gave this VM's CPUs to someone else: on a shared machine it explains
/// runs that differ by a fifth with nothing changed.
fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    (fields.iter().take(8).sum(), at(3) + at(4), at(7))
}

/// How the machine's CPUs were spent between two [`machine_ticks`] readings, in percent.
fn machine_share(before: (u64, u64, u64), after: (u64, u64, u64)) -> Value {
    let all = after.0.saturating_sub(before.0).max(1) as f64;
    let pct = |t: u64| (t as f64 / all * 1000.0).round() / 10.0;
    let (idle, steal) = (after.1.saturating_sub(before.1), after.2.saturating_sub(before.2));
    json!({"idle_percent": pct(idle), "steal_percent": pct(steal)})
}

fn current_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Appends the `data` of a load-test event (about 1 KiB once rendered), stamped with when it was
/// sent, as JSON text. Written directly rather than through serde_json's values: the load test
/// runs on the same cores as the server it measures, and building each event as a value cost
/// the publishers about 6 µs per event, a tenth of the machine's time per delivery in (a).
fn write_bench_data(out: &mut String, sent_us: i64, seq: u64) {
    use std::fmt::Write as _;
    static PAD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "x".repeat(800));
    let pad = PAD.as_str();
    let _ = write!(
        out,
        r#"{{"bench_sent_us":{sent_us},"seq":{seq},"severity":"high","title":"Bench alert","pad":"{pad}"}}"#
    );
}

/// A batch publish's body: events `range` of the load test, tagged `tag`, sent at `sent_us`.
fn batch_body(tag: &str, range: std::ops::Range<u64>, sent_us: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(range.clone().count() * 1000 + 16);
    out.push_str(r#"{"events":["#);
    for i in range.clone() {
        if i > range.start {
            out.push(',');
        }
        let _ = write!(out, r#"{{"event":"alert.created","event_ref":"{tag}-{i}","data":"#);
        write_bench_data(&mut out, sent_us, i);
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// The raw ceiling: our own client POSTing to the sink, at the same concurrency, the requests the
/// service would send for the load test's events (1 KiB bodies, the same headers and signatures),
/// with nothing else to do.
async fn raw_ceiling(port: u16, concurrency: usize, total: u64) -> anyhow::Result<f64> {
    let connector = GuardedConnector::new(
        AddressPolicy::new(vec!["127.0.0.0/8".parse().expect("a network")]),
        Arc::new(SystemResolver),
    );
    let transport =
        Arc::new(HttpTransport::new(connector, tocsin::transport::http::tls_config(None, None)?, concurrency));
    let uri: Uri = format!("http://127.0.0.1:{port}/hook").parse()?;
    let secret = Secret::from_stored(SECRET.as_bytes().to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let (names, settings, webhook_id) =
        (Arc::new(HeaderNames::new("X-Tocsin")), Arc::new(RenderSettings::default()), Uuid::new_v4());
    let json = destinations::parse_format("json", "format")?;
    for _ in 0..concurrency {
        let (transport, uri, keys, next) = (transport.clone(), uri.clone(), SigningKeys::new(&secret), next.clone());
        let (names, settings) = (names.clone(), settings.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                // A delivery of the load test's event as the service makes it: same renderer, same
                // headers and signatures (the sink's cost per request depends on both).
                let event_ref = format!("raw-{n}");
                let mut data = String::with_capacity(1000);
                write_bench_data(&mut data, now_us(), n);
                let now = tocsin::domain::time::now_ms();
                let body = destinations::render(
                    json,
                    &EventView {
                        event_type: "alert.created",
                        event_ref: &event_ref,
                        tenant_id: "default",
                        data: data.as_bytes(),
                        emitted_at: now,
                    },
                    None,
                    &settings,
                    false,
                );
                let headers = signed_headers(
                    &names,
                    &Signed {
                        content_type: body.content_type,
                        event_type: "alert.created",
                        event_ref: &event_ref,
                        attempt_id: Uuid::now_v7(),
                        now,
                        webhook_id,
                        keys: &keys,
                        previous: None,
                        body: &body.body,
                    },
                );
                let _ = transport.post(&uri, headers, Bytes::from(body.body), Duration::from_secs(10)).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn create_webhook(api: &Api, port: u16, name: &str, extra: Value) -> anyhow::Result<String> {
    let mut body = json!({"name": name, "url": format!("http://127.0.0.1:{port}/hook"), "secret": SECRET,
                          "event_types": ["alert.created"], "retry_count": 10});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let (status, v) = api.call(Method::POST, "/api/v1/webhooks", Some(body)).await?;
    anyhow::ensure!(status == 201, "creating a webhook: {status} {v}");
    Ok(v["id"].as_str().unwrap_or_default().to_string())
}

fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Publishes `count` events in batches of 1000 from 4 concurrent publishers (scenario (e)
/// publishes one event per request). Returns the accept rate in events/s.
async fn publish(api: &Arc<Api>, tag: &str, count: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (api, next, tag) = (api.clone(), next.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(1000, Ordering::Relaxed);
                if start >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let end = (start + 1000).min(count);
                let body = batch_body(&tag, start..end, now_us());
                let (status, answer) =
                    api.call_raw(Method::POST, "/api/v1/events/batch", Some(Bytes::from(body))).await?;
                // Only the count of rejections is read: parsing the 1000 results cost the load test.
                #[derive(serde::Deserialize)]
                struct Answer {
                    rejected: u64,
                }
                let rejected = serde_json::from_slice::<Answer>(&answer).map(|a| a.rejected).ok();
                anyhow::ensure!(
                    status == 200 && rejected == Some(0),
                    "batch publish: {status} {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Waits until the sink saw `expected` distinct events, the bound passes, or nothing arrived for
/// 60 s; returns its counts (without latencies: see [`sink_latency`]).
async fn drain(sink: &Api, expected: u64, bound: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + bound;
    let (mut last, mut progressed) = (0, Instant::now());
    loop {
        let (_, stats) = sink.call(Method::GET, "/_tocsin/counts", None).await?;
        let unique = stats["unique"].as_u64().unwrap_or(0);
        if unique != last {
            (last, progressed) = (unique, Instant::now());
        }
        if unique >= expected || Instant::now() > deadline || progressed.elapsed() > Duration::from_secs(60) {
            return Ok(stats);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sink's latency percentiles, asked for once the scenario's CPU and time are taken (they
/// sort every latency the sink saw).
async fn sink_latency(sink: &Api) -> anyhow::Result<Value> {
    Ok(sink.call(Method::GET, "/_tocsin/stats", None).await?.1["latency_ms"].clone())
}

/// Runs one delivery scenario; returns its report.
async fn delivery_scenario(
    args: &BenchArgs,
    name: &str,
    webhooks: usize,
    hanging: bool,
    events: u64,
    raw: f64,
) -> anyhow::Result<Value> {
    let (sink_proc, sink_port, sink) = start_sink(0).await?;
    let slow = if hanging { Some(start_sink(60_000).await?) } else { None };
    let server = start_servers(args, &[]).await?;
    let api = Arc::new(server.api);
    for i in 0..webhooks {
        create_webhook(&api, sink_port, &format!("sink-{i}"), json!({})).await?;
    }
    if let Some((_, port, _)) = &slow {
        create_webhook(&api, *port, "hanging", json!({"timeout_ms": 1000, "retry_count": 0})).await?;
    }
    let pids: Vec<u32> = server.procs.iter().map(|p| p.0.id()).collect();
    let cpu_before: f64 = pids.iter().map(|p| proc_usage(*p).0).sum();
    let others_before = OthersCpu::now(sink_proc.0.id());
    let ticks = machine_ticks();
    let started_ms = tocsin::domain::time::now_ms();
    let accepted = publish(&api, name, events).await?;
    let expected = events * webhooks as u64;
    let stats = drain(&sink, events, Duration::from_secs(args.timeout_secs)).await?;
    // Every healthy webhook gets every event: wait for all of their deliveries.
    let stats = if webhooks > 1 {
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        let mut s = stats;
        while s["requests"].as_u64().unwrap_or(0) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            s = sink.call(Method::GET, "/_tocsin/counts", None).await?.1;
        }
        s
    } else {
        stats
    };
    // From the first publish to the last arrival at the sink (the sink is polled every 100 ms:
    // the poll's own delay is not delivery time).
    let last_ms = stats["last_ms"].as_i64().unwrap_or(0);
    let elapsed = ((last_ms - started_ms) as f64 / 1000.0).max(0.001);
    let machine = machine_share(ticks, machine_ticks());
    let delivered = stats["requests"].as_u64().unwrap_or(0);
    let cpu_after: f64 = pids.iter().map(|p| proc_usage(*p).0).sum();
    let others = OthersCpu::now(sink_proc.0.id()).since(&others_before);
    let peak_rss_kib = pids.iter().map(|p| proc_usage(*p).1).max().unwrap_or(0);
    let per_sec = delivered as f64 / elapsed;
    let duplicates = delivered.saturating_sub(expected);
    let lost_events = events.saturating_sub(stats["unique"].as_u64().unwrap_or(0));
    let latency = sink_latency(&sink).await?;
    drop(slow);
    finish(server.procs, server.database).await;
    Ok(json!({
        "scenario": name,
        "webhooks": webhooks,
        "hanging_webhook": hanging,
        "events": events,
        "deliveries_expected": expected,
        "deliveries_received": delivered,
        "events_per_sec_accepted": accepted.round(),
        "deliveries_per_sec": per_sec.round(),
        "ratio_to_raw_ceiling": (per_sec / raw * 1000.0).round() / 1000.0,
        "latency_ms": latency,
        "peak_rss_mib": peak_rss_kib as f64 / 1024.0,
        "cpu_seconds_per_1000_deliveries": per_1000(cpu_after - cpu_before, delivered),
        "sink_cpu_seconds_per_1000_deliveries": per_1000(others.sink, delivered),
        "load_test_cpu_seconds_per_1000_deliveries": per_1000(others.load_test, delivered),
        "duplicates": duplicates,
        "lost": lost_events,
        "bad_signatures": stats["bad_signatures"],
        "seconds": (elapsed * 10.0).round() / 10.0,
        "machine_cpu": machine,
    }))
}

/// (d): a backlog built while the sink is down (the breaker holds it), drained when it is up.
async fn backlog_scenario(args: &BenchArgs, raw: f64) -> anyhow::Result<Value> {
    let port = free_port();
    let server = start_servers(args, &[("TOCSIN_FAILURE_THRESHOLD", "1".into())]).await?;
    let api = Arc::new(server.api);
    // Retries are held while the breaker has the webhook disabled, and released with the rest.
    let id = create_webhook(&api, port, "down", json!({"retry_delays_ms": [0, 60000]})).await?;
    let accepted = publish(&api, "d", args.backlog).await?;
    let pid = server.procs[0].0.id();
    let holding_rss = current_rss_kib(pid);
    let (_, held_peak) = proc_usage(pid);
    // The sink comes up on the same port; re-enabling releases the held deliveries.
    let child = Command::new(exe()?)
        .args(["listen", "--quiet", "--port", &port.to_string(), "--secret", SECRET])
        .stdout(Stdio::null())
        .spawn()?;
    let _sink_proc = Proc(child);
    let sink = Api::new(port);
    wait_ready(&sink, "/_tocsin/stats").await?;
    let (cpu_before, _) = proc_usage(pid);
    let started = Instant::now();
    let enabled_at_ms = tocsin::domain::time::now_ms();
    let (status, v) =
        api.call(Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(json!({"is_active": true}))).await?;
    anyhow::ensure!(status == 200, "re-enable: {status} {v}");
    let stats = drain(&sink, args.backlog, Duration::from_secs(args.timeout_secs)).await?;
    // From re-enabling to the last arrival.
    let last_ms = stats["last_ms"].as_i64().unwrap_or(0);
    let elapsed = ((last_ms - enabled_at_ms) as f64 / 1000.0).max(started.elapsed().as_secs_f64().min(0.001));
    let delivered = stats["unique"].as_u64().unwrap_or(0);
    let (cpu_after, peak) = proc_usage(pid);
    finish(server.procs, server.database).await;
    Ok(json!({
        "scenario": "d",
        "backlog": args.backlog,
        "events_per_sec_accepted": accepted.round(),
        "rss_mib_holding_backlog": holding_rss as f64 / 1024.0,
        "peak_rss_mib_while_building": held_peak as f64 / 1024.0,
        "peak_rss_mib": peak as f64 / 1024.0,
        "drain_deliveries_per_sec": (delivered as f64 / elapsed).round(),
        "ratio_to_raw_ceiling": ((delivered as f64 / elapsed) / raw * 1000.0).round() / 1000.0,
        "delivered": delivered,
        "lost": args.backlog.saturating_sub(delivered),
        "duplicates": stats["duplicates"],
        "cpu_seconds_per_1000_deliveries": per_1000(cpu_after - cpu_before, delivered),
        "seconds": (elapsed * 10.0).round() / 10.0,
    }))
}

/// (e): a steady 1000 events/s to one webhook, single publishes, for latency.
async fn steady_scenario(args: &BenchArgs) -> anyhow::Result<Value> {
    let (_sink, sink_port, sink) = start_sink(0).await?;
    let server = start_servers(args, &[]).await?;
    let api = Arc::new(server.api);
    create_webhook(&api, sink_port, "steady", json!({})).await?;
    let pid = server.procs[0].0.id();
    let total = args.steady_secs * 1000;
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    while sent < total {
        interval.tick().await;
        // Ten single publishes every 10 ms.
        for _ in 0..10 {
            let api = api.clone();
            let n = sent;
            inflight.spawn(async move {
                let body = json!({"event": "alert.created", "event_ref": format!("e-{n}"),
                                  "data": {"bench_sent_us": now_us(), "seq": n, "severity": "low"}});
                api.call(Method::POST, "/api/v1/events", Some(body)).await.map(|(s, _)| s)
            });
            sent += 1;
        }
        while let Some(r) = inflight.try_join_next() {
            anyhow::ensure!(matches!(r, Ok(Ok(202))), "publish failed: {r:?}");
        }
    }
    while let Some(r) = inflight.join_next().await {
        anyhow::ensure!(matches!(r, Ok(Ok(202))), "publish failed: {r:?}");
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let stats = drain(&sink, total, Duration::from_secs(args.timeout_secs)).await?;
    let (cpu, peak) = proc_usage(pid);
    let latency = sink_latency(&sink).await?;
    finish(server.procs, server.database).await;
    Ok(json!({
        "scenario": "e",
        "events": total,
        "events_per_sec_offered": (total as f64 / publish_secs).round(),
        "delivered": stats["unique"],
        "latency_ms": latency,
        "peak_rss_mib": peak as f64 / 1024.0,
        "cpu_seconds_per_1000_deliveries": per_1000(cpu, total),
        "duplicates": stats["duplicates"],
        "lost": total.saturating_sub(stats["unique"].as_u64().unwrap_or(0)),
    }))
}

/// Starts a sink, measures the raw ceiling against it, and reports it (`scenario: raw_ceiling`).
async fn measure_raw_ceiling(args: &BenchArgs) -> anyhow::Result<Value> {
    eprintln!("tocsin bench: measuring the raw ceiling ({} concurrent signed 1 KiB POSTs)…", args.concurrency);
    let (sink_proc, sink_port, sink) = start_sink(0).await?;
    let ticks = machine_ticks();
    let before = OthersCpu::now(sink_proc.0.id());
    let requests = 100_000.min(args.events.max(20_000));
    let raw = raw_ceiling(sink_port, args.concurrency, requests).await?;
    let after = OthersCpu::now(sink_proc.0.id());
    let (sink_cpu, used) = (after.sink, after.since(&before));
    let (_, sink_stats) = sink.call(Method::GET, "/_tocsin/counts", None).await?;
    drop(sink_proc);
    // The sink checked both signatures of every request: the raw client sends real deliveries.
    anyhow::ensure!(
        sink_stats["bad_signatures"] == 0,
        "the raw ceiling's requests failed the sink's checks: {sink_stats}"
    );
    eprintln!("raw ceiling: {raw:.0} requests/s (sink CPU {sink_cpu:.1} s)");
    Ok(json!({"scenario": "raw_ceiling", "requests_per_sec": raw.round(),
              "sink_requests": sink_stats["requests"], "sink_cpu_seconds": sink_cpu,
              "sink_cpu_seconds_per_1000_requests": per_1000(used.sink, requests),
              "client_cpu_seconds_per_1000_requests": per_1000(used.load_test, requests),
              "sink_bad_signatures": sink_stats["bad_signatures"],
              "machine_cpu": machine_share(ticks, machine_ticks())}))
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = <BenchArgs as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let wanted: Vec<String> = if args.scenario == "all" {
        ["a", "b", "c", "d", "e"].map(String::from).to_vec()
    } else {
        args.scenario.split(',').map(|s| s.trim().to_string()).collect()
    };
    let mut results = Vec::new();
    for s in &wanted {
        // The ceiling is measured again right before each scenario that is compared with it:
        // the machine's speed drifts by tens of per cent within minutes, and a ratio to a
        // ceiling taken minutes earlier measured that drift as much as the service.
        let raw = if matches!(s.as_str(), "a" | "b" | "c" | "d") {
            let measured = measure_raw_ceiling(&args).await?;
            let raw = measured["requests_per_sec"].as_f64().unwrap_or(1.0);
            results.push(measured);
            raw
        } else {
            0.0
        };
        eprintln!("scenario {s}…");
        let ticks = machine_ticks();
        let mut r = match s.as_str() {
            "a" => delivery_scenario(&args, "a", 1, false, args.events, raw).await?,
            "b" => delivery_scenario(&args, "b", 10, false, args.events / 5, raw).await?,
            "c" => delivery_scenario(&args, "c", 9, true, args.events / 5, raw).await?,
            "d" => backlog_scenario(&args, raw).await?,
            "e" => steady_scenario(&args).await?,
            other => anyhow::bail!("unknown scenario {other}"),
        };
        // Over the whole scenario, set-up included, where it did not measure its own window.
        if r.get("machine_cpu").is_none() {
            r["machine_cpu"] = machine_share(ticks, machine_ticks());
        }
        if raw > 0.0 {
            r["raw_ceiling"] = json!(raw.round());
        }
        eprintln!("{}", serde_json::to_string_pretty(&r)?);
        results.push(r);
    }
    let report = json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "database": args.database.clone().unwrap_or_else(|| "sqlite".into()),
        "servers": args.servers,
        "webhook_concurrency_per_server": args.concurrency_per_server(),
        "results": results,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("written to {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_body_is_the_json_of_its_events() {
        let body: Value = serde_json::from_str(&batch_body("a", 7..10, 123)).expect("valid JSON");
        let events = body["events"].as_array().expect("an array");
        assert_eq!(events.len(), 3);
        for (e, i) in events.iter().zip(7..) {
            assert_eq!(e["event"], "alert.created");
            assert_eq!(e["event_ref"], format!("a-{i}"));
            assert_eq!(e["data"]["bench_sent_us"], 123);
            assert_eq!(e["data"]["seq"], i);
            assert_eq!(e["data"]["pad"].as_str().map(str::len), Some(800));
        }
    }
}
