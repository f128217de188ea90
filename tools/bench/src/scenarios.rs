//! The scenarios (a)–(e) and the raw ceiling measured before each.

use super::*;

/// How a scenario's events are published.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Publishing {
    /// Batches of 1000 from 4 publishers.
    Batches,
    /// One event per request from this many concurrent keep-alive connections, spread over the
    /// servers.
    Single { connections: usize },
}

/// Runs one delivery scenario; returns its report.
pub(crate) async fn delivery_scenario(
    args: &BenchArgs,
    name: &str,
    webhooks: usize,
    hanging: bool,
    events: u64,
    raw: f64,
    publishing: Publishing,
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
    let on_postgres = server.database.is_some();
    let db_cpu_before = if on_postgres { postgres_cpu() } else { 0.0 };
    let commits_before = match &server.database {
        Some(db) => Some(postgres_commits(db).await?),
        None => None,
    };
    let others_before = OthersCpu::now(sink_proc.0.id());
    let ticks = machine_ticks();
    let started_ms = tocsin::domain::time::now_ms();
    let (accepted, publish_latency) = match publishing {
        Publishing::Batches => (publish(&api, name, events).await?, Value::Null),
        Publishing::Single { connections } => {
            let (rate, latencies) = publish_single(&server.ports, name, events, connections).await?;
            (rate, latency_summary(latencies))
        }
    };
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
    let db_cpu = if on_postgres { Some(postgres_cpu() - db_cpu_before) } else { None };
    let others = OthersCpu::now(sink_proc.0.id()).since(&others_before);
    let peak_rss_kib = pids.iter().map(|p| proc_usage(*p).1).max().unwrap_or(0);
    let per_sec = delivered as f64 / elapsed;
    let duplicates = delivered.saturating_sub(expected);
    let lost_events = events.saturating_sub(stats["unique"].as_u64().unwrap_or(0));
    let latency = sink_latency(&sink).await?;
    drop(slow);
    // A PostgreSQL backend reports its commits up to a second late, and at the latest when it
    // exits: counted once the servers are gone.
    drop(server.procs);
    let commits = match (&server.database, commits_before) {
        (Some(db), Some(before)) => Some(commits_once_closed(db).await? - before),
        _ => None,
    };
    finish(Vec::new(), server.database).await;
    Ok(json!({
        "scenario": name,
        "webhooks": webhooks,
        "hanging_webhook": hanging,
        "events": events,
        "deliveries_expected": expected,
        "deliveries_received": delivered,
        "publishing": match publishing {
            Publishing::Batches => "batches of 1000 from 4 connections".to_string(),
            Publishing::Single { connections } => format!("single events from {connections} connections"),
        },
        "servers": pids.len(),
        "events_per_sec_accepted": accepted.round(),
        "publish_latency_ms": publish_latency,
        "deliveries_per_sec": per_sec.round(),
        "ratio_to_raw_ceiling": (per_sec / raw * 1000.0).round() / 1000.0,
        "latency_ms": latency,
        "peak_rss_mib": peak_rss_kib as f64 / 1024.0,
        "cpu_seconds_per_1000_deliveries": per_1000(cpu_after - cpu_before, delivered),
        "database_cpu_seconds_per_1000_deliveries": db_cpu.map(|c| per_1000(c, delivered)),
        "database_commits_per_1000_deliveries": commits.map(|c| per_1000(c as f64, delivered)),
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
pub(crate) async fn backlog_scenario(args: &BenchArgs, raw: f64) -> anyhow::Result<Value> {
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
pub(crate) async fn steady_scenario(args: &BenchArgs) -> anyhow::Result<Value> {
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
pub(crate) async fn measure_raw_ceiling(args: &BenchArgs) -> anyhow::Result<Value> {
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

/// (g): 5,000 webhooks over 50 tenants (100 each), all pointing at the sink. Idle first: the
/// server's CPU and, on PostgreSQL, committed transactions a second, with no event flowing.
/// Then under load: `events` published to the first tenant, whose first 10 webhooks subscribe
/// (the others, and every other tenant's, wait for another type), for CPU per delivery beside
/// (b)'s ten webhooks.
pub(crate) async fn many_webhooks_scenario(args: &BenchArgs, events: u64, raw: f64) -> anyhow::Result<Value> {
    const TENANTS: usize = 50;
    const PER_TENANT: usize = 100;
    const SUBSCRIBED: usize = 10;
    let (sink_proc, sink_port, sink) = start_sink(0).await?;
    let server = start_servers(args, &[]).await?;
    let port = server.ports[0];
    let created = Instant::now();
    for t in 0..TENANTS {
        let api =
            if t == 0 { Api::new(port) } else { Api::with_token(port, &tenant_token(&server, &format!("t{t}"))?) };
        let api = Arc::new(api);
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..PER_TENANT {
            let api = api.clone();
            let types = if t == 0 && w < SUBSCRIBED { "alert.created" } else { "scan.completed" };
            tasks.spawn(async move {
                create_webhook(&api, sink_port, &format!("w{w}"), json!({"event_types": [types]})).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
    }
    let setup_secs = created.elapsed().as_secs_f64();
    let pids: Vec<u32> = server.procs.iter().map(|p| p.0.id()).collect();

    // Idle. PostgreSQL's backends report their counts up to 10 s late once idle: the set-up's
    // commits must not land in the window.
    tokio::time::sleep(Duration::from_secs(12)).await;
    const IDLE: Duration = Duration::from_secs(10);
    let cpu_before: f64 = pids.iter().map(|p| proc_usage(*p).0).sum();
    let commits_before = match &server.database {
        Some(db) => Some(postgres_commits(db).await?),
        None => None,
    };
    tokio::time::sleep(IDLE).await;
    let idle_cpu = pids.iter().map(|p| proc_usage(*p).0).sum::<f64>() - cpu_before;
    let commits = match (&server.database, commits_before) {
        (Some(db), Some(before)) => Some((postgres_commits(db).await? - before) as f64 / IDLE.as_secs_f64()),
        _ => None,
    };

    // Under load.
    let api = Arc::new(Api::new(port));
    let cpu_before: f64 = pids.iter().map(|p| proc_usage(*p).0).sum();
    let others_before = OthersCpu::now(sink_proc.0.id());
    let started_ms = tocsin::domain::time::now_ms();
    let accepted = publish(&api, "g", events).await?;
    let expected = events * SUBSCRIBED as u64;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut stats = drain(&sink, events, Duration::from_secs(args.timeout_secs)).await?;
    while stats["requests"].as_u64().unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = sink.call(Method::GET, "/_tocsin/counts", None).await?.1;
    }
    let delivered = stats["requests"].as_u64().unwrap_or(0);
    let elapsed = ((stats["last_ms"].as_i64().unwrap_or(0) - started_ms) as f64 / 1000.0).max(0.001);
    let cpu = pids.iter().map(|p| proc_usage(*p).0).sum::<f64>() - cpu_before;
    let others = OthersCpu::now(sink_proc.0.id()).since(&others_before);
    let per_sec = delivered as f64 / elapsed;
    finish(server.procs, server.database).await;
    Ok(json!({
        "scenario": "g",
        "webhooks": TENANTS * PER_TENANT,
        "tenants": TENANTS,
        "subscribed_webhooks": SUBSCRIBED,
        "setup_seconds": (setup_secs * 10.0).round() / 10.0,
        "idle_cpu_percent_of_a_core": (idle_cpu / IDLE.as_secs_f64() * 1000.0).round() / 10.0,
        "idle_postgres_commits_per_sec": commits.map(|c| (c * 10.0).round() / 10.0),
        "events": events,
        "events_per_sec_accepted": accepted.round(),
        "deliveries_expected": expected,
        "deliveries_received": delivered,
        "deliveries_per_sec": per_sec.round(),
        "ratio_to_raw_ceiling": (per_sec / raw.max(1.0) * 1000.0).round() / 1000.0,
        "cpu_seconds_per_1000_deliveries": per_1000(cpu, delivered),
        "sink_cpu_seconds_per_1000_deliveries": per_1000(others.sink, delivered),
        "duplicates": delivered.saturating_sub(expected),
        "lost": events.saturating_sub(stats["unique"].as_u64().unwrap_or(0)),
        "bad_signatures": stats["bad_signatures"],
    }))
}
