//! Delivery history as a use case: test sends, redelivery, statistics windows, previews, and
//! the body an attempt sent (rendered again, not stored).

// Values from requests, settings and receivers flow through this arithmetic: it must not wrap.
#![warn(clippy::arithmetic_side_effects)]

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::webhooks::get as get_webhook;
use super::{AppState, Principal, ServiceError, ServiceResult};
use crate::catalogue::Catalogue;
use crate::destinations::{self, Rendered};
use crate::domain::event_type::EventType;
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::store::{AttemptRecord, WebhookStats};

/// The body an attempt sent: the event rendered in the attempt's format at its dispatch time
/// (rendering is deterministic, so it is not stored).
pub async fn request_body(state: &AppState, w: &Webhook, a: &AttemptRecord) -> ServiceResult<String> {
    let Some(event) = state.store.get_event(&w.tenant_id, &a.event_ref).await? else { return Ok(String::new()) };
    let profile = state.profile_of(&w.tenant_id).await?;
    let presentation = match profile.catalogue.get(&a.event_type) {
        Some(et) => et.presentation.clone(),
        None => state
            .store
            .list_event_types(&w.tenant_id)
            .await?
            .into_iter()
            .find(|et| et.name == a.event_type)
            .and_then(|et| et.presentation),
    };
    let rendered = destinations::render(
        a.format,
        &destinations::EventView {
            event_type: &a.event_type,
            event_ref: &a.event_ref,
            tenant_id: w.tenant_id.as_str(),
            data: &event.data,
            emitted_at: a.dispatched_at,
            shape: &profile.body,
        },
        presentation.as_ref(),
        &state.settings.render,
        w.url.transport().is_syslog(),
    );
    Ok(String::from_utf8_lossy(&rendered.body).into_owned())
}

/// Sends a test event to a webhook (also an inactive one) and returns the logged attempt.
pub async fn send_test(state: &AppState, who: &Principal, id: Uuid) -> ServiceResult<AttemptRecord> {
    who.admin()?;
    let w = state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    let profile = state.profile_of(&who.tenant).await?;
    let data = test_payload(&profile.catalogue, &w);
    Ok(state.dispatcher.send_test(w, data).await?)
}

/// The example payload of an event type the webhook subscribes to, or a plain test message.
fn test_payload(catalogue: &Catalogue, w: &Webhook) -> serde_json::Value {
    let example = catalogue
        .iter()
        .find(|et| et.example.is_some() && w.subscribes_to(&et.name) && !et.name.starts_with("webhook."))
        .map(|et| (et.name.clone(), et.example.clone().unwrap_or_default()));
    match example {
        Some((name, example)) => serde_json::json!({
            "message": "This is a test event from Tocsin.",
            "example_of": name,
            "example": example,
        }),
        None => serde_json::json!({"message": "This is a test event from Tocsin."}),
    }
}

/// Queues the event of an attempt for delivery to its webhook again; returns the webhook and
/// the event_ref.
pub async fn redeliver_attempt(
    state: &AppState,
    who: &Principal,
    id: Uuid,
    attempt_id: Uuid,
) -> ServiceResult<(Webhook, String)> {
    who.admin()?;
    let attempt = state
        .store
        .get_attempt(&who.tenant, id, attempt_id)
        .await?
        .ok_or(ServiceError::NotFound("delivery attempt"))?;
    let w = redeliver_event(state, who, id, &attempt.event_ref, Some(attempt_id)).await?;
    Ok((w, attempt.event_ref))
}

/// Queues event `event_ref` for delivery to webhook `id` again (a manual redelivery, audited);
/// `attempt` names the attempt it was asked from, if any.
pub async fn redeliver_event(
    state: &AppState,
    who: &Principal,
    id: Uuid,
    event_ref: &str,
    attempt: Option<Uuid>,
) -> ServiceResult<Webhook> {
    who.admin()?;
    let w = state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    let mut details = serde_json::json!({"event_ref": event_ref});
    if let Some(a) = attempt {
        details["attempt_id"] = serde_json::json!(a);
    }
    let audit = who.audit("delivery.redeliver", format!("webhook:{}", w.id), details);
    state.store.redeliver(&who.tenant, w.id, event_ref, audit).await?.ok_or(ServiceError::NotFound("event"))?;
    state.dispatcher.wake([w.id]);
    Ok(w)
}

/// Most failed deliveries one "retry all failed" queues again.
pub const RETRY_FAILED_LIMIT: i64 = 10_000;

