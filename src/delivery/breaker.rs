//! What follows an attempt: its record in the store, and when that record trips the breaker (or
//! the endpoint answered 410), the `webhook.disabled` event and the owner's email.

use std::time::Duration;

use uuid::Uuid;

use super::Dispatcher;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::store::{Completion, NewEvent, StoreError};

impl Dispatcher {
    /// Stores a completion, retrying while the database is briefly unavailable. If it cannot be
    /// stored the lease expires and the delivery is attempted again: at least once, never lost.
    pub(super) async fn record(&self, completion: &Completion, webhook: &Webhook) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..8 {
            match self.store.complete(completion).await {
                Ok(change) => {
                    if let Some((until, opens)) = change.opened {
                        self.circuit_opened(webhook.id, until).await;
                        if opens == 1 {
                            self.on_failing(webhook, until).await;
                        }
                    }
                    if change.disabled {
                        self.on_disabled(webhook).await;
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record an attempt; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        tracing::error!(webhook = %webhook.id, "giving up recording an attempt; its lease will expire and it will be retried");
    }

    /// Who is emailed about a webhook: its owner, else its tenant's contact address.
    async fn who_to_tell(&self, webhook: &Webhook) -> Option<String> {
        if let Some(owner) = &webhook.owner_email {
            return Some(owner.clone());
        }
        // Without a mailer there is no one to email: no need to look.
        self.mailer.as_ref()?;
        match self.store.tenant_contact(&webhook.tenant_id).await {
            Ok(contact) => contact,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the tenant's contact address");
                None
            }
        }
    }

    /// A webhook's circuit opened for the first time in a row: it is failing. Its deliveries
    /// wait; the tenant's subscribers and the owner are told.
    async fn on_failing(&self, webhook: &Webhook, until: i64) {
        tracing::warn!(webhook = %webhook.id, tenant = %webhook.tenant_id, "webhook failing: circuit open");
        let data = serde_json::json!({
            "webhook_id": webhook.id,
            "name": webhook.name,
            "url": webhook.url.masked(),
            "next_probe_at": crate::domain::time::rfc3339_ms(until),
            "owner_email": webhook.owner_email,
        });
        if let Err(e) = publish_system_event(self, &webhook.tenant_id, "webhook.failing", data).await {
            tracing::warn!(error = %e, "cannot publish webhook.failing");
        }
        if let (Some(mailer), Some(to)) = (&self.mailer, self.who_to_tell(webhook).await) {
            if let Err(e) = mailer.webhook_failing(&to, webhook).await {
                tracing::warn!(webhook = %webhook.id, error = %e, "cannot email the webhook's owner");
            }
        }
    }

    /// The circuit breaker (or a 410) disabled a webhook: tell the tenant's subscribers.
    async fn on_disabled(&self, webhook: &Webhook) {
        let current = self.store.webhook_by_id(webhook.id).await.ok().flatten();
        let reason = current.as_ref().and_then(|w| w.disabled_reason.clone()).unwrap_or_default();
        let failures = current.as_ref().map_or(0, |w| w.failure_count);
        tracing::warn!(webhook = %webhook.id, tenant = %webhook.tenant_id, %reason, "webhook disabled");
        let data = serde_json::json!({
            "webhook_id": webhook.id,
            "name": webhook.name,
            "url": webhook.url.masked(),
            "reason": reason,
            "failure_count": failures,
            "owner_email": webhook.owner_email,
        });
        if let Err(e) = publish_system_event(self, &webhook.tenant_id, "webhook.disabled", data).await {
            tracing::warn!(error = %e, "cannot publish webhook.disabled");
        }
        if let (Some(mailer), Some(to)) = (&self.mailer, self.who_to_tell(webhook).await) {
            if let Err(e) = mailer.webhook_disabled(&to, webhook, &reason, failures).await {
                tracing::warn!(webhook = %webhook.id, error = %e, "cannot email the webhook's owner");
            }
        }
    }
}

/// Publishes an event raised by Tocsin itself to the tenant's subscribers of it.
async fn publish_system_event(
    dispatcher: &Dispatcher,
    tenant: &TenantId,
    event_type: &str,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    let event = NewEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant.clone(),
        event_ref: Uuid::new_v4().to_string(),
        event_type: event_type.to_string(),
        ordering_key: None,
        data: data.to_string().into_bytes().into(),
        created_at: now_ms(),
        filtered: Vec::new(),
        live_token: None,
    };
    let (_, woken) = crate::fanout::commit(dispatcher.store.as_ref(), tenant, vec![event], None, &|_, data| {
        crate::destinations::presentation::severity_of(data, None)
    })
    .await?;
    dispatcher.wake(woken);
    Ok(())
}
