//! Per-webhook scheduling state in this process: the queue of leased deliveries, the slots in
//! flight, and the rate limit's token bucket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::attempt::Endpoint;
use super::Dispatcher;
use crate::store::ClaimedDelivery;

/// The most deliveries claimed in one query.
pub(super) const CLAIM_BATCH: usize = 512;
/// How many deliveries a webhook may hold claimed (in flight and queued), in multiples of its
/// concurrency, and at most: a deep enough queue that the next claim lands before it runs dry.
/// A claim is a round trip through the store's writer, which is also committing batch publishes:
/// on SQLite it takes 10-20 ms while they come in, and a fast endpoint takes 35 000 deliveries
/// a second (the load test's scenario (a)), so the queue holds up to 16 of its slots' worth.
const PREFETCH_FACTOR: usize = 16;
const PREFETCH_MAX: usize = 1024;
/// How long a webhook whose claim found nothing sleeps unless something wakes it: a publish or
/// hand-over in this process, a retry this process scheduled (at its time), the end of an
/// attempt, or the engine's once-a-second look for due work across all webhooks (which finds
/// other servers' work, expired leases and retries scheduled before a restart). Idle webhooks
/// thus cost nothing per webhook: no claim every 100 ms each.
pub(super) const ASLEEP: Duration = Duration::from_secs(3600);

/// Per-webhook scheduling state in this process.
pub(super) struct Slot {
    pub(super) in_flight: usize,
    /// Not worth claiming for before this instant (nothing was due).
    pub(super) idle_until: Instant,
    /// No held deliveries were left to release (after a re-enable): look again after this.
    pub(super) held_recheck: Instant,
    /// The earliest retry this process scheduled that has not come yet: a claim that finds
    /// nothing due sleeps until then rather than [`ASLEEP`]. (Later retries of other deliveries
    /// are found by the engine's look for due work, within a second of their time.)
    pub(super) next_retry: Option<Instant>,
    /// Token bucket for `max_per_second`.
    pub(super) tokens: f64,
    pub(super) refilled: Instant,
    /// Claimed deliveries waiting for a free slot.
    pub(super) queue: std::collections::VecDeque<Queued>,
    /// Deliveries being published in this process that are to be handed over (see `offer`).
    pub(super) promised: usize,
}

/// A claimed delivery waiting for a free slot of its webhook.
pub(super) struct Queued {
    pub(super) delivery: ClaimedDelivery,
    pub(super) destination: Arc<Endpoint>,
    /// The claim's lease id, and when the lease ends (ms).
    pub(super) claimer: String,
    pub(super) lease_until: i64,
    pub(super) origin: Origin,
}

/// How a queued delivery came to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Claimed from the store's queue: its result may make more claimable (the next delivery of
    /// its ordering key, the rest of the queue once a probe closed the circuit).
    Claimed,
    /// Handed over by a publish in this process: never ordered, never a probe, so its success
    /// or final failure makes nothing claimable.
    HandedOver,
}

impl Slot {
    /// A webhook this process knows nothing due for: it sleeps until a wake-up or the look for
    /// due work across all webhooks finds some (5,000 new slots do not mean 5,000 claims).
    pub(super) fn new() -> Self {
        Self {
            in_flight: 0,
            idle_until: Instant::now() + ASLEEP,
            held_recheck: Instant::now(),
            next_retry: None,
            tokens: 1.0,
            refilled: Instant::now(),
            queue: std::collections::VecDeque::new(),
            promised: 0,
        }
    }
}

impl Dispatcher {
    /// How many deliveries are worth claiming for `slot` now: claims come in batches, when the
    /// webhook holds nothing or at least a quarter of its prefetch room is free; otherwise 0.
    pub(super) fn claim_room(&self, slot: &Slot) -> usize {
        let held = slot.in_flight + slot.queue.len() + slot.promised;
        let target = self.prefetch_target();
        let free = target.saturating_sub(held);
        if held > 0 && free < target / 4 {
            return 0;
        }
        free.min(CLAIM_BATCH)
    }

    /// How many deliveries a webhook may hold in this process (in flight, queued or promised).
    pub(super) fn prefetch_target(&self) -> usize {
        (PREFETCH_FACTOR * self.per_webhook).min(PREFETCH_MAX).max(2 * self.per_webhook)
    }

    /// Consumes up to `want` tokens of the webhook's rate limit; returns how many it may send.
    pub(super) fn take_tokens(&self, id: Uuid, max_per_second: Option<u32>, want: usize) -> usize {
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
}