/// Queues a webhook's failed deliveries (retries exhausted) again, oldest first, each for one
/// more attempt; returns how many (at most [`RETRY_FAILED_LIMIT`]; ask again for more).
pub async fn retry_failed(state: &AppState, who: &Principal, id: Uuid) -> ServiceResult<u64> {
    who.admin()?;
    let w = state.store.get_webhook(&who.tenant, id).await?.ok_or(ServiceError::NotFound("webhook"))?;
    let audit = who.audit("delivery.retry_failed", format!("webhook:{}", w.id), serde_json::json!({}));
    let n = state.store.retry_failed(&who.tenant, w.id, RETRY_FAILED_LIMIT, now_ms(), audit).await?;
    if n > 0 {
        state.dispatcher.wake([w.id]);
    }
    Ok(n)
}

/// The longest statistics window.
const MAX_WINDOW_MS: i64 = 90 * 86_400_000;

/// Parses a window such as `15m`, `24h` or `7d` (at most 90 days) into milliseconds.
pub fn parse_window(raw: &str) -> ServiceResult<i64> {
    let bad = || ServiceError::bad_parameter("window", "window must look like 30m, 24h or 7d (at most 90d)");
    let unit_ms = match raw.chars().last() {
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => return Err(bad()),
    };
    let digits = raw.strip_suffix(['m', 'h', 'd']).unwrap_or_default();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    match n.checked_mul(unit_ms) {
        Some(ms) if n > 0 && ms <= MAX_WINDOW_MS => Ok(ms),
        _ => Err(bad()),
    }
}

/// A webhook's attempt statistics over the window (`24h` when none is given).
pub async fn stats(state: &AppState, who: &Principal, id: &str, window: &str) -> ServiceResult<WebhookStats> {
    who.reader()?;
    let ms = parse_window(window)?;
    let w = get_webhook(state, who, id).await?;
    Ok(state.store.webhook_stats(&who.tenant, w.id, now_ms().saturating_sub(ms)).await?)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// The event type to render (default: one the webhook subscribes to that has an example).
    pub event: Option<String>,
    /// The data to render (default: the event type's example).
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// Renders a sample in the webhook's format without sending it: the event type chosen and what
/// would be sent.
pub async fn preview(
    state: &AppState,
    who: &Principal,
    id: &str,
    input: PreviewInput,
) -> ServiceResult<(Webhook, EventType, Rendered)> {
    who.reader()?;
    let w = get_webhook(state, who, id).await?;
    let own = state.store.list_event_types(&who.tenant).await?;
    let profile = state.profile_of(&who.tenant).await?;
    let mut types = profile.catalogue.merged(own);
    let position = match &input.event {
        Some(name) => types
            .iter()
            .position(|t| &t.name == name)
            .ok_or_else(|| ServiceError::invalid("event", format!("'{name}' is not in the event-type catalogue")))?,
        None => types
            .iter()
            .position(|t| t.example.is_some() && w.subscribes_to(&t.name))
            .or_else(|| types.iter().position(|t| t.name == "webhook.test"))
            .ok_or_else(|| ServiceError::invalid("event", "name an event type to preview"))?,
    };
    let chosen = types.swap_remove(position);
    let data = match input.data {
        Some(d) if d.is_object() => d,
        Some(_) => return Err(ServiceError::invalid("data", "data must be a JSON object")),
        None => chosen.example.clone().unwrap_or_else(|| serde_json::json!({})),
    };
    let raw = data.to_string();
    let event_ref = Uuid::new_v4().to_string();
    let rendered = destinations::render(
        w.format,
        &destinations::EventView {
            event_type: &chosen.name,
            event_ref: &event_ref,
            tenant_id: who.tenant.as_str(),
            data: raw.as_bytes(),
            emitted_at: now_ms(),
            shape: &profile.body,
        },
        chosen.presentation.as_ref(),
        &state.settings.render,
        w.url.transport().is_syslog(),
    );
    Ok((w, chosen, rendered))
}

#[cfg(test)]
mod tests {
    use super::parse_window;

    #[test]
    fn windows() {
        assert_eq!(parse_window("24h").ok(), Some(86_400_000));
        assert_eq!(parse_window("15m").ok(), Some(900_000));
        for bad in ["91d", "h", "-1h", "", "1\u{e9}", "106751991167301d", "0h", "+1h", "1 h", "é"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }
}
