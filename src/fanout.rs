//! Accepting events: validation, fan-out to the subscribed webhooks, and a durable commit before
//! the answer. The API and the dispatcher (for system events) publish through here.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::catalogue::Catalogue;
use crate::delivery::Dispatcher;
use crate::domain::event_type::EventType;
use crate::domain::event_type::{EventTypeName, SYSTEM_EVENT_TYPES};
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::FieldError;
use crate::http::api::AppState;
use crate::store::{ClaimedDelivery, DeliveryStart, NewEvent, Published, Store, StoreError, Target};

/// One event as a producer sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// The event type, from the catalogue.
    pub event: String,
    /// The event's fields: a JSON object, stored and delivered byte for byte.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Your id for this event (a UUID is generated when absent); publishing it again is a no-op.
    pub event_ref: Option<String>,
    /// Events with the same key reach each webhook in publish order.
    pub ordering_key: Option<String>,
}

/// The event types a tenant may publish: the configured catalogue (schemas compiled at load)
/// plus the tenant's own types.
pub struct KnownTypes<'a> {
    catalogue: &'a Catalogue,
    own: HashMap<String, Option<Arc<jsonschema::Validator>>>,
}

impl<'a> KnownTypes<'a> {
    pub fn new(catalogue: &'a Catalogue, own: Vec<EventType>) -> Self {
        let own = own
            .into_iter()
            .filter(|et| !catalogue.contains(&et.name))
            .map(|et| {
                // Tenant schemas were checked to compile when they were stored.
                let v = et.schema.as_ref().and_then(|s| jsonschema::validator_for(s).ok()).map(Arc::new);
                (et.name, v)
            })
            .collect();
        Self { catalogue, own }
    }

    /// `None` for an unknown type; else the type's schema, if it has one.
    fn get(&self, name: &str) -> Option<Option<Arc<jsonschema::Validator>>> {
        if self.catalogue.contains(name) {
            Some(self.catalogue.validator(name))
        } else {
            self.own.get(name).cloned()
        }
    }
}

/// Checks `data` against a schema; the error names the offending path (`data.sender.email`).
fn check_schema(v: &jsonschema::Validator, raw: &str, field: &str) -> Result<(), FieldError> {
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|_| FieldError::new(field, "data is not valid JSON"))?;
    if let Some(err) = v.iter_errors(&value).next() {
        let path = err.instance_path.to_string();
        let at = path.trim_start_matches('/').replace('/', ".");
        let name = if at.is_empty() { field.to_string() } else { format!("{field}.{at}") };
        return Err(FieldError::new(name, format!("does not match the event type's schema: {err}")));
    }
    Ok(())
}

/// Checks one event; `prefix` names its place in a batch (`events[3].`).
pub fn validate(
    input: &EventInput,
    prefix: &str,
    tenant: &TenantId,
    known: &KnownTypes<'_>,
    max_bytes: usize,
) -> Result<NewEvent, FieldError> {
    let field = |f: &str| format!("{prefix}{f}");
    EventTypeName::parse(&input.event, &field("event"))?;
    if SYSTEM_EVENT_TYPES.iter().any(|(n, _)| *n == input.event) {
        return Err(FieldError::new(
            field("event"),
            format!("{} is reserved for events Tocsin raises itself", input.event),
        ));
    }
    let Some(schema) = known.get(&input.event) else {
        return Err(FieldError::new(field("event"), format!("'{}' is not in the event-type catalogue", input.event)));
    };
    let raw = input.data.get();
    if !raw.trim_start().starts_with('{') {
        return Err(FieldError::new(field("data"), "data must be a JSON object"));
    }
    if raw.len() > max_bytes {
        return Err(FieldError::new(field("data"), format!("data is {} bytes; the limit is {max_bytes}", raw.len())));
    }
    if let Some(v) = &schema {
        check_schema(v, raw, &field("data"))?;
    }
    let event_ref = match &input.event_ref {
        Some(r) => {
            if r.is_empty() || r.len() > 128 || !r.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(FieldError::new(field("event_ref"), "event_ref must be 1 to 128 printable characters"));
            }
            r.clone()
        }
        None => Uuid::new_v4().to_string(),
    };
    if let Some(k) = &input.ordering_key {
        if k.is_empty() || k.len() > 256 || k.chars().any(char::is_control) {
            return Err(FieldError::new(field("ordering_key"), "ordering_key must be 1 to 256 characters"));
        }
    }
    Ok(NewEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant.clone(),
        event_ref,
        event_type: input.event.clone(),
        ordering_key: input.ordering_key.clone(),
        data: bytes::Bytes::copy_from_slice(raw.as_bytes()),
        created_at: now_ms(),
    })
}

/// Fans the events out to the tenant's webhooks, commits them with their deliveries, and wakes
/// the dispatcher. Returns when everything is durable.
pub async fn publish(state: &AppState, tenant: &TenantId, events: Vec<NewEvent>) -> Result<Vec<Published>, StoreError> {
    let (published, woken) = commit(state.store.as_ref(), tenant, events, Some(&state.dispatcher)).await?;
    state.dispatcher.wake(woken);
    Ok(published)
}

/// Stores events with one delivery per subscribed webhook (held for inactive ones). Returns the
/// answers and the active webhooks that got new work in the store's queue.
///
/// With `handoff`, deliveries the dispatcher has room for are stored already leased to it and
/// handed over in memory once committed: no claim, no event read, the shortest path to the
/// endpoint. Events with an ordering key always go through the queue (the claim keeps them in
/// order).
pub async fn commit(
    store: &dyn Store,
    tenant: &TenantId,
    events: Vec<NewEvent>,
    handoff: Option<&Dispatcher>,
) -> Result<(Vec<Published>, Vec<Uuid>), StoreError> {
    let webhooks = store.tenant_webhooks(tenant).await?;
    let mut offers: HashMap<Uuid, (DeliveryStart, usize)> = HashMap::new();
    if let Some(dispatcher) = handoff {
        for w in &webhooks {
            let n = events.iter().filter(|e| e.ordering_key.is_none() && w.subscribes_to(&e.event_type)).count();
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
        .map(|e| {
            let targets: Vec<Target> = webhooks
                .iter()
                .filter(|w| w.subscribes_to(&e.event_type))
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
