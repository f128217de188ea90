//! `/api/v1/events`: publishing (publisher or admin) and reading an event's delivery state.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::domain::time::rfc3339_ms;
use crate::domain::token::Role;
use crate::metrics;
use crate::service::events::{self as ops, EventInput};
use crate::service::AppState;
use crate::service::{Principal, Publisher};
use crate::store::Published;

pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResult {
    pub event_ref: String,
    /// Deliveries created (for a repeated event_ref: those of the first publish).
    pub deliveries: u64,
    /// This event_ref had been published before: nothing new was created.
    pub duplicate: bool,
}

impl From<Published> for PublishResult {
    fn from(p: Published) -> Self {
        Self { event_ref: p.event_ref, deliveries: p.deliveries, duplicate: p.duplicate }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// Up to 1000 events.
    pub events: Vec<EventInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    pub index: usize,
    /// accepted, duplicate or rejected
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// Publishes one event; answers once it and its deliveries are durably committed.
#[utoipa::path(post, path = "/events", tag = "events", request_body = EventInput,
    responses((status = 202, body = PublishResult), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn publish_event(
    State(state): State<AppState>,
    who: Publisher,
    input: Result<ApiJson<EventInput>, ApiError>,
) -> ApiResult<(StatusCode, Json<PublishResult>)> {
    let published: ApiResult<Published> = async {
        let ApiJson(input) = input?;
        let known = ops::known_types(&state, &who).await?;
        let event = ops::validate(&input, "", &who.tenant, &known, state.settings.max_event_bytes)?;
        let mut published = ops::publish(&state, &known, &who, vec![event]).await?;
        Ok(published.remove(0))
    }
    .await;
    // Any answer but the commit's is given once the token is confirmed (see `Publisher`).
    let published = match published {
        Err(e) => Err(who.refuse(&state, e).await),
        ok => ok,
    };
    match &published {
        Ok(p) if !p.duplicate => accepted(1),
        Ok(_) => {}
        Err(e) => rejected(e.code, 1),
    }
    Ok((StatusCode::ACCEPTED, Json(published?.into())))
}

fn accepted(n: u64) {
    metrics::global().events_accepted.inc_by(n);
}

/// Counts refused events by the error's code.
fn rejected(reason: &'static str, n: u64) {
    metrics::global().events_rejected.get_or_create(&metrics::ReasonLabel { reason }).inc_by(n);
}

/// Publishes up to 1000 events; one result per event, in order. Answered 202, as a single
/// publish is: the events accepted are stored and will be delivered.
#[utoipa::path(post, path = "/events/batch", tag = "events", request_body = BatchInput,
    responses((status = 202, body = BatchResult), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn publish_batch(
    State(state): State<AppState>,
    who: Publisher,
    input: Result<ApiJson<BatchInput>, ApiError>,
) -> ApiResult<(StatusCode, Json<BatchResult>)> {
    // Any answer but the commit's is given once the token is confirmed (see `Publisher`).
    match batch(&state, &who, input).await {
        Ok((answer, true)) => Ok(answer),
        Ok((answer, false)) => {
            who.confirm(&state).await?;
            Ok(answer)
        }
        Err(e) => Err(who.refuse(&state, e).await),
    }
}

/// The batch's answer, and whether a commit gave it (some event was valid).
async fn batch(
    state: &AppState,
    who: &Publisher,
    input: Result<ApiJson<BatchInput>, ApiError>,
) -> ApiResult<((StatusCode, Json<BatchResult>), bool)> {
    let ApiJson(input) = input?;
    if input.events.is_empty() || input.events.len() > MAX_BATCH {
        let e = ApiError::invalid("events", format!("events must hold 1 to {MAX_BATCH} events"));
        rejected(e.code, input.events.len().max(1) as u64);
        return Err(e);
    }
    let known = ops::known_types(state, who).await?;
    let mut results: Vec<BatchItem> = Vec::with_capacity(input.events.len());
    let mut valid = Vec::new();
    let mut slots = Vec::new();
    for (i, e) in input.events.iter().enumerate() {
        match ops::validate(e, &format!("events[{i}]."), &who.tenant, &known, state.settings.max_event_bytes) {
            Ok(ev) => {
                slots.push(i);
                valid.push(ev);
                results.push(BatchItem {
                    index: i,
                    status: "accepted",
                    event_ref: None,
                    deliveries: None,
                    error: None,
                });
            }
            Err(err) => results.push(BatchItem {
                index: i,
                status: "rejected",
                event_ref: e.event_ref.clone(),
                deliveries: None,
                error: Some(
                    serde_json::json!({"code": "invalid_value", "message": err.to_string(), "field": err.field}),
                ),
            }),
        }
    }
    let committed = !valid.is_empty();
    if committed {
        let count = valid.len() as u64;
        let published = ops::publish(state, &known, who, valid).await.map_err(|e| {
            let e = ApiError::from(e);
            rejected(e.code, count);
            e
        })?;
        accepted(published.iter().filter(|p| !p.duplicate).count() as u64);
        for (i, p) in slots.into_iter().zip(published) {
            let item = &mut results[i];
            item.status = if p.duplicate { "duplicate" } else { "accepted" };
            item.event_ref = Some(p.event_ref);
            item.deliveries = Some(p.deliveries);
        }
    }
    let rejected = results.iter().filter(|r| r.status == "rejected").count();
    if rejected > 0 {
        self::rejected("invalid_value", rejected as u64);
    }
    Ok(((StatusCode::ACCEPTED, Json(BatchResult { accepted: results.len() - rejected, rejected, results })), committed))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryStateView {
    pub webhook_id: Uuid,
    /// pending, leased, held, succeeded or failed
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub event_ref: String,
    pub event: String,
    pub ordering_key: Option<String>,
    #[schema(value_type = Object)]
    pub data: Box<serde_json::value::RawValue>,
    pub created_at: String,
    pub deliveries: Vec<DeliveryStateView>,
    /// The subscribed webhooks whose payload filter (`min_severity`, `filter`) left this event
    /// out: no delivery was made for them.
    pub filtered: Vec<FilteredView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilteredView {
    pub webhook_id: Uuid,
    /// Always `filtered`.
    pub state: &'static str,
}

#[utoipa::path(get, path = "/events/{event_ref}", tag = "events", params(("event_ref" = String, Path)),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_event(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(event_ref): ApiPath<String>,
) -> ApiResult<Json<EventView>> {
    who.require(&[Role::Admin, Role::Viewer, Role::Publisher])?;
    let e = state.store.get_event(&who.tenant, &event_ref).await?.ok_or_else(|| ApiError::not_found("event"))?;
    let data = serde_json::value::RawValue::from_string(String::from_utf8_lossy(&e.data).into_owned())
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "stored event data is not JSON"))?;
    Ok(Json(EventView {
        event_ref: e.event_ref,
        event: e.event_type,
        ordering_key: e.ordering_key,
        data,
        created_at: rfc3339_ms(e.created_at),
        deliveries: e
            .deliveries
            .into_iter()
            .map(|d| DeliveryStateView {
                webhook_id: d.webhook_id,
                next_attempt_at: matches!(d.state.as_str(), "pending" | "leased")
                    .then(|| rfc3339_ms(d.next_attempt_at)),
                state: d.state,
                attempts: d.attempts,
                last_status: d.last_status,
                last_error: d.last_error,
                updated_at: rfc3339_ms(d.updated_at),
            })
            .collect(),
        filtered: e.filtered.into_iter().map(|webhook_id| FilteredView { webhook_id, state: "filtered" }).collect(),
    }))
}
