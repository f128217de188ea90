//! The delivery engine: claims due deliveries per webhook, attempts them concurrently, records
//! each attempt and schedules retries.
//!
//! Isolation: every webhook has its own concurrency limit and optional rate limit, and the claim
//! loop visits webhooks in turn, claiming for each only what it can start now, so a slow or
//! failing endpoint occupies at most its own slots. Durability: deliveries are leased in the
//! store; a process that dies leaves leases that expire and are claimed again, and on shutdown
//! the leases of attempts that did not finish are released.

pub mod attempt;
mod breaker;
mod handover;
pub mod headers;
pub mod notify;
pub mod retry;
mod scheduler;
mod slots;
mod test_send;
mod verification;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::Cipher;
use crate::destinations::{self, RenderSettings};
use crate::domain::secret::Secret;
use crate::domain::time::now_ms;
use crate::domain::webhook::Webhook;
use crate::profile::Profiles;
use crate::signing::SigningKeys;
use crate::store::{Store, StoreError};
use crate::transport::http::{GuardedConnector, HttpTransport, Resolve, SystemResolver};
use crate::transport::ssrf::AddressPolicy;
use crate::transport::syslog::SyslogTransport;
use attempt::{AttemptContext, BreakerSettings, Endpoint};
use slots::Slot;

pub struct Inner {
    store: Arc<Store>,
    cipher: Cipher,
    profiles: Profiles,
    http: HttpTransport,
    syslog: SyslogTransport,
    render: RenderSettings,
    breaker: BreakerSettings,
    /// Extra lease time beyond an attempt's own timeout, in ms.
    lease_margin_ms: i64,
    per_webhook: usize,
    global: Arc<Semaphore>,
    /// Attempts whose result is still being written: bounds the memory a slow database can take.
    recording: Arc<Semaphore>,
    slots: Mutex<HashMap<Uuid, Slot>>,
    /// Webhooks that got new work since the claim loop last looked.
    woken: Mutex<std::collections::HashSet<Uuid>>,
    wake: Notify,
    /// (seq, lease id) of claimed deliveries not yet recorded, released on shutdown if they do
    /// not finish.
    in_flight: Mutex<HashMap<i64, String>>,
    /// Set on shutdown: nothing new starts.
    stopping: std::sync::atomic::AtomicBool,
    /// A webhook found no free worker (or no room for results) to start its next delivery.
    starved: std::sync::atomic::AtomicBool,
    /// Lease ids are `<process>:<n>`: this process's part, and the last n.
    process: String,
    leases: std::sync::atomic::AtomicU64,
    mailer: Option<crate::delivery::notify::Mailer>,
}

/// Why the engine could not deliver to a webhook right now.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sealed secret does not open with this master key (the database was copied without
    /// its key, or tampered with).
    #[error("cannot open the webhook's secret")]
    SealedSecret,
    #[error("the delivery engine is stopping")]
    Stopping,
}

/// A handle to the delivery engine (cheap to clone).
#[derive(Clone)]
pub struct Dispatcher(Arc<Inner>);

impl std::ops::Deref for Dispatcher {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Dispatcher {
    pub fn new(settings: &Settings, store: Arc<Store>, cipher: Cipher, profiles: Profiles) -> anyhow::Result<Self> {
        Self::with_resolver(settings, store, cipher, profiles, Arc::new(SystemResolver))
    }

