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
            url = webhook.url.as_str(),
            tenant = webhook.tenant_id,
            id = webhook.id,
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("[Tocsin] Webhook \"{}\" disabled", webhook.name))
            .body(body)
            .map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
