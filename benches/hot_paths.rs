//! Micro-benchmarks of the hot pieces: signing, every renderer, a batch publish and the claim →
//! complete cycle on a real SQLite file. Run with `cargo bench`; compare ratios within one run
//! (shared machine).

use std::sync::Arc;

use divan::{black_box, Bencher};
use serde_json::json;
use tocsin::catalogue::Catalogue;
use tocsin::destinations::parse_format;
use tocsin::destinations::{render, EventView, RenderSettings};
use tocsin::domain::secret::Secret;
use tocsin::domain::tenant::TenantId;
use tocsin::domain::time::now_ms;
use tocsin::signing::{
    seed_signature, seed_signature_keyed, standard_signature, standard_signature_keyed, SigningKeys,
};
use tocsin::store::{AttemptRecord, Breaker, Completion, DeliveryStart, NewEvent, NextStep, Store, Target};

fn main() {
    divan::main();
}

fn body_1k() -> Vec<u8> {
    format!("{{\"event\":\"alert.created\",\"data\":{{\"pad\":\"{}\"}}}}", "x".repeat(980)).into_bytes()
}

#[divan::bench]
fn sign_seed_1k(b: Bencher) {
    let secret = Secret::generate();
    let body = body_1k();
    b.bench(|| seed_signature(black_box(&secret), black_box(&body)));
}

#[divan::bench]
fn sign_standard_webhooks_1k(b: Bencher) {
    let secret = Secret::generate();
    let body = body_1k();
    b.bench(|| {
        standard_signature(black_box(&secret), "3fa85f64-5717-4562-b3fc-2c963f66afa6", 1_778_250_645, black_box(&body))
    });
}

