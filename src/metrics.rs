//! Prometheus metrics (`GET /metrics`, OpenMetrics text). Counters and histograms are recorded
//! where things happen, in one process-wide set ([`global`]); what is state (deliveries pending
//! and held, each webhook's circuit) is read from the store when scraped. Labels are bounded:
//! formats, outcomes, route templates, status codes, webhook ids; never an event_ref or a URL.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The error's code (`invalid_value`, `unknown_event_type`, …).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `succeeded`, `retrying` or `failed`.
    pub outcome: &'static str,
    pub format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FormatLabel {
    pub format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabel {
    /// `sqlite` or `postgres`.
    pub store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// One of a fixed set (`other` for any other name a client sends).
    pub method: &'static str,
    /// The route's template (`/api/v1/webhooks/{id}`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub tenant: String,
    pub webhook: String,
}

/// What the process counts.
#[derive(Debug)]
pub struct Metrics {
    pub events_accepted: Counter,
    pub events_rejected: Family<ReasonLabel, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub attempt_seconds: Family<FormatLabel, Histogram>,
    pub commit_seconds: Family<StoreLabel, Histogram>,
    pub http_requests: Family<RequestLabels, Counter>,
}

fn seconds_histogram() -> Histogram {
    // 0.5 ms to about 33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        events_accepted: Counter::default(),
        events_rejected: Family::default(),
        deliveries: Family::default(),
        attempt_seconds: Family::new_with_constructor(seconds_histogram),
        commit_seconds: Family::new_with_constructor(seconds_histogram),
        http_requests: Family::default(),
    })
}

/// Records one attempt: its outcome and how long the exchange took.
pub fn attempt(format: &'static str, outcome: &'static str, took: Duration) {
    let m = global();
    m.deliveries.get_or_create(&DeliveryLabels { outcome, format }).inc();
    m.attempt_seconds.get_or_create(&FormatLabel { format }).observe(took.as_secs_f64());
}

/// Records one commit of the store.
pub fn commit(store: &'static str, took: Duration) {
    global().commit_seconds.get_or_create(&StoreLabel { store }).observe(took.as_secs_f64());
}

/// The state read from the store at a scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub pending: i64,
    pub held: i64,
    /// (tenant, webhook id, circuit open) of each active webhook.
    pub circuits: Vec<(String, String, bool)>,
}

/// The OpenMetrics text of the counters and of `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let m = global();
    let mut registry = Registry::with_prefix("tocsin");
    registry.register("events_accepted", "Events accepted (stored) by publishes", m.events_accepted.clone());
    registry.register("events_rejected", "Publishes refused, by the error's code", m.events_rejected.clone());
    registry.register("deliveries", "Delivery attempts, by outcome and format", m.deliveries.clone());
    registry.register("attempt_seconds", "Time of an attempt's exchange, by format", m.attempt_seconds.clone());
    registry.register("store_commit_seconds", "Time of a store commit", m.commit_seconds.clone());
    registry.register("http_requests", "API and dashboard requests, by route and status", m.http_requests.clone());
    let deliveries = Family::<StateLabel, Gauge>::default();
    deliveries.get_or_create(&StateLabel { state: "pending" }).set(snapshot.pending);
    deliveries.get_or_create(&StateLabel { state: "held" }).set(snapshot.held);
    registry.register("deliveries_waiting", "Deliveries waiting: pending (due or retrying) and held", deliveries);
    let circuits = Family::<WebhookLabels, Gauge>::default();
    for (tenant, webhook, open) in &snapshot.circuits {
        circuits
            .get_or_create(&WebhookLabels { tenant: tenant.clone(), webhook: webhook.clone() })
            .set(i64::from(*open));
    }
    registry.register("webhook_circuit_open", "1 while an active webhook's circuit breaker is open", circuits);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}
