//! Test events: a `webhook.test` sent at once through the same attempt path as any delivery.

use uuid::Uuid;

use super::{attempt, DeliveryError, Dispatcher};
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::store::{AttemptRecord, ClaimedDelivery, NewEvent};

impl Dispatcher {
    /// Sends a `webhook.test` event to `webhook` now, through the same attempt path, and returns
    /// the logged attempt. Works on an inactive webhook too.
    pub async fn send_test(&self, webhook: Webhook, data: serde_json::Value) -> Result<AttemptRecord, DeliveryError> {
        // Opened before the test's delivery exists: failing later, it would be left leased, and
        // become an ordinary delivery once the lease ended.
        let dest = self.open_endpoint(webhook.clone()).await?;
        let event = NewEvent {
            id: Uuid::now_v7(),
            tenant_id: webhook.tenant_id.clone(),
            event_ref: Uuid::new_v4().to_string(),
            event_type: "webhook.test".into(),
            ordering_key: None,
            data: data.to_string().into_bytes().into(),
            created_at: now_ms(),
            filtered: Vec::new(),
            live_token: None,
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
            ordered: event.ordering_key.is_some(),
        };
        let completion = attempt::attempt(&self.context(), &dest, &claimed, &claimer, true).await;
        self.record(&completion, &dest.webhook).await;
        Ok(completion.attempt)
    }
}