/// A webhook's payload filter as the publish checks it: the event's data parsed and graded once
/// (shared by every filtering webhook), then the expression evaluated.
#[divan::bench]
fn filter_one_event(b: Bencher) {
    use tocsin::domain::filter::{EventFilter, FilterContext, FilterInput};
    let filter = EventFilter::parse(r#"data.phish_score >= 90 && data.source == "auto""#, "filter").unwrap();
    let raw =
        br#"{"subject":"Invoice","sender_email":"a@example.com","phish_score":95,"source":"auto","reason":"policy"}"#;
    let config = serde_json::json!({"severity": {"field": "phish_score", "scale": "score"}});
    b.bench(|| {
        let data: serde_json::Value = serde_json::from_slice(black_box(raw)).unwrap();
        let severity = tocsin::destinations::presentation::severity_of(&data, Some(&config));
        let input =
            FilterInput { event: "email.quarantined", severity: severity.name(), tenant_id: "default", data: &data };
        filter.matches(&FilterContext::new(black_box(&input)))
    });
}

/// The expression alone, its event's context made already (each further filtering webhook).
#[divan::bench]
fn filter_one_more_webhook(b: Bencher) {
    use tocsin::domain::filter::{EventFilter, FilterContext, FilterInput};
    let filter = EventFilter::parse(r#"data.phish_score >= 90 && data.source == "auto""#, "filter").unwrap();
    let data = serde_json::json!({"subject": "Invoice", "phish_score": 95, "source": "auto"});
    let context = FilterContext::new(&FilterInput {
        event: "email.quarantined",
        severity: "critical",
        tenant_id: "t",
        data: &data,
    });
    b.bench(|| filter.matches(black_box(&context)));
}

/// An Ed25519 (`v1a`) signature of a 1 KiB body, as an ed25519 webhook's deliveries carry.
#[divan::bench]
fn sign_ed25519_1k(b: Bencher) {
    let keys = SigningKeys::new(&Secret::generate_ed25519());
    let body = body_1k();
    b.bench(|| {
        tocsin::signing::ed25519_signature_bytes(
            black_box(&keys),
            "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            b"1778250645",
            &body,
        )
    });
}

/// As the dispatcher signs: the keys set up once per webhook.
#[divan::bench]
fn sign_both_schemes_1k_keyed(b: Bencher) {
    let keys = SigningKeys::new(&Secret::generate());
    let body = body_1k();
    b.bench(|| {
        (
            seed_signature_keyed(black_box(&keys), black_box(&body)),
            standard_signature_keyed(black_box(&keys), "3fa85f64-5717-4562-b3fc-2c963f66afa6", 1_778_250_645, &body),
        )
    });
}

#[divan::bench(args = ["json", "slack", "teams", "cef", "cef-syslog", "syslog", "splunk_hec"])]
fn render_phishnet_example(b: Bencher, format: &str) {
    let catalogue = Catalogue::load(&[] as &[&std::path::Path]).unwrap();
    let et = catalogue.get("email.quarantined").unwrap().clone();
    let data = et.example.clone().unwrap().to_string();
    let (f, syslog) = match format {
        "cef-syslog" => (parse_format("cef", "format").unwrap(), true),
        "syslog" => (parse_format("syslog", "format").unwrap(), true),
        other => (parse_format(other, "format").unwrap(), false),
    };
    let settings = RenderSettings::default();
    b.bench(|| {
        render(
            f,
            &EventView {
                event_type: "email.quarantined",
                event_ref: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                tenant_id: "default",
                data: black_box(data.as_bytes()),
                emitted_at: 1_778_250_645_123,
                shape: tocsin::profile::BodyShape::tocsin(),
            },
            et.presentation.as_ref(),
            &settings,
            syslog,
        )
    });
}

/// `n` events of about 1 KiB, each with a pending delivery to every one of `webhooks`.
fn events(tenant: &TenantId, webhooks: &[uuid::Uuid], n: usize) -> Vec<(NewEvent, Vec<Target>)> {
    (0..n)
        .map(|i| {
            (
                NewEvent {
                    id: uuid::Uuid::now_v7(),
                    tenant_id: tenant.clone(),
                    event_ref: format!("{}-{i}", uuid::Uuid::new_v4()),
                    event_type: "alert.created".into(),
                    ordering_key: None,
                    data: json!({"pad": "x".repeat(900)}).to_string().into_bytes().into(),
                    created_at: now_ms(),
                    filtered: Vec::new(),
                    live_token: None,
                },
                webhooks.iter().map(|&webhook_id| Target { webhook_id, start: DeliveryStart::Pending }).collect(),
            )
        })
        .collect()
}

/// `n` webhooks stored in `store` (a publish inserts deliveries only for webhooks it finds).
fn stored_webhooks(rt: &tokio::runtime::Runtime, store: &Store, tenant: &TenantId, n: usize) -> Vec<uuid::Uuid> {
    use tocsin::domain::event_type::EventTypePattern;
    use tocsin::domain::webhook::{CustomHeaders, SealedSecrets, Verification, Webhook, WebhookUrl};
    (0..n)
        .map(|i| {
            let id = uuid::Uuid::now_v7();
            let w = Webhook {
                id,
                tenant_id: tenant.clone(),
                name: format!("bench-{i}"),
                url: WebhookUrl::parse("https://example.com/hook", "url").unwrap(),
                description: None,
                event_types: vec![EventTypePattern::All],
                format: tocsin::destinations::default_format(),
                retry_count: 3,
                timeout_ms: 5000,
                retry_delays_ms: None,
                headers: CustomHeaders::default(),
                is_active: true,
                failure_count: 0,
                disabled_reason: None,
                circuit_open_until: None,
                circuit_opens: 0,
                failing_since: None,
                max_per_second: None,
                owner_email: None,
                min_severity: None,
                filter: None,
                verification: Verification::NotRequired,
                signing_algorithm: Default::default(),
                secret: SealedSecrets {
                    current: Vec::new(),
                    previous: None,
                    previous_expires_at: None,
                    rotated_at: now_ms(),
                    public_key: None,
                },
                created_at: now_ms(),
                updated_at: now_ms(),
            };
            let audit = tocsin::store::AuditEntry {
                tenant_id: tenant.clone(),
                actor: "bench".into(),
                action: "webhook.create".into(),
                target: format!("webhook:{id}"),
                details: json!({}),
                at: now_ms(),
            };
            rt.block_on(store.insert_webhook(&w, audit)).unwrap();
            id
        })
        .collect()
}

/// A fresh SQLite store in `dir`, migrated.
fn sqlite_store(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Arc<Store> {
    rt.block_on(async {
        let s = tocsin::store::open(&tocsin::store::DatabaseUrl::Sqlite(dir.join("b.db"))).await.unwrap();
        s.migrate().await.unwrap();
        s
    })
}

/// Publishes a batch of 1000 events, each to `fan_out` webhooks (as `POST /events/batch` does
/// after validation): the store's work per batch.
#[divan::bench(args = [1, 10], sample_count = 20, sample_size = 1)]
fn publish_1000_sqlite(b: Bencher, fan_out: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&rt, dir.path());
    let tenant = TenantId::default_tenant();
    let webhooks = stored_webhooks(&rt, &store, &tenant, fan_out);
    b.with_inputs(|| events(&tenant, &webhooks, 1000)).bench_local_values(|batch| {
        rt.block_on(store.publish(batch)).unwrap();
    });
}

/// Claims 100 due deliveries and completes them (one attempt each, concurrently, as the
/// dispatcher does, so group commit applies), on a real SQLite file: the store's work per 100
/// deliveries.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn claim_and_complete_100_sqlite(b: Bencher) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&rt, dir.path());
    let tenant = TenantId::default_tenant();
    let webhook = stored_webhooks(&rt, &store, &tenant, 1)[0];
    let fill = |n: usize| rt.block_on(store.publish(events(&tenant, &[webhook], n))).unwrap();
    b.with_inputs(|| fill(100)).bench_local_values(|_| {
        rt.block_on(async {
            let claimer = uuid::Uuid::new_v4().to_string();
            let claimed = store.claim(webhook, &claimer, 100, now_ms() + 60_000).await.unwrap();
            let mut done = tokio::task::JoinSet::new();
            for d in claimed {
                let c = Completion {
                    attempt: AttemptRecord {
                        id: uuid::Uuid::now_v7(),
                        delivery_seq: d.seq,
                        tenant_id: d.tenant_id.clone(),
                        webhook_id: webhook,
                        event_ref: d.event_ref.clone(),
                        event_type: d.event_type.clone(),
                        format: parse_format("json", "format").unwrap(),
                        attempt_no: 1,
                        success: true,
                        http_status: Some(200),
                        error: None,
                        response_ms: 1,
                        request_headers: "{}".into(),
                        dispatched_at: now_ms(),
                        response_body: b"ok".to_vec(),
                        response_headers: r#"{"content-length":"2"}"#.to_string(),
                        next_attempt_at: None,
                        created_at: now_ms(),
                    },
                    next: NextStep::Succeeded,
                    claimer: claimer.clone(),
                    counts_for_breaker: true,
                    counter_was_zero: true,
                    gone: false,
                    ordered: d.ordered,
                    breaker: Breaker { threshold: 5, cooldown_ms: 30_000, disable_after_ms: 72 * 3_600_000 },
                };
                let store = store.clone();
                done.spawn(async move { store.complete(&c).await.unwrap() });
            }
            while done.join_next().await.is_some() {}
        })
    });
}
