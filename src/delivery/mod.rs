//! The delivery engine: claims due deliveries per webhook, attempts them concurrently, records
//! each attempt and schedules retries.
//!
//! Isolation: every webhook has its own concurrency limit and optional rate limit, and the claim
//! loop visits webhooks in turn, claiming for each only what it can start now, so a slow or
//! failing endpoint occupies at most its own slots. Durability: deliveries are leased in the
//! store; a process that dies leaves leases that expire and are claimed again, and on shutdown
//! the leases of attempts that did not finish are released.

pub mod attempt;
pub mod notify;
pub mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::destinations::{self, RenderSettings};
use crate::domain::secret::Secret;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::signing::SigningKeys;
use crate::store::{AttemptRecord, ClaimedDelivery, DeliveryStart, NewEvent, Store, StoreError};
use crate::transport::http::{GuardedConnector, HttpTransport, Resolve, SystemResolver};
use crate::transport::ssrf::AddressPolicy;
use crate::transport::syslog::SyslogTransport;
use attempt::{AttemptContext, Destination, HeaderNames};

/// The most deliveries claimed in one query.
const CLAIM_BATCH: usize = 512;
/// How many deliveries a webhook may hold claimed (in flight and queued), in multiples of its
/// concurrency, and at most: a deep enough queue that the next claim lands before it runs dry.
/// A claim is a round trip through the store's writer, which is also committing batch publishes:
/// on SQLite it takes 10-20 ms while they come in, and a fast endpoint takes 35 000 deliveries
/// a second (the load test's scenario (a)), so the queue holds up to 16 of its slots' worth.
const PREFETCH_FACTOR: usize = 16;
const PREFETCH_MAX: usize = 1024;
/// Deliveries being published are taken straight into a webhook's queue while it holds up to
/// this many times its prefetch (see [`Dispatcher::offer`]): taking them costs no claim and no
/// event read, so they are worth more room than claimed ones. On SQLite a claimed delivery costs
/// about 6 µs more CPU than one handed over (its share of the claim, 2.4 µs in the writer, and its
/// event's read, 3.9 µs); at 4 (2 before) the load test's scenario (a) delivered 2-5% more a
/// second, in three pairs of runs out of three (docs/performance.md).
const HAND_OVER_FACTOR: usize = 4;
/// How long an idle webhook waits before its queue is looked at again (publishes in this process
/// wake it at once; this bounds the delay for other processes' publishes).
const IDLE_RECHECK: Duration = Duration::from_millis(500);

/// Per-webhook scheduling state in this process.
struct Slot {
    in_flight: usize,
    /// Not worth claiming for before this instant (nothing was due).
    idle_until: Instant,
    /// No held deliveries were left to release (after a re-enable): look again after this.
    held_recheck: Instant,
    /// Token bucket for `max_per_second`.
    tokens: f64,
    refilled: Instant,
    /// Claimed deliveries waiting for a free slot.
    queue: std::collections::VecDeque<Queued>,
    /// Deliveries being published in this process that are to be handed over (see `offer`).
    promised: usize,
}

/// A claimed delivery waiting for a free slot of its webhook.
struct Queued {
    delivery: ClaimedDelivery,
    destination: Arc<Destination>,
    /// The claim's lease id, and when the lease ends (ms).
    claimer: String,
    lease_until: i64,
}

impl Slot {
    fn new() -> Self {
        Self {
            in_flight: 0,
            idle_until: Instant::now(),
            held_recheck: Instant::now(),
            tokens: 1.0,
            refilled: Instant::now(),
            queue: std::collections::VecDeque::new(),
            promised: 0,
        }
    }
}

