//! Email to a webhook's owner when the circuit breaker disables it (when SMTP is configured).

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::webhook::Webhook;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `url`: `smtp://[user:pass@]host[:port]` (add `?tls=required` for STARTTLS) or `smtps://…`.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("not an SMTP URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from = from.parse().map_err(|_| format!("'{from}' is not a sender address"))?;
        Ok(Self { transport, from })
    }

    async fn send(&self, to: Mailbox, subject: String, body: String) -> Result<(), String> {
        let message =
            Message::builder().from(self.from.clone()).to(to).subject(subject).body(body).map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The webhook's circuit opened: its deliveries wait and are probed.
    pub async fn webhook_failing(&self, to: &str, webhook: &Webhook) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|_| "bad owner email".to_string())?;
        let body = format!(
            "The webhook \"{name}\" ({url}) of tenant {tenant} is failing: its last deliveries failed.\n\n\
             Tocsin holds its deliveries back and tries one now and then; they all go out as soon as\n\
             one succeeds. If it keeps failing, the webhook is disabled (TOCSIN_DISABLE_AFTER).\n",
            name = webhook.name,
            url = webhook.url.masked(),
            tenant = webhook.tenant_id,
        );
        self.send(to, format!("[Tocsin] Webhook \"{}\" failing", webhook.name), body).await
    }

    pub async fn webhook_disabled(
        &self,
        to: &str,
        webhook: &Webhook,
        reason: &str,
        failures: u32,
    ) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|_| "bad owner email".to_string())?;
        let why = match reason {
            "gone" => "its endpoint answered 410 Gone".to_string(),
            _ => format!("{failures} consecutive deliveries failed"),
        };
        let body = format!(
            "Tocsin disabled the webhook \"{name}\" ({url}) of tenant {tenant}: {why}.\n\n\
             New events for it are kept (held) and will be delivered when you re-enable it\n\
             (PATCH /api/v1/webhooks/{id} with {{\"is_active\": true}}, or the dashboard).\n",
            name = webhook.name,
            url = webhook.url.masked(),
            tenant = webhook.tenant_id,
            id = webhook.id,
        );
        self.send(to, format!("[Tocsin] Webhook \"{}\" disabled", webhook.name), body).await
    }
}
