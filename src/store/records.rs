//! The records the store takes and gives: what the layers above read and write.

use uuid::Uuid;

use crate::domain::tenant::TenantId;
use crate::domain::token::Role;
use crate::domain::webhook::Format;

/// An API token as listed (never its value or digest).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub role: Role,
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// One management change: who did what to which object.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub tenant_id: TenantId,
    /// `token:<id>` or `cli` or `system`.
    pub actor: String,
    /// e.g. `webhook.create`.
    pub action: String,
    /// e.g. `webhook:<id>`.
    pub target: String,
    /// Names of changed fields and other non-secret facts.
    pub details: serde_json::Value,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

/// A change of a webhook's `is_active` flag, with its side effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Unchanged,
    /// Re-enabled: the failure counter and the reason are cleared.
    Enable,
    /// Disabled by a person (`disabled_reason: "manual"`).
    Disable,
}

/// An accepted event, before it is stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub event_ref: String,
    pub event_type: String,
    pub ordering_key: Option<String>,
    /// The `data` object exactly as published (shared, not copied, by the deliveries handed
    /// over at publish).
    pub data: bytes::Bytes,
    pub created_at: i64,
    /// The webhooks subscribed to it whose payload filter left it out (no delivery): kept with
    /// the event, so its detail shows them.
    pub filtered: Vec<Uuid>,
    /// The API token it was published with, when that token was not read from the database for
    /// this request but kept by this process (PostgreSQL, [`crate::store::Store::find_publisher_token`]):
    /// the publish's own insert takes the event only while that token is live.
    pub live_token: Option<Uuid>,
}

/// One webhook an event fans out to.
#[derive(Debug, Clone)]
pub struct Target {
    pub webhook_id: Uuid,
    pub start: DeliveryStart,
}

/// The state a new delivery starts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStart {
    /// Due now: the dispatcher claims it.
    Pending,
    /// The webhook is inactive: the delivery waits until it is re-enabled.
    Held,
    /// Already leased to the publishing process, whose dispatcher had room for it: it is handed
    /// over in memory, with no claim. Should that process die, the lease expires like any other.
    Leased { claimer: String, lease_until: i64 },
}

impl DeliveryStart {
    pub(crate) fn state(&self) -> &'static str {
        match self {
            DeliveryStart::Pending => "pending",
            DeliveryStart::Held => "held",
            DeliveryStart::Leased { .. } => "leased",
        }
    }

    pub(crate) fn lease(&self) -> (Option<i64>, Option<&str>) {
        match self {
            DeliveryStart::Leased { claimer, lease_until } => (Some(*lease_until), Some(claimer.as_str())),
            _ => (None, None),
        }
    }
}

/// The answer to a publish (the original one, for a repeated `event_ref`).
#[derive(Debug, Clone)]
pub struct Published {
    pub event_id: Uuid,
    pub event_ref: String,
    pub deliveries: u64,
    /// The event_ref was already published: nothing new was created.
    pub duplicate: bool,
    /// The deliveries created leased to the publisher ([`DeliveryStart::Leased`]): (webhook, seq).
    pub leased: Vec<(Uuid, i64)>,
}

/// A delivery leased to this process for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    pub tenant_id: String,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    /// The event's payload, shared by all its deliveries in this process.
    pub data: bytes::Bytes,
    pub created_at: i64,
    /// The delivery has an ordering key: the next delivery of the key waits for this one's record.
    pub ordered: bool,
}

/// One attempt, as logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The `X-Tocsin-Delivery` value.
    pub id: Uuid,
    pub delivery_seq: i64,
    pub tenant_id: String,
    pub webhook_id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    /// The format the request was rendered in.
    pub format: Format,
    pub attempt_no: u32,
    pub success: bool,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response_ms: i64,
    /// JSON object of the request headers (signatures included, never a secret).
    pub request_headers: String,
    /// When the request was rendered and sent (its `emitted_at`); the body is rendered again
    /// from the event for display rather than stored.
    pub dispatched_at: i64,
    pub response_body: Vec<u8>,
    /// JSON object of the response's headers (capped; cookies masked); empty without a response.
    pub response_headers: String,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// Retry at this time (held instead while the webhook is inactive).
    Retry(i64),
    Failed,
}

