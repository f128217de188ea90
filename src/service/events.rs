//! Publishing: an event as a producer sends it is checked against the catalogue and its
//! schema, then fanned out and committed (see `fanout`) before it is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{AppState, Principal, Publisher, ServiceError, ServiceResult};
use crate::domain::event_ref::is_event_ref;
use crate::domain::event_type::EventType;
use crate::domain::event_type::{EventTypeName, SYSTEM_EVENT_TYPES};
use crate::domain::severity::Severity;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::Role;
use crate::domain::FieldError;
use crate::fanout;
use crate::profile::Profile;
use crate::store::{NewEvent, Published, StoreError};

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

/// The event types a tenant may publish: its profile's catalogue (schemas compiled at load)
/// plus the tenant's own types (their schemas and presentation settings); and the profile's rule
/// for `event_ref`. Read once per publish request, for validating and for grading severity.
pub struct KnownTypes {
    profile: Arc<Profile>,
    own: HashMap<String, OwnType>,
}

/// A tenant's own event type, as publishing needs it.
struct OwnType {
    validator: Option<Arc<jsonschema::Validator>>,
    presentation: Option<serde_json::Value>,
}

impl KnownTypes {
    pub fn new(profile: Arc<Profile>, own: Vec<EventType>) -> Self {
        let catalogue = &profile.catalogue;
        let own = own
            .into_iter()
            .filter(|et| !catalogue.contains(&et.name))
            .map(|et| {
                // Tenant schemas were checked to compile when they were stored.
                let validator = et.schema.as_ref().and_then(|s| jsonschema::validator_for(s).ok()).map(Arc::new);
                (et.name, OwnType { validator, presentation: et.presentation })
            })
            .collect();
        Self { profile, own }
    }

    /// `None` for an unknown type; else the type's schema, if it has one.
    fn get(&self, name: &str) -> Option<Option<Arc<jsonschema::Validator>>> {
        if self.profile.catalogue.contains(name) {
            Some(self.profile.catalogue.validator(name))
        } else {
            self.own.get(name).map(|t| t.validator.clone())
        }
    }

    /// The severity of an event of this type with this data, by the type's presentation
    /// settings (the deployment's catalogue first, as for publishing).
    pub fn severity_of(&self, event_type: &str, data: &serde_json::Value) -> Severity {
        let config = match self.profile.catalogue.get(event_type) {
            Some(t) => t.presentation.as_ref(),
            None => self.own.get(event_type).and_then(|t| t.presentation.as_ref()),
        };
        crate::destinations::presentation::severity_of(data, config)
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
    known: &KnownTypes,
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
    let from_data = known.profile.event_ref_from.as_deref().and_then(|key| Some((key, data_field(raw, key)?)));
    let event_ref = match (&input.event_ref, from_data) {
        (Some(r), _) if !is_event_ref(r) => {
            return Err(FieldError::new(field("event_ref"), "must be 1 to 128 printable characters"));
        }
        (Some(r), Some((key, v))) if *r != v => {
            return Err(FieldError::new(
                field("event_ref"),
                format!(
                    "must equal data.{key} ('{v}'): the {} profile's event_ref is always that field",
                    known.profile.name
                ),
            ));
        }
        (Some(r), _) => r.clone(),
        (None, Some((key, v))) => {
            if !is_event_ref(&v) {
                return Err(FieldError::new(
                    field(&format!("data.{key}")),
                    "must be 1 to 128 printable characters: it is this event's event_ref",
                ));
            }
            v
        }
        (None, None) => Uuid::new_v4().to_string(),
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
        filtered: Vec::new(),
        live_token: None,
    })
}

/// A scalar field of a `data` object, as text (the profile's source of `event_ref`).
fn data_field(raw: &str, key: &str) -> Option<String> {
    let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    match data.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The event types the caller's tenant may publish.
pub async fn known_types(state: &AppState, who: &Principal) -> ServiceResult<KnownTypes> {
    who.require(&[Role::Publisher, Role::Admin])?;
    let own = state.store.list_event_types(&who.tenant).await?;
    Ok(KnownTypes::new(state.profile_of(&who.tenant).await?, own))
}

/// Fans the events out to the tenant's webhooks, commits them with their deliveries, and wakes
/// the delivery engine. Returns when everything is durable.
/// `known`: the tenant's types as validation read them (they also grade severity for filters).
/// The events go with the caller's token when it was kept rather than read (see [`Publisher`]):
/// the commit then stores them only while it is live.
pub async fn publish(
    state: &AppState,
    known: &KnownTypes,
    who: &Publisher,
    mut events: Vec<NewEvent>,
) -> ServiceResult<Vec<Published>> {
    let handover: &dyn fanout::HandOver = &state.dispatcher;
    let severity_of = |event_type: &str, data: &serde_json::Value| known.severity_of(event_type, data);
    for e in &mut events {
        e.live_token = who.live_token();
    }
    let committed = fanout::commit(state.store.as_ref(), &who.tenant, events, Some(handover), &severity_of).await;
    let (published, woken) = match committed {
        Err(StoreError::TokenNotLive) => {
            state.store.forget_token(who.token_id);
            return Err(ServiceError::Unauthorized);
        }
        other => other?,
    };
    state.dispatcher.wake(woken);
    Ok(published)
}