pub struct Inner {
    store: Arc<dyn Store>,
    cipher: Cipher,
    catalogue: Catalogue,
    http: HttpTransport,
    syslog: SyslogTransport,
    render: RenderSettings,
    names: HeaderNames,
    retry_delays: Vec<Duration>,
    failure_threshold: u32,
    /// Extra lease time beyond an attempt's own timeout, in ms.
    lease_margin_ms: i64,
    per_webhook: usize,
    global: Arc<Semaphore>,
    /// Attempts whose result is still being written: bounds the memory a slow database can take.
    recording: Arc<Semaphore>,
    slots: Mutex<HashMap<Uuid, Slot>>,
    /// Webhooks that got new work since the claim loop last looked.
    woken: Mutex<std::collections::HashSet<Uuid>>,
    wake: Notify,
    /// (seq, lease id) of claimed deliveries not yet recorded, released on shutdown if they do
    /// not finish.
    in_flight: Mutex<HashMap<i64, String>>,
    /// Set on shutdown: nothing new starts.
    stopping: std::sync::atomic::AtomicBool,
    /// A webhook found no free worker (or no room for results) to start its next delivery.
    starved: std::sync::atomic::AtomicBool,
    /// Lease ids are `<process>:<n>`: this process's part, and the last n.
    process: String,
    leases: std::sync::atomic::AtomicU64,
    mailer: Option<crate::delivery::notify::Mailer>,
}

/// A handle to the delivery engine (cheap to clone).
#[derive(Clone)]
pub struct Dispatcher(Arc<Inner>);

impl std::ops::Deref for Dispatcher {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Dispatcher {
    pub fn new(
        settings: &Settings,
        store: Arc<dyn Store>,
        cipher: Cipher,
        catalogue: Catalogue,
    ) -> anyhow::Result<Self> {
        Self::with_resolver(settings, store, cipher, catalogue, Arc::new(SystemResolver))
    }

    /// Like `new`, with a chosen DNS resolver (tests map names to addresses with it).
    pub fn with_resolver(
        settings: &Settings,
        store: Arc<dyn Store>,
        cipher: Cipher,
        catalogue: Catalogue,
        resolver: Arc<dyn Resolve>,
    ) -> anyhow::Result<Self> {
        let extra_ca = match &settings.extra_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_EXTRA_CA_FILE: {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let client = match &settings.client_cert {
            Some((cert, key)) => Some((
                std::fs::read(cert).map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_CLIENT_CERT_FILE: {e}"))?,
                std::fs::read(key).map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_CLIENT_KEY_FILE: {e}"))?,
            )),
            None => None,
        };
        let client = client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        let tls = crate::transport::http::tls_config(extra_ca.as_deref(), client).map_err(|e| {
            anyhow::anyhow!("invalid TLS settings (TOCSIN_EXTRA_CA_FILE, TOCSIN_CLIENT_CERT_FILE): {e}")
        })?;
        let policy = AddressPolicy::new(settings.allow_destinations.clone());
        let syslog =
            SyslogTransport::new(policy.clone(), resolver.clone(), Arc::new(tls.clone()), settings.syslog_udp_max);
        let mailer = match &settings.smtp_url {
            Some(url) => Some(
                crate::delivery::notify::Mailer::new(&url.0, &settings.smtp_from)
                    .map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_SMTP_URL: {e}"))?,
            ),
            None => None,
        };
        let connector = GuardedConnector::new(policy, resolver);
        Ok(Self(Arc::new(Inner {
            store,
            cipher,
            catalogue,
            http: HttpTransport::new(connector, tls, settings.workers),
            syslog,
            render: settings.render.clone(),
            names: HeaderNames::new(&settings.header_prefix),
            retry_delays: settings.retry_delays.clone(),
            failure_threshold: settings.failure_threshold,
            lease_margin_ms: settings.lease_margin.as_millis() as i64,
            per_webhook: settings.webhook_concurrency.min(settings.workers),
            global: Arc::new(Semaphore::new(settings.workers)),
            recording: Arc::new(Semaphore::new(settings.workers * 4)),
            slots: Mutex::new(HashMap::new()),
            woken: Mutex::new(std::collections::HashSet::new()),
            wake: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            starved: std::sync::atomic::AtomicBool::new(false),
            process: format!("{}:{}", std::process::id(), Uuid::new_v4().simple()),
            leases: std::sync::atomic::AtomicU64::new(0),
            mailer,
        })))
    }

    /// New work for these webhooks: look at their queues now.
    pub fn wake(&self, webhooks: impl IntoIterator<Item = Uuid>) {
        let now = Instant::now();
        if let (Ok(mut slots), Ok(mut woken)) = (self.slots.lock(), self.woken.lock()) {
            for id in webhooks {
                slots.entry(id).or_insert_with(Slot::new).idle_until = now;
                woken.insert(id);
            }
        }
        self.wake.notify_one();
    }

    /// Opens a webhook's secrets for signing, and gathers how its tenant's events are presented.
    async fn destination(&self, webhook: Webhook) -> Result<Destination, String> {
        let mut presentations = HashMap::new();
        if destinations::of(webhook.format).uses_presentation() {
            for et in self.catalogue.iter() {
                if let Some(p) = &et.presentation {
                    presentations.insert(et.name.clone(), p.clone());
                }
            }
            let own = self.store.list_event_types(&webhook.tenant_id).await.map_err(|e| e.to_string())?;
            for et in own {
                if let Some(p) = et.presentation {
                    presentations.entry(et.name).or_insert(p);
                }
            }
        }
        let open = |sealed: &[u8]| {
            self.cipher
                .open(sealed, webhook.id.as_bytes())
                .map(Secret::from_stored)
                .map_err(|e| format!("cannot open the webhook's secret: {e}"))
        };
        let secret = open(&webhook.secret.current)?;
        let previous = match (&webhook.secret.previous, webhook.secret.previous_expires_at) {
            (Some(prev), Some(until)) if until > now_ms() => Some(SigningKeys::new(&open(prev)?)),
            _ => None,
        };
        let keys = SigningKeys::new(&secret);
        Ok(Destination { webhook, secret, keys, previous, presentations, failed_since_read: Default::default() })
    }

    fn context(&self) -> AttemptContext<'_> {
        AttemptContext {
            http: &self.http,
            syslog: &self.syslog,
            render: &self.render,
            names: &self.names,
            retry_delays: &self.retry_delays,
            failure_threshold: self.failure_threshold,
        }
    }

