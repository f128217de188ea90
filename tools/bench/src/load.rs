//! The load: event payloads, the raw ceiling's client, publishers, and waiting for the sink.

use super::*;

/// Appends the `data` of a load-test event (about 1 KiB once rendered), stamped with when it was
/// sent, as JSON text. Written directly rather than through serde_json's values: the load test
/// runs on the same cores as the server it measures, and building each event as a value cost
/// the publishers about 6 µs per event, a tenth of the machine's time per delivery in (a).
pub(crate) fn write_bench_data(out: &mut String, sent_us: i64, seq: u64) {
    use std::fmt::Write as _;
    static PAD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "x".repeat(800));
    let pad = PAD.as_str();
    let _ = write!(
        out,
        r#"{{"bench_sent_us":{sent_us},"seq":{seq},"severity":"high","title":"Bench alert","pad":"{pad}"}}"#
    );
}

/// A batch publish's body: events `range` of the load test, tagged `tag`, sent at `sent_us`.
pub(crate) fn batch_body(tag: &str, range: std::ops::Range<u64>, sent_us: i64) -> String {
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
pub(crate) async fn raw_ceiling(port: u16, concurrency: usize, total: u64) -> anyhow::Result<f64> {
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
    let (profile, settings, webhook_id) =
        (Profiles::builtin().default_profile().clone(), Arc::new(RenderSettings::default()), Uuid::new_v4());
    let json = destinations::parse_format("json", "format")?;
    for _ in 0..concurrency {
        let (transport, uri, keys, next) = (transport.clone(), uri.clone(), SigningKeys::new(&secret), next.clone());
        let (profile, settings) = (profile.clone(), settings.clone());
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
                        shape: &profile.body,
                    },
                    None,
                    &settings,
                    false,
                );
                let headers = signed_headers(
                    &profile,
                    &Signed {
                        content_type: body.content_type,
                        event_type: "alert.created",
                        event_ref: &event_ref,
                        attempt_id: Uuid::now_v7(),
                        now,
                        webhook_id,
                        keys: Some(&keys),
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

pub(crate) async fn create_webhook(api: &Api, port: u16, name: &str, extra: Value) -> anyhow::Result<String> {
    let mut body = json!({"name": name, "url": format!("http://127.0.0.1:{port}/hook"), "secret": SECRET,
                          "event_types": ["alert.created"], "retry_count": 10});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let (status, v) = api.call(Method::POST, "/api/v1/webhooks", Some(body)).await?;
    anyhow::ensure!(status == 201, "creating a webhook: {status} {v}");
    Ok(v["id"].as_str().unwrap_or_default().to_string())
}

pub(crate) fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Publishes `count` events in batches of 1000 from 4 concurrent publishers (scenario (e)
/// publishes one event per request). Returns the accept rate in events/s.
pub(crate) async fn publish(api: &Arc<Api>, tag: &str, count: u64) -> anyhow::Result<f64> {
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
                    (200..300).contains(&status) && rejected == Some(0),
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

/// One event as a product publishes it, as a request's body.
pub(crate) fn single_body(tag: &str, seq: u64, sent_us: i64) -> String {
    let mut out = String::with_capacity(1100);
    out.push_str(r#"{"event":"alert.created","event_ref":""#);
    out.push_str(tag);
    out.push('-');
    out.push_str(&seq.to_string());
    out.push_str(r#"","data":"#);
    write_bench_data(&mut out, sent_us, seq);
    out.push('}');
    out
}

/// Publishes `count` events one per request from `connections` concurrent keep-alive
/// connections, spread over the servers' `ports` (as products publish: one event as it happens).
/// Returns the accept rate in events/s and each request's latency in µs.
pub(crate) async fn publish_single(
    ports: &[u16],
    tag: &str,
    count: u64,
    connections: usize,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..connections {
        // One client per publisher: its own connection, kept alive.
        let api = Api::new(ports[c % ports.len().max(1)]);
        let (next, tag) = (next.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= count {
                    return Ok::<Vec<u64>, anyhow::Error>(latencies);
                }
                let body = single_body(&tag, seq, now_us());
                let sent = Instant::now();
                let (status, answer) = api.call_raw(Method::POST, "/api/v1/events", Some(Bytes::from(body))).await?;
                latencies.push(sent.elapsed().as_micros() as u64);
                anyhow::ensure!(status == 202, "publish: {status} {}", String::from_utf8_lossy(&answer));
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count as usize);
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok((count as f64 / started.elapsed().as_secs_f64(), latencies))
}

/// p50, p99 and max of latencies in µs, in ms.
pub(crate) fn latency_summary(mut us: Vec<u64>) -> Value {
    us.sort_unstable();
    let at = |q: f64| us.get(((us.len() as f64 * q) as usize).min(us.len().saturating_sub(1))).copied().unwrap_or(0);
    let ms = |v: u64| (v as f64 / 10.0).round() / 100.0;
    json!({"p50": ms(at(0.5)), "p99": ms(at(0.99)), "max": ms(us.last().copied().unwrap_or(0))})
}

/// Waits until the sink saw `expected` distinct events, the bound passes, or nothing arrived for
/// 60 s; returns its counts (without latencies: see [`sink_latency`]).
pub(crate) async fn drain(sink: &Api, expected: u64, bound: Duration) -> anyhow::Result<Value> {
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
pub(crate) async fn sink_latency(sink: &Api) -> anyhow::Result<Value> {
    Ok(sink.call(Method::GET, "/_tocsin/stats", None).await?.1["latency_ms"].clone())
}
