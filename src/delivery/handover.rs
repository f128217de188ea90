//! The publish → delivery hand-over (see `fanout::HandOver`): deliveries being published in this
//! process go straight into their webhook's queue, leased, with no claim and no event read.

use std::sync::Arc;

use uuid::Uuid;

use super::slots::{Origin, Slot};
use super::{max_per_second, DeliveryError, Dispatcher};
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::fanout::HandOver;
use crate::store::{ClaimedDelivery, DeliveryStart};

/// Deliveries being published are taken straight into a webhook's queue while it holds up to
/// this many times its prefetch (see [`Dispatcher::offer`]): taking them costs no claim and no
/// event read, so they are worth more room than claimed ones. On SQLite a claimed delivery costs
/// about 6 µs more CPU than one handed over (its share of the claim, 2.4 µs in the writer, and its
/// event's read, 3.9 µs); at 4 (2 before) the load test's scenario (a) delivered 2-5% more a
/// second, in three pairs of runs out of three (docs/performance.md).
const HAND_OVER_FACTOR: usize = 4;
#[async_trait::async_trait]
impl HandOver for Dispatcher {
    /// Offers to take `count` deliveries of `webhook` that are being published in this process
    /// straight into its queue, leased, with no claim and no event read: the fast path from
    /// publish to delivery. Granted when the webhook is active, sends without a rate limit, and
    /// has room for all of them now (up to [`HAND_OVER_FACTOR`] times its prefetch); the caller
    /// then publishes them with the returned start and hands them over with
    /// [`Dispatcher::adopt`] (or gives the room back with `withdraw`).
    fn offer(&self, webhook: &Webhook, count: usize) -> Option<DeliveryStart> {
        let rate_limited = max_per_second(webhook).is_some();
        // A webhook whose circuit is open or half-open takes nothing straight from a publish.
        let circuit = webhook.circuit_open_until.is_some();
        if count == 0
            || !webhook.is_active
            || rate_limited
            || circuit
            || self.stopping.load(std::sync::atomic::Ordering::Relaxed)
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
    fn withdraw(&self, webhook: Uuid, count: usize) {
        if let Ok(mut slots) = self.slots.lock() {
            if let Some(slot) = slots.get_mut(&webhook) {
                slot.promised = slot.promised.saturating_sub(count);
            }
        }
    }

    /// Takes over the deliveries published leased under an offer of `count` (fewer when some
    /// events were repeats) and starts them.
    async fn adopt(&self, webhook: Webhook, start: DeliveryStart, deliveries: Vec<ClaimedDelivery>, count: usize) {
        let id = webhook.id;
        self.withdraw(id, count);
        let DeliveryStart::Leased { claimer, lease_until } = start else { return };
        if deliveries.is_empty() {
            return;
        }
        let opened = match self.open_endpoint(webhook).await {
            // Shutting down: nothing new starts, the leases go back at once.
            Ok(_) if self.stopping.load(std::sync::atomic::Ordering::Relaxed) => Err(DeliveryError::Stopping),
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
        self.enqueue(id, deliveries, dest, &claimer, lease_until, Origin::HandedOver);
    }
}
