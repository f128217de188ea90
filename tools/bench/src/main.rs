//! `tocsin-bench`: the load test. In one run on one machine it starts a sink (`tocsin listen`),
//! measures the raw ceiling (the requests the service would send, 1 KiB bodies signed both ways,
//! straight to the sink at the same concurrency; again before each scenario compared with it),
//! starts `tocsin serve` on a fresh store, creates webhooks, publishes events and waits until
//! every delivery landed, then reports throughput, latency, memory, CPU, duplicates and losses.
//!
//! Scenarios: (a) one webhook; (b) fan-out to ten; (c) ten, one hanging until its timeout;
//! (d) a backlog built while the sink is down, drained when it is up; (e) a steady 1000 events/s;
//! (f16), (f64) one webhook, events published one per request (as products publish them) from 16
//! or 64 concurrent connections, with each publish's latency and, on PostgreSQL, the database's CPU;
//! (g) 5,000 webhooks over 50 tenants, idle (CPU, PostgreSQL commits a second) and under load.
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

use tocsin::delivery::headers::{signed_headers, Signed};
use tocsin::destinations::{self, EventView, RenderSettings};
use tocsin::domain::secret::Secret;
use tocsin::profile::Profiles;
use tocsin::signing::SigningKeys;
use tocsin::transport::http::{GuardedConnector, HttpTransport, SystemResolver};
use tocsin::transport::ssrf::AddressPolicy;

mod load;
mod measure;
mod procs;
mod scenarios;

use load::*;
use measure::*;
use procs::*;
use scenarios::*;
/// The load test of Tocsin (starts its own sink and servers on loopback).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "tocsin-bench", version)]
pub struct BenchArgs {
    /// Scenarios to run: a, b, c, d, e, f16 (or f), f64, g (comma-separated) or all
    #[arg(long, default_value = "a,b,c,e")]
    pub scenario: String,
    /// Events of scenario (a); (b) and (c) publish a fifth as many to ten webhooks
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events of scenarios (f16) and (f64), published one per request
    #[arg(long, default_value_t = 20_000)]
    pub single_events: u64,
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
        ["a", "b", "c", "d", "e", "f16", "f64", "g"].map(String::from).to_vec()
    } else {
        args.scenario.split(',').map(|s| s.trim().to_string()).collect()
    };
    let mut results = Vec::new();
    for s in &wanted {
        // The ceiling is measured again right before each scenario that is compared with it:
        // the machine's speed drifts by tens of per cent within minutes, and a ratio to a
        // ceiling taken minutes earlier measured that drift as much as the service.
        let raw = if matches!(s.as_str(), "a" | "b" | "c" | "d" | "f" | "f16" | "f64" | "g") {
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
            "a" => delivery_scenario(&args, "a", 1, false, args.events, raw, Publishing::Batches).await?,
            "b" => delivery_scenario(&args, "b", 10, false, args.events / 5, raw, Publishing::Batches).await?,
            "c" => delivery_scenario(&args, "c", 9, true, args.events / 5, raw, Publishing::Batches).await?,
            "f" | "f16" => {
                let single = Publishing::Single { connections: 16 };
                delivery_scenario(&args, "f16", 1, false, args.single_events, raw, single).await?
            }
            "f64" => {
                let single = Publishing::Single { connections: 64 };
                delivery_scenario(&args, "f64", 1, false, args.single_events, raw, single).await?
            }
            "d" => backlog_scenario(&args, raw).await?,
            "e" => steady_scenario(&args).await?,
            "g" => many_webhooks_scenario(&args, args.events / 5, raw).await?,
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