/// The result of an attempt, written in one transaction with its effects on the webhook.
#[derive(Debug, Clone)]
pub struct Completion {
    pub attempt: AttemptRecord,
    pub next: NextStep,
    /// The lease this process holds; a delivery whose lease passed to another process is not touched.
    pub claimer: String,
    /// Test deliveries do not move the circuit breaker.
    pub counts_for_breaker: bool,
    /// The webhook's failure counter was 0 when the delivery was claimed: a success need not
    /// reset it (saves a write per delivery; a failure in between is reset by a later success).
    pub counter_was_zero: bool,
    /// The endpoint answered 410 Gone: deactivate at once.
    pub gone: bool,
    /// The delivery has an ordering key: the next delivery of the key is claimed only once this
    /// record is written, so it is not held back for company.
    pub ordered: bool,
    /// What a counted failure does to the webhook's circuit.
    pub breaker: Breaker,
}

impl Completion {
    /// Whether this record may be held back to be written with others (PostgreSQL combines
    /// them, [`crate::store::Store::complete`]): a success that changes nothing on its webhook
    /// and that no delivery waits for. The next delivery of an ordering key is claimed only once
    /// its predecessor's record is written, so such a record goes at once.
    pub fn may_wait_for_company(&self) -> bool {
        let webhook_untouched = !self.gone && (!self.counts_for_breaker || self.counter_was_zero);
        self.attempt.success && webhook_untouched && self.next == NextStep::Succeeded && !self.ordered
    }
}

/// How the circuit breaker decides, for one failed attempt: open the circuit once `threshold`
/// counted attempts in a row failed, for `cooldown_ms` (the caller doubles it with each opening
/// in a row); disable once the webhook has failed without a success for `disable_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    pub threshold: u32,
    pub cooldown_ms: i64,
    pub disable_after_ms: i64,
}

/// What recording an attempt did to its webhook's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthChange {
    /// The circuit opened: until then (Unix ms), for the n-th time in a row.
    pub opened: Option<(i64, u32)>,
    /// The webhook was deactivated (failing for too long, or gone).
    pub disabled: bool,
}

/// An event with the state of its deliveries.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: Uuid,
    pub event_ref: String,
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub data: Vec<u8>,
    pub created_at: i64,
    pub deliveries: Vec<DeliveryState>,
    /// The webhooks subscribed to it whose payload filter left it out.
    pub filtered: Vec<Uuid>,
}

#[derive(Debug, Clone)]
pub struct DeliveryState {
    pub seq: i64,
    pub webhook_id: Uuid,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// Attempt statistics of one webhook over a window.
#[derive(Debug, Clone, Default)]
pub struct WebhookStats {
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn success() -> Completion {
        Completion {
            attempt: AttemptRecord {
                id: Uuid::now_v7(),
                delivery_seq: 1,
                tenant_id: "default".into(),
                webhook_id: Uuid::new_v4(),
                event_ref: "e1".into(),
                event_type: "alert.created".into(),
                format: crate::destinations::default_format(),
                attempt_no: 1,
                success: true,
                http_status: Some(200),
                error: None,
                response_ms: 1,
                request_headers: "{}".into(),
                dispatched_at: 0,
                response_body: Vec::new(),
                response_headers: "{}".into(),
                next_attempt_at: None,
                created_at: 0,
            },
            next: NextStep::Succeeded,
            claimer: "p".into(),
            counts_for_breaker: true,
            counter_was_zero: true,
            gone: false,
            ordered: false,
            breaker: Breaker { threshold: 5, cooldown_ms: 1000, disable_after_ms: 1000 },
        }
    }

    /// Only a plain success that no delivery waits for is held back for company: not one whose
    /// next delivery of the same ordering key waits for it, nor one that changes its webhook.
    #[test]
    fn only_records_nothing_waits_for_wait_for_company() {
        assert!(success().may_wait_for_company());
        let test_send = Completion { counts_for_breaker: false, counter_was_zero: false, ..success() };
        assert!(test_send.may_wait_for_company(), "one that does not count for the breaker changes nothing");
        assert!(!Completion { ordered: true, ..success() }.may_wait_for_company(), "an ordering key's record");
        assert!(!Completion { counter_was_zero: false, ..success() }.may_wait_for_company(), "closes a circuit");
        assert!(!Completion { gone: true, ..success() }.may_wait_for_company(), "410 Gone");
        assert!(!Completion { next: NextStep::Retry(5), ..success() }.may_wait_for_company(), "a retry");
        let mut failed = success();
        failed.attempt.success = false;
        failed.next = NextStep::Failed;
        assert!(!failed.may_wait_for_company(), "a failure");
    }
}