    /// Runs the claim loop until `stop` resolves; then lets attempts in flight finish for up to
    /// `grace` and releases the leases of those that did not.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>, grace: Duration) {
        tokio::pin!(stop);
        let mut webhooks: Vec<Uuid> = Vec::new();
        let mut refreshed = Instant::now() - Duration::from_secs(60);
        let mut start = 0usize;
        loop {
            if refreshed.elapsed() > Duration::from_secs(1) {
                match self.store.active_webhook_ids().await {
                    Ok(ids) => webhooks = ids,
                    Err(e) => tracing::warn!(error = %e, "cannot list webhooks; retrying"),
                }
                // Leases of a process that died (or stalled) end: their deliveries are due again.
                match self.store.expire_leases(now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deliveries = n, "expired leases returned to the queue"),
                    Err(e) => tracing::warn!(error = %e, "cannot expire leases; retrying"),
                }
                refreshed = Instant::now();
            }
            // Webhooks woken by a publish in this process are visited at once, even if they were
            // created after the last refresh.
            if let Ok(mut woken) = self.woken.lock() {
                for id in woken.drain() {
                    if !webhooks.contains(&id) {
                        webhooks.push(id);
                    }
                }
            }
            let mut claimed_any = false;
            if !webhooks.is_empty() {
                start = (start + 1) % webhooks.len();
                for i in 0..webhooks.len() {
                    let id = webhooks[(start + i) % webhooks.len()];
                    match self.claim_for(id).await {
                        Ok(n) => claimed_any |= n > 0,
                        Err(e) => tracing::warn!(webhook = %id, error = %e, "claim failed"),
                    }
                    if self.global.available_permits() == 0 {
                        break;
                    }
                }
            }
            if !claimed_any {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = self.wake.notified() => {},
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {},
                }
            } else if futures_poll_ready(&mut stop).await {
                break;
            }
        }
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        // Claimed but not started: give the leases back now.
        let queued: Vec<(i64, String)> = self
            .slots
            .lock()
            .map(|mut slots| {
                slots.values_mut().flat_map(|s| s.queue.drain(..)).map(|q| (q.delivery.seq, q.claimer)).collect()
            })
            .unwrap_or_default();
        if let Ok(mut m) = self.in_flight.lock() {
            for (seq, _) in &queued {
                m.remove(seq);
            }
        }
        if let Err(e) = self.store.release(&queued).await {
            tracing::warn!(error = %e, "could not release queued leases; they expire on their own");
        }
        tracing::info!("delivery: stopped claiming; waiting for attempts in flight");
        let deadline = Instant::now() + grace;
        while self.in_flight.lock().map(|m| !m.is_empty()).unwrap_or(false) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<(i64, String)> =
            self.in_flight.lock().map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect()).unwrap_or_default();
        if !left.is_empty() {
            if let Err(e) = self.store.release(&left).await {
                tracing::warn!(error = %e, "could not release leases; they expire on their own");
            }
            tracing::info!(released = left.len(), "delivery: released unfinished attempts");
        }
    }

    /// Claims what webhook `id` may take now, ahead of need (a queue of several times its
    /// concurrency, so the next claim lands before the queue runs dry), and starts what it can.
    /// Returns how many it claimed.
    async fn claim_for(&self, id: Uuid) -> Result<usize, StoreError> {
        self.start_ready(id);
        let now = Instant::now();
        let room = {
            let mut slots = self.slots.lock().expect("slots lock");
            let slot = slots.entry(id).or_insert_with(Slot::new);
            if slot.idle_until > now {
                return Ok(0);
            }
            self.claim_room(slot)
        };
        if room == 0 {
            return Ok(0);
        }
        let Some(webhook) = self.store.webhook_by_id(id).await? else { return Ok(0) };
        // Slack accepts about one message per second per webhook: that is its default limit.
        let rate = max_per_second(&webhook);
        let room = self.take_tokens(id, rate, room);
        if room == 0 || !webhook.is_active {
            return Ok(0);
        }
        let lease_until = now_ms() + webhook.timeout_ms as i64 + self.lease_margin_ms;
        // Each claim gets its own lease id.
        let claimer = &self.lease_id();
        let claimed = self.store.claim(id, claimer, room as u32, lease_until).await?;
        let released = if claimed.len() < room { self.release_held(id).await } else { 0 };
        if claimed.is_empty() && released == 0 {
            if let Ok(mut slots) = self.slots.lock() {
                if let Some(slot) = slots.get_mut(&id) {
                    slot.idle_until = Instant::now() + IDLE_RECHECK.min(Duration::from_millis(100));
                }
            }
            return Ok(0);
        }
        let dest = match self.destination(webhook).await {
            Ok(d) => Arc::new(d),
            Err(why) => {
                tracing::error!(webhook = %id, error = %why, "cannot sign for webhook; releasing its deliveries");
                let leases: Vec<(i64, String)> = claimed.iter().map(|d| (d.seq, claimer.to_string())).collect();
                self.store.release(&leases).await?;
                if let Ok(mut slots) = self.slots.lock() {
                    if let Some(slot) = slots.get_mut(&id) {
                        slot.idle_until = Instant::now() + Duration::from_secs(30);
                    }
                }
                return Ok(0);
            }
        };
        let n = claimed.len();
        self.enqueue(id, claimed, dest, claimer, lease_until);
        Ok(n)
    }

    /// Queues deliveries leased to this process (claimed, or handed over by a publish) behind
    /// webhook `id`'s slots, remembers their leases for shutdown, and starts what it can.
    fn enqueue(
        &self,
        id: Uuid,
        deliveries: Vec<ClaimedDelivery>,
        dest: Arc<Destination>,
        claimer: &str,
        lease_until: i64,
    ) {
        if let Ok(mut m) = self.in_flight.lock() {
            for d in &deliveries {
                m.insert(d.seq, claimer.to_string());
            }
        }
        if let Ok(mut slots) = self.slots.lock() {
            let slot = slots.entry(id).or_insert_with(Slot::new);
            slot.queue.extend(deliveries.into_iter().map(|delivery| Queued {
                delivery,
                destination: dest.clone(),
                claimer: claimer.to_string(),
                lease_until,
            }));
        }
        self.start_ready(id);
    }

    /// Wakes the claim loop if a webhook found no free worker since it last looked: a worker
    /// was just freed, and the loop starts that webhook's queue.
    fn wake_if_starved(&self) {
        if self.starved.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// How many deliveries are worth claiming for `slot` now: claims come in batches, when the
    /// webhook holds nothing or at least a quarter of its prefetch room is free; otherwise 0.
    fn claim_room(&self, slot: &Slot) -> usize {
        let held = slot.in_flight + slot.queue.len() + slot.promised;
        let target = self.prefetch_target();
        let free = target.saturating_sub(held);
        if held > 0 && free < target / 4 {
            return 0;
        }
        free.min(CLAIM_BATCH)
    }

    /// How many deliveries a webhook may hold in this process (in flight, queued or promised).
    fn prefetch_target(&self) -> usize {
        (PREFETCH_FACTOR * self.per_webhook).min(PREFETCH_MAX).max(2 * self.per_webhook)
    }

    /// A new lease id: each claim and each hand-over gets its own.
    fn lease_id(&self) -> String {
        let n = self.leases.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        format!("{}:{n}", self.process)
    }

    /// Offers to take `count` deliveries of `webhook` that are being published in this process
    /// straight into its queue, leased, with no claim and no event read: the fast path from
    /// publish to delivery. Granted when the webhook is active, sends without a rate limit, and
    /// has room for all of them now (up to [`HAND_OVER_FACTOR`] times its prefetch); the caller
    /// then publishes them with the returned start and hands them over with
    /// [`Dispatcher::adopt`] (or gives the room back with `withdraw`).
    fn offer_now(&self, webhook: &Webhook, count: usize) -> Option<DeliveryStart> {
        let rate_limited = max_per_second(webhook).is_some();
        if count == 0 || !webhook.is_active || rate_limited || self.stopping.load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        let mut slots = self.slots.lock().ok()?;
        let slot = slots.entry(webhook.id).or_insert_with(Slot::new);
        let held = slot.in_flight + slot.queue.len() + slot.promised;
        if held + count > HAND_OVER_FACTOR * self.prefetch_target() {
            return None;
        }
        slot.promised += count;
        drop(slots);
        let lease_until = now_ms() + webhook.timeout_ms as i64 + self.lease_margin_ms;
        Some(DeliveryStart::Leased { claimer: self.lease_id(), lease_until })
    }

    /// Gives back the room of an offer whose publish failed.
    fn withdraw_now(&self, webhook: Uuid, count: usize) {
        if let Ok(mut slots) = self.slots.lock() {
            if let Some(slot) = slots.get_mut(&webhook) {
                slot.promised = slot.promised.saturating_sub(count);
            }
        }
    }

    /// Takes over the deliveries published leased under an offer of `count` (fewer when some
    /// events were repeats) and starts them.
    async fn adopt_now(&self, webhook: Webhook, start: DeliveryStart, deliveries: Vec<ClaimedDelivery>, count: usize) {
        let id = webhook.id;
        self.withdraw_now(id, count);
        let DeliveryStart::Leased { claimer, lease_until } = start else { return };
        if deliveries.is_empty() {
            return;
        }
        let opened = match self.destination(webhook).await {
            // Shutting down: nothing new starts, the leases go back at once.
            Ok(_) if self.stopping.load(std::sync::atomic::Ordering::Relaxed) => {
                Err("the dispatcher is stopping".to_string())
            }
            other => other,
        };
        let dest = match opened {
            Ok(d) => Arc::new(d),
            Err(why) => {
                tracing::warn!(webhook = %id, error = %why, "cannot take over published deliveries; releasing them");
                let leases: Vec<(i64, String)> = deliveries.iter().map(|d| (d.seq, claimer.clone())).collect();
                if let Err(e) = self.store.release(&leases).await {
                    tracing::warn!(error = %e, "could not release leases; they expire on their own");
                }
                return;
            }
        };
        self.enqueue(id, deliveries, dest, &claimer, lease_until);
    }

    /// Makes the next chunk of the webhook's held deliveries pending (a re-enabled webhook's
    /// backlog is released as it drains); checks at most once a second once none are left.
    async fn release_held(&self, id: Uuid) -> u64 {
        let due = self.slots.lock().ok().and_then(|s| s.get(&id).map(|s| s.held_recheck <= Instant::now()));
        if due != Some(true) {
            return 0;
        }
        match self.store.release_held(id, now_ms()).await {
            Ok(0) => {
                if let Ok(mut slots) = self.slots.lock() {
                    if let Some(slot) = slots.get_mut(&id) {
                        slot.held_recheck = Instant::now() + Duration::from_secs(1);
                    }
                }
                0
            }
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "cannot release held deliveries; retrying");
                0
            }
        }
    }

    /// Starts queued deliveries of webhook `id` while it has free slots and the process has
    /// free workers.
    fn start_ready(&self, id: Uuid) {
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        loop {
            // Out of workers (or of room for results): whichever attempt ends first wakes the
            // claim loop, which starts this webhook's queue then.
            let Ok(permit) = self.global.clone().try_acquire_owned() else {
                self.starved.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            };
            let Ok(recording) = self.recording.clone().try_acquire_owned() else {
                self.starved.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            };
            let next = {
                let mut slots = self.slots.lock().expect("slots lock");
                let Some(slot) = slots.get_mut(&id) else { return };
                if slot.in_flight >= self.per_webhook {
                    return;
                }
                let Some(next) = slot.queue.pop_front() else { return };
                slot.in_flight += 1;
                next
            };
            let Queued { delivery: d, destination: dest, claimer, lease_until } = next;
            let this = self.clone();
            // Waiting in the queue used up too much of the lease to finish the attempt inside it
            // (the endpoint slowed down): give the delivery back rather than risk a second sender.
            if now_ms() + dest.webhook.timeout_ms as i64 >= lease_until {
                tokio::spawn(async move {
                    if let Err(e) = this.store.release(&[(d.seq, claimer)]).await {
                        tracing::warn!(error = %e, "could not release a lease; it expires on its own");
                    }
                    if let Ok(mut m) = this.in_flight.lock() {
                        m.remove(&d.seq);
                    }
                    if let Ok(mut slots) = this.slots.lock() {
                        if let Some(slot) = slots.get_mut(&d.webhook_id) {
                            slot.in_flight = slot.in_flight.saturating_sub(1);
                        }
                    }
                    drop((permit, recording));
                    this.start_ready(d.webhook_id);
                    this.wake_if_starved();
                });
                continue;
            }
            // Boxed: the attempt's future (HTTP request included) is large, and tokio would
            // otherwise copy it into the task and again over it when the task finishes.
            tokio::spawn(Box::pin(async move {
                let completion = attempt::attempt(&this.context(), &dest, &d, &claimer, false).await;
                // The exchange is over: its slot is free while the result is written.
                let mut claim_now = true;
                if let Ok(mut slots) = this.slots.lock() {
                    if let Some(slot) = slots.get_mut(&d.webhook_id) {
                        slot.in_flight = slot.in_flight.saturating_sub(1);
                        slot.idle_until = Instant::now();
                        claim_now = this.claim_room(slot) > 0;
                    }
                }
                drop(permit);
                this.start_ready(d.webhook_id);
                // The claim loop is woken only when a claim is due or another webhook waits for
                // a worker (not after every attempt); it also looks on its own every 50 ms.
                if claim_now {
                    this.wake.notify_one();
                } else {
                    this.wake_if_starved();
                }
                if let Some(error) = &completion.attempt.error {
                    tracing::debug!(webhook = %dest.webhook.id, event_ref = %d.event_ref, attempt = completion.attempt.attempt_no, %error, "attempt failed");
                }
                this.record(&completion, &dest.webhook).await;
                if let Ok(mut m) = this.in_flight.lock() {
                    m.remove(&d.seq);
                }
                drop(recording);
                this.wake_if_starved();
            }));
        }
    }

    /// Consumes up to `want` tokens of the webhook's rate limit; returns how many it may send.
    fn take_tokens(&self, id: Uuid, max_per_second: Option<u32>, want: usize) -> usize {
        let Some(rate) = max_per_second else { return want };
        let mut slots = self.slots.lock().expect("slots lock");
        let slot = slots.entry(id).or_insert_with(Slot::new);
        let now = Instant::now();
        let burst = rate as f64;
        slot.tokens = (slot.tokens + now.duration_since(slot.refilled).as_secs_f64() * rate as f64).min(burst);
        slot.refilled = now;
        let n = (slot.tokens.floor() as usize).min(want);
        slot.tokens -= n as f64;
        if n == 0 {
            slot.idle_until = now + Duration::from_secs_f64((1.0 - slot.tokens) / rate as f64);
        }
        n
    }

    /// Stores a completion, retrying while the database is briefly unavailable. If it cannot be
    /// stored the lease expires and the delivery is attempted again: at least once, never lost.
    async fn record(&self, completion: &crate::store::Completion, webhook: &Webhook) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..8 {
            match self.store.complete(completion).await {
                Ok(disabled) => {
                    if disabled {
                        self.on_disabled(webhook).await;
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record an attempt; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        tracing::error!(webhook = %webhook.id, "giving up recording an attempt; its lease will expire and it will be retried");
    }

    /// The circuit breaker (or a 410) disabled a webhook: tell the tenant's subscribers.
    async fn on_disabled(&self, webhook: &Webhook) {
        let current = self.store.webhook_by_id(webhook.id).await.ok().flatten();
        let reason = current.as_ref().and_then(|w| w.disabled_reason.clone()).unwrap_or_default();
        let failures = current.as_ref().map_or(0, |w| w.failure_count);
        tracing::warn!(webhook = %webhook.id, tenant = %webhook.tenant_id, %reason, "webhook disabled");
        let data = serde_json::json!({
            "webhook_id": webhook.id,
            "name": webhook.name,
            "url": webhook.url.as_str(),
            "reason": reason,
            "failure_count": failures,
            "owner_email": webhook.owner_email,
        });
        if let Err(e) = publish_system_event(self, &webhook.tenant_id, "webhook.disabled", data).await {
            tracing::warn!(error = %e, "cannot publish webhook.disabled");
        }
        if let (Some(mailer), Some(to)) = (&self.mailer, &webhook.owner_email) {
            if let Err(e) = mailer.webhook_disabled(to, webhook, &reason, failures).await {
                tracing::warn!(webhook = %webhook.id, error = %e, "cannot email the webhook's owner");
            }
        }
    }

    /// Sends a `webhook.test` event to `webhook` now, through the same attempt path, and returns
    /// the logged attempt. Works on an inactive webhook too.
    pub async fn send_test(&self, webhook: Webhook, data: serde_json::Value) -> Result<AttemptRecord, StoreError> {
        let event = NewEvent {
            id: Uuid::now_v7(),
            tenant_id: webhook.tenant_id.clone(),
            event_ref: Uuid::new_v4().to_string(),
            event_type: "webhook.test".into(),
            ordering_key: None,
            data: data.to_string().into_bytes().into(),
            created_at: now_ms(),
        };
        let published = self.store.publish(vec![(event.clone(), Vec::new())]).await?;
        let claimer = format!("test:{}", Uuid::new_v4().simple());
        let lease_until = now_ms() + webhook.timeout_ms as i64 + self.lease_margin_ms;
        let seq = self
            .store
            .lease_new_delivery(published[0].event_id, &webhook.tenant_id, webhook.id, &claimer, lease_until)
            .await?;
        let claimed = ClaimedDelivery {
            seq,
            attempts: 0,
            tenant_id: webhook.tenant_id.to_string(),
            webhook_id: webhook.id,
            event_id: published[0].event_id,
            event_ref: event.event_ref.clone(),
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            created_at: event.created_at,
        };
        let dest = self.destination(webhook).await.map_err(StoreError::Corrupt)?;
        let completion = attempt::attempt(&self.context(), &dest, &claimed, &claimer, true).await;
        self.record(&completion, &dest.webhook).await;
        Ok(completion.attempt)
    }
}

/// Publishes an event raised by Tocsin itself to the tenant's subscribers of it.
async fn publish_system_event(
    dispatcher: &Dispatcher,
    tenant: &TenantId,
    event_type: &str,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    let event = NewEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant.clone(),
        event_ref: Uuid::new_v4().to_string(),
        event_type: event_type.to_string(),
        ordering_key: None,
        data: data.to_string().into_bytes().into(),
        created_at: now_ms(),
    };
    let (_, woken) = crate::fanout::commit(dispatcher.store.as_ref(), tenant, vec![event], None).await?;
    dispatcher.wake(woken);
    Ok(())
}

/// The webhook's rate limit: its own, or its format's default.
fn max_per_second(webhook: &Webhook) -> Option<u32> {
    webhook.max_per_second.or_else(|| destinations::of(webhook.format).default_max_per_second())
}

/// True when `fut` has already completed (without waiting).
async fn futures_poll_ready<F: std::future::Future<Output = ()> + Unpin>(fut: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = fut => true,
        _ = std::future::ready(()) => false,
    }
}

#[async_trait::async_trait]
impl crate::fanout::HandOver for Dispatcher {
    fn offer(&self, webhook: &Webhook, count: usize) -> Option<DeliveryStart> {
        self.offer_now(webhook, count)
    }

    fn withdraw(&self, webhook: Uuid, count: usize) {
        self.withdraw_now(webhook, count)
    }

    async fn adopt(&self, webhook: Webhook, start: DeliveryStart, deliveries: Vec<ClaimedDelivery>, count: usize) {
        self.adopt_now(webhook, start, deliveries, count).await
    }
}
