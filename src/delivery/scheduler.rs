//! The claim loop: visits the active webhooks in turn, claims for each what it can start now,
//! starts queued deliveries while slots and workers are free, and on shutdown gives back what
//! did not finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::attempt::{self, Endpoint};
use super::slots::{Origin, Queued, Slot, ASLEEP};

/// A server not seen alive for this long (it says so every second) is taken for dead.
const HEARTBEAT_STALE_MS: i64 = 5_000;
use super::{max_per_second, Dispatcher};
use crate::domain::time::now_ms;
use crate::store::{ClaimedDelivery, NextStep, StoreError};

impl Dispatcher {
    /// Runs the claim loop until `stop` resolves; then lets attempts in flight finish for up to
    /// `grace` and releases the leases of those that did not.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>, grace: Duration) {
        tokio::pin!(stop);
        let mut webhooks: Vec<Uuid> = Vec::new();
        let mut refreshed = Instant::now() - Duration::from_secs(60);
        let mut start = 0usize;
        loop {
            if refreshed.elapsed() > Duration::from_secs(1) {
                match self.store.active_webhooks_due(now_ms()).await {
                    Ok(found) => {
                        webhooks = found.iter().map(|(id, _)| *id).collect();
                        // Work nobody told this process about: another server's, a lease that
                        // expired, a retry scheduled before a restart.
                        let now = Instant::now();
                        for (id, _) in found.iter().filter(|(_, due)| *due) {
                            self.due_at(*id, now);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list webhooks; retrying"),
                }
                // Leases of a process that died (or stalled) end: their deliveries are due again.
                // Servers sharing a PostgreSQL database say they are alive; a dead one's leases
                // are taken over within seconds (SQLite has one process, which released its
                // predecessor's at start-up).
                if self.store.dialect() == crate::store::Dialect::Postgres {
                    let now = now_ms();
                    match self.store.heartbeat(&self.process, now, now.saturating_sub(HEARTBEAT_STALE_MS)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deliveries = n, "took over the leases of a server that stopped"),
                        Err(e) => tracing::warn!(error = %e, "cannot record this server's heartbeat; retrying"),
                    }
                }
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
                // Until the next webhook is due (a retry, a rate limit's token, a cool-down),
                // the next look across all of them, or a wake-up.
                let next_refresh = Duration::from_secs(1).saturating_sub(refreshed.elapsed());
                let wait = self.next_due_in().min(next_refresh).max(Duration::from_millis(1));
                tokio::select! {
                    _ = &mut stop => break,
                    _ = self.wake.notified() => {},
                    _ = tokio::time::sleep(wait) => {},
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
    pub(super) async fn claim_for(&self, id: Uuid) -> Result<usize, StoreError> {
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
        let wall = now_ms();
        if let Some(until) = webhook.circuit_open_until.filter(|_| webhook.circuit_open_at(wall)) {
            // The circuit is open: nothing goes out until it has cooled down; the deliveries
            // wait in the store, neither failed nor dropped.
            self.idle_for(id, Duration::from_millis(u64::try_from(until.saturating_sub(wall)).unwrap_or(0)));
            return Ok(0);
        }
        // Cooled down but not closed: one probe at a time; its success closes the circuit.
        let room = if webhook.half_open_at(wall) { self.probe_room(id) } else { room };
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
                    let now = Instant::now();
                    slot.next_retry = slot.next_retry.filter(|at| *at > now);
                    slot.idle_until = slot.next_retry.unwrap_or(now + ASLEEP);
                }
            }
            return Ok(0);
        }
        let dest = match self.open_endpoint(webhook).await {
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
        self.enqueue(id, claimed, dest, claimer, lease_until, Origin::Claimed);
        Ok(n)
    }

    /// Webhook `id` has work at `at` (or now): it is looked at then, and the claim loop, if it
    /// sleeps past that, is woken to plan again. A time still to come is kept as the webhook's
    /// next retry, so that a claim finding nothing due before it does not put it to sleep past it.
    pub(super) fn due_at(&self, id: Uuid, at: Instant) {
        let lowered = match self.slots.lock() {
            Ok(mut slots) => {
                let slot = slots.entry(id).or_insert_with(Slot::new);
                if at > Instant::now() {
                    slot.next_retry = Some(slot.next_retry.map_or(at, |known| known.min(at)));
                }
                let lowered = at < slot.idle_until;
                if lowered {
                    slot.idle_until = at;
                }
                lowered
            }
            Err(_) => false,
        };
        if lowered {
            self.wake.notify_one();
        }
    }

    /// How long until the earliest webhook in this process that sleeps may be claimed for
    /// again. (One that is already due but was passed over, its queue full or its webhook
    /// gone, is not waited for: the end of an attempt, or the next look, brings it back.)
    fn next_due_in(&self) -> Duration {
        let now = Instant::now();
        let earliest =
            self.slots.lock().ok().and_then(|slots| slots.values().map(|s| s.idle_until).filter(|at| *at > now).min());
        earliest.map_or(ASLEEP, |at| at.saturating_duration_since(now))
    }

    /// Leaves webhook `id` alone for `wait` (its circuit is open).
    fn idle_for(&self, id: Uuid, wait: Duration) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.entry(id).or_insert_with(Slot::new).idle_until = Instant::now() + wait.min(Duration::from_secs(3600));
        }
    }

