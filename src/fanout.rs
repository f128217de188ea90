//! Fan-out: an accepted event becomes one delivery per subscribed webhook, stored with it in one
//! atomic, durable commit. Publishing (the service) and system events (the delivery engine) both
//! commit through here.
//!
//! The hand-over: while a publish is being committed, the delivery engine of this process may
//! take some of its deliveries straight into its queues, leased, so that they need no claim and
//! no event read. The engine offers through the [`HandOver`] trait, owned here so that this
//! layer does not depend on the engine.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::filter::{FilterContext, FilterInput};
use crate::domain::severity::Severity;
use crate::domain::tenant::TenantId;
use crate::domain::webhook::Webhook;
use crate::store::{ClaimedDelivery, DeliveryStart, NewEvent, Published, Store, StoreError, Target};

/// What the delivery engine offers a publish in this process (see the module's doc).
#[async_trait::async_trait]
pub trait HandOver: Send + Sync {
    /// Asks for room for `count` deliveries of `webhook`; `Some(start)` grants it, and they are
    /// then stored with that start (leased to this process).
    fn offer(&self, webhook: &Webhook, count: usize) -> Option<DeliveryStart>;
    /// Gives back the room of an offer whose publish failed.
    fn withdraw(&self, webhook: Uuid, count: usize);
    /// Takes over the deliveries published under an offer of `count` (fewer when some events
    /// were repeats) and starts them.
    async fn adopt(&self, webhook: Webhook, start: DeliveryStart, deliveries: Vec<ClaimedDelivery>, count: usize);
}

/// An event's severity from its type and data (by the type's presentation settings): what
/// `min_severity` and filters compare. Asked only for events some webhook filters.
pub type SeverityOf<'a> = &'a (dyn Fn(&str, &serde_json::Value) -> Severity + Sync);

/// Stores events with one delivery per subscribed webhook (held for inactive ones), but none for
/// a webhook whose payload filter (`min_severity`, `filter`) leaves the event out: that webhook
/// is kept with the event instead (`NewEvent::filtered`). Returns the answers and the active
/// webhooks that got new work in the store's queue.
///
/// With `handoff`, deliveries the dispatcher has room for are stored already leased to it and
/// handed over in memory once committed: no claim, no event read, the shortest path to the
/// endpoint. Events with an ordering key always go through the queue (the claim keeps them in
/// order).
pub async fn commit(
    store: &Store,
    tenant: &TenantId,
    mut events: Vec<NewEvent>,
    handoff: Option<&dyn HandOver>,
    severity_of: SeverityOf<'_>,
) -> Result<(Vec<Published>, Vec<Uuid>), StoreError> {
    let webhooks = store.tenant_webhooks(tenant).await?;
    // Which subscribed webhook each event goes to: all of them, but for payload filters.
    let mut receivers: Vec<Vec<usize>> = Vec::with_capacity(events.len());
    let any_filters = webhooks.iter().any(Webhook::filters);
    for e in &mut events {
        let subscribed = webhooks.iter().enumerate().filter(|(_, w)| w.subscribes_to(&e.event_type));
        if !any_filters {
            receivers.push(subscribed.map(|(i, _)| i).collect());
            continue;
        }
        // Parsed and graded once per event, and only when a webhook filters.
        let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap_or(serde_json::Value::Null);
        let graded = std::cell::OnceCell::new();
        let mut to = Vec::new();
        for (i, w) in subscribed {
            if !w.filters() {
                to.push(i);
                continue;
            }
            let (level, context) = graded.get_or_init(|| {
                let level = severity_of(&e.event_type, &data);
                let input = FilterInput {
                    event: &e.event_type,
                    severity: level.name(),
                    tenant_id: tenant.as_str(),
                    data: &data,
                };
                (level, FilterContext::new(&input))
            });
            if w.accepts(*level, context) {
                to.push(i);
            } else {
                e.filtered.push(w.id);
            }
        }
        receivers.push(to);
    }
    let mut offers: HashMap<Uuid, (DeliveryStart, usize)> = HashMap::new();
    if let Some(dispatcher) = handoff {
        for w in &webhooks {
            let n = events.iter().filter(|e| e.ordering_key.is_none() && w.subscribes_to(&e.event_type)).count();
            // (Counted before the filters: an offer may be larger than what it is used for.)
            if let Some(start) = dispatcher.offer(w, n) {
                offers.insert(w.id, (start, n));
            }
        }
    }
    // What the hand-over needs of the events once they are committed.
    let handed: Vec<NewEvent> = if offers.is_empty() { Vec::new() } else { events.clone() };
    let mut woken = Vec::new();
    let batch = events
        .into_iter()
        .zip(receivers)
        .map(|(e, to)| {
            let targets: Vec<Target> = to
                .into_iter()
                .map(|i| &webhooks[i])
                .map(|w| {
                    let start = match offers.get(&w.id) {
                        _ if !w.is_active => DeliveryStart::Held,
                        Some((leased, _)) if e.ordering_key.is_none() => leased.clone(),
                        _ => DeliveryStart::Pending,
                    };
                    Target { webhook_id: w.id, start }
                })
                .collect();
            woken.extend(targets.iter().filter(|t| t.start == DeliveryStart::Pending).map(|t| t.webhook_id));
            (e, targets)
        })
        .collect();
    let published = match store.publish(batch).await {
        Ok(p) => p,
        Err(e) => {
            if let Some(dispatcher) = handoff {
                for (id, (_, n)) in &offers {
                    dispatcher.withdraw(*id, *n);
                }
            }
            return Err(e);
        }
    };
    if let Some(dispatcher) = handoff {
        let mut by_webhook: HashMap<Uuid, Vec<ClaimedDelivery>> = HashMap::new();
        for (p, e) in published.iter().zip(&handed) {
            for &(webhook_id, seq) in &p.leased {
                by_webhook.entry(webhook_id).or_default().push(ClaimedDelivery {
                    seq,
                    attempts: 0,
                    tenant_id: e.tenant_id.as_str().to_string(),
                    webhook_id,
                    event_id: e.id,
                    event_ref: e.event_ref.clone(),
                    event_type: e.event_type.clone(),
                    data: e.data.clone(),
                    created_at: e.created_at,
                    ordered: e.ordering_key.is_some(),
                });
            }
        }
        for (id, (start, n)) in offers {
            let Some(webhook) = webhooks.iter().find(|w| w.id == id) else { continue };
            let deliveries = by_webhook.remove(&id).unwrap_or_default();
            dispatcher.adopt(webhook.clone(), start, deliveries, n).await;
        }
    }
    woken.sort();
    woken.dedup();
    Ok((published, woken))
}