    /// Like `new`, with a chosen DNS resolver (tests map names to addresses with it).
    pub fn with_resolver(
        settings: &Settings,
        store: Arc<Store>,
        cipher: Cipher,
        profiles: Profiles,
        resolver: Arc<dyn Resolve>,
    ) -> anyhow::Result<Self> {
        let extra_ca = match &settings.extra_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_EXTRA_CA_FILE: {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let client = match &settings.client_cert {
            Some((cert, key)) => Some((
                std::fs::read(cert).map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_CLIENT_CERT_FILE: {e}"))?,
                std::fs::read(key).map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_CLIENT_KEY_FILE: {e}"))?,
            )),
            None => None,
        };
        let client = client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        let tls = crate::transport::http::tls_config(extra_ca.as_deref(), client).map_err(|e| {
            anyhow::anyhow!("invalid TLS settings (TOCSIN_EXTRA_CA_FILE, TOCSIN_CLIENT_CERT_FILE): {e}")
        })?;
        let policy = AddressPolicy::new(settings.allow_destinations.clone());
        let syslog =
            SyslogTransport::new(policy.clone(), resolver.clone(), Arc::new(tls.clone()), settings.syslog_udp_max);
        let mailer = match &settings.smtp_url {
            Some(url) => Some(
                crate::delivery::notify::Mailer::new(&url.0, &settings.smtp_from)
                    .map_err(|e| anyhow::anyhow!("invalid setting TOCSIN_SMTP_URL: {e}"))?,
            ),
            None => None,
        };
        let connector = GuardedConnector::new(policy, resolver);
        Ok(Self(Arc::new(Inner {
            store,
            cipher,
            profiles,
            http: HttpTransport::new(connector, tls, settings.workers),
            syslog,
            render: settings.render.clone(),
            breaker: BreakerSettings {
                cooldown_ms: i64::try_from(settings.breaker_cooldown.as_millis()).unwrap_or(i64::MAX),
            },
            lease_margin_ms: settings.lease_margin.as_millis() as i64,
            per_webhook: settings.webhook_concurrency.min(settings.workers),
            global: Arc::new(Semaphore::new(settings.workers)),
            recording: Arc::new(Semaphore::new(settings.workers * 4)),
            slots: Mutex::new(HashMap::new()),
            woken: Mutex::new(std::collections::HashSet::new()),
            wake: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            starved: std::sync::atomic::AtomicBool::new(false),
            process: format!("{}:{}", std::process::id(), Uuid::new_v4().simple()),
            leases: std::sync::atomic::AtomicU64::new(0),
            mailer,
        })))
    }

    /// New work for these webhooks: look at their queues now.
    pub fn wake(&self, webhooks: impl IntoIterator<Item = Uuid>) {
        let now = Instant::now();
        if let (Ok(mut slots), Ok(mut woken)) = (self.slots.lock(), self.woken.lock()) {
            for id in webhooks {
                slots.entry(id).or_insert_with(Slot::new).idle_until = now;
                woken.insert(id);
            }
        }
        self.wake.notify_one();
    }

    /// Opens a webhook's secrets for signing, and gathers its tenant's profile and how its
    /// tenant's events are presented.
    pub(super) async fn open_endpoint(&self, webhook: Webhook) -> Result<Endpoint, DeliveryError> {
        let profile = self.profiles.resolve(self.store.tenant_profile(&webhook.tenant_id).await?.as_deref());
        let mut presentations = HashMap::new();
        if destinations::of(webhook.format).uses_presentation() {
            for et in profile.catalogue.iter() {
                if let Some(p) = &et.presentation {
                    presentations.insert(et.name.clone(), p.clone());
                }
            }
            let own = self.store.list_event_types(&webhook.tenant_id).await?;
            for et in own {
                if let Some(p) = et.presentation {
                    presentations.entry(et.name).or_insert(p);
                }
            }
        }
        let open = |sealed: &[u8]| {
            self.cipher
                .open(sealed, webhook.id.as_bytes())
                .map(Secret::from_stored)
                .map_err(|_| DeliveryError::SealedSecret)
        };
        let secret = if webhook.secret.is_unsigned() { Secret::unsigned() } else { open(&webhook.secret.current)? };
        let previous = match (&webhook.secret.previous, webhook.secret.previous_expires_at) {
            (Some(prev), Some(until)) if until > now_ms() && !prev.is_empty() => Some(open(prev)?),
            _ => None,
        };
        // A webhook without a secret (where its profile allows one) delivers unsigned.
        let keys = (!secret.is_unsigned()).then(|| SigningKeys::new(&secret));
        let previous = previous.map(|s| SigningKeys::new(&s));
        Ok(Endpoint { webhook, profile, secret, keys, previous, presentations, failed_since_read: Default::default() })
    }

    pub(super) fn context(&self) -> AttemptContext<'_> {
        AttemptContext { http: &self.http, syslog: &self.syslog, render: &self.render, breaker: self.breaker }
    }

    /// A new lease id: each claim and each hand-over gets its own.
    pub(super) fn lease_id(&self) -> String {
        let n = self.leases.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        format!("{}:{n}", self.process)
    }
}

/// The webhook's rate limit: its own, or its format's default.
fn max_per_second(webhook: &Webhook) -> Option<u32> {
    webhook.max_per_second.or_else(|| destinations::of(webhook.format).default_max_per_second())
}