    /// A half-open circuit's room: one delivery, when none is in flight or queued.
    fn probe_room(&self, id: Uuid) -> usize {
        let Ok(slots) = self.slots.lock() else { return 0 };
        match slots.get(&id) {
            Some(slot) if slot.in_flight > 0 || !slot.queue.is_empty() => 0,
            _ => 1,
        }
    }

    /// The circuit of webhook `id` opened: gives back the leases of its queued deliveries (they
    /// wait in the store, with no attempt counted) and leaves it alone until `until` (Unix ms).
    pub(super) async fn circuit_opened(&self, id: Uuid, until: i64) {
        let queued: Vec<(i64, String)> = self
            .slots
            .lock()
            .map(|mut slots| match slots.get_mut(&id) {
                Some(slot) => slot.queue.drain(..).map(|q| (q.delivery.seq, q.claimer)).collect(),
                None => Vec::new(),
            })
            .unwrap_or_default();
        self.idle_for(id, Duration::from_millis(u64::try_from(until.saturating_sub(now_ms())).unwrap_or(0)));
        if let Ok(mut m) = self.in_flight.lock() {
            for (seq, _) in &queued {
                m.remove(seq);
            }
        }
        if let Err(e) = self.store.release(&queued).await {
            tracing::warn!(error = %e, "could not release queued leases; they expire on their own");
        }
    }

    /// Queues deliveries leased to this process (claimed, or handed over by a publish) behind
    /// webhook `id`'s slots, remembers their leases for shutdown, and starts what it can.
    pub(super) fn enqueue(
        &self,
        id: Uuid,
        deliveries: Vec<ClaimedDelivery>,
        dest: Arc<Endpoint>,
        claimer: &str,
        lease_until: i64,
        origin: Origin,
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
                origin,
            }));
        }
        self.start_ready(id);
    }

    /// Wakes the claim loop if a webhook found no free worker since it last looked: a worker
    /// was just freed, and the loop starts that webhook's queue.
    pub(super) fn wake_if_starved(&self) {
        if self.starved.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.wake.notify_one();
        }
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
    pub(super) fn start_ready(&self, id: Uuid) {
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
            let Queued { delivery: d, destination: dest, claimer, lease_until, origin } = next;
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
                    // It waits in the store again: claimable now.
                    this.due_at(d.webhook_id, Instant::now());
                    this.start_ready(d.webhook_id);
                    this.wake_if_starved();
                });
                continue;
            }
            // Boxed: the attempt's future (HTTP request included) is large, and tokio would
            // otherwise copy it into the task and again over it when the task finishes.
            tokio::spawn(Box::pin(async move {
                let completion = attempt::attempt(&this.context(), &dest, &d, &claimer, false).await;
                // A handed-over delivery that succeeded or failed for good makes nothing
                // claimable: while its webhook sleeps (its last claim found nothing, and nothing
                // woke it since), it is left asleep. Otherwise every single-event publish would
                // cost a claim that finds nothing (on PostgreSQL a transaction of its own).
                let nothing_new = origin == Origin::HandedOver && !matches!(completion.next, NextStep::Retry(_));
                // The exchange is over: its slot is free while the result is written.
                let mut claim_now = true;
                let mut asleep = false;
                if let Ok(mut slots) = this.slots.lock() {
                    if let Some(slot) = slots.get_mut(&d.webhook_id) {
                        slot.in_flight = slot.in_flight.saturating_sub(1);
                        let now = Instant::now();
                        asleep = nothing_new && slot.idle_until > now;
                        if !asleep {
                            slot.idle_until = now;
                        }
                        claim_now = !asleep && this.claim_room(slot) > 0;
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
                // What the result makes claimable (the next of an ordering key, the rest once a
                // probe closed the circuit) is looked for now; a retry, at its time.
                let due = match completion.next {
                    NextStep::Retry(at) => Some(
                        Instant::now() + Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0)),
                    ),
                    _ if asleep => None,
                    _ => Some(Instant::now()),
                };
                if let Some(due) = due {
                    this.due_at(d.webhook_id, due);
                }
                if let Ok(mut m) = this.in_flight.lock() {
                    m.remove(&d.seq);
                }
                drop(recording);
                this.wake_if_starved();
            }));
        }
    }
}

/// True when `fut` has already completed (without waiting).
async fn futures_poll_ready<F: std::future::Future<Output = ()> + Unpin>(fut: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = fut => true,
        _ = std::future::ready(()) => false,
    }
}
