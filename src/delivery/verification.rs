//! Endpoint ownership: a signed `webhook.verification` with a fresh challenge, which the
//! endpoint proves it is its owner's by answering (2xx, the challenge as the body or as
//! `{"challenge": "…"}`). It goes like any delivery: signed, custom headers, the SSRF guard.

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::headers::{push_custom, signed_headers, Signed};
use super::Dispatcher;
use crate::crypto::{b64url, random_bytes};
use crate::domain::time::{now_ms, rfc3339_ms};
use crate::domain::webhook::Webhook;

impl Dispatcher {
    /// Challenges `webhook`'s endpoint; `Err` says why it did not prove its ownership.
    pub async fn verify_endpoint(&self, webhook: Webhook) -> Result<(), String> {
        let challenge = b64url(&random_bytes::<24>());
        let endpoint = self.open_endpoint(webhook).await.map_err(|e| e.to_string())?;
        let w = &endpoint.webhook;
        let now = now_ms();
        let body = serde_json::json!({
            "event": "webhook.verification", "challenge": challenge, "webhook_id": w.id,
            "emitted_at": rfc3339_ms(now),
        })
        .to_string();
        let mut headers = signed_headers(
            &endpoint.profile,
            &Signed {
                content_type: "application/json",
                event_type: "webhook.verification",
                event_ref: &challenge,
                attempt_id: Uuid::now_v7(),
                now,
                webhook_id: w.id,
                keys: endpoint.keys.as_ref(),
                previous: endpoint.previous.as_ref(),
                body: body.as_bytes(),
            },
        );
        push_custom(&mut headers, &w.headers);
        let timeout = Duration::from_millis(w.timeout_ms as u64);
        let answer =
            self.http.post(w.url.uri(), headers, Bytes::from(body), timeout).await.map_err(|e| e.to_string())?;
        if !(200..300).contains(&answer.status) {
            return Err(format!(
                "the endpoint answered HTTP {} (it must answer 2xx with the challenge)",
                answer.status
            ));
        }
        let text = String::from_utf8_lossy(&answer.body_excerpt);
        let echoed = text.trim() == challenge
            || serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("challenge").and_then(|c| c.as_str()).map(|c| c == challenge))
                .unwrap_or(false);
        if echoed {
            Ok(())
        } else {
            Err("the endpoint answered without the challenge: answer it as the body, or as {\"challenge\": \"…\"}"
                .into())
        }
    }
}
