//! Building and running the service: store, migrations, keys, bootstrap, HTTP server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::api::{self, AppState, Shared};
use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::crypto::{self, Cipher};
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::{PlainToken, Role};
use crate::store::{self, Store, TokenRecord};
use crate::transport::ssrf::AddressPolicy;

const KEY_CHECK: &str = "master_key_check";

/// Opens the store and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::open(&settings.database)
        .await
        .with_context(|| format!("cannot open database {}", settings.database.redacted()))?;
    let applied = store.migrate().await.context("migrations failed")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    Ok(store)
}

/// Loads the master key and checks it is the one the database was first used with.
pub async fn load_cipher(settings: &Settings, store: &dyn Store) -> anyhow::Result<Cipher> {
    let key = crypto::load_or_create_master_key(settings.master_key, &settings.data_dir)?;
    let cipher = Cipher::new(&key);
    match store.meta_get(KEY_CHECK).await? {
        Some(check) => {
            let sealed = hex::decode(check).context("corrupt master key check")?;
            cipher.open(&sealed, KEY_CHECK.as_bytes()).map_err(|_| {
                anyhow::anyhow!(
                    "invalid setting TOCSIN_MASTER_KEY: it is not the key this database's secrets were sealed with"
                )
            })?;
        }
        None => {
            let sealed = cipher.seal(b"tocsin", KEY_CHECK.as_bytes());
            store.meta_insert(KEY_CHECK, &hex::encode(sealed)).await?;
            // Another process may have won the race with a different key: check again.
            let stored = store.meta_get(KEY_CHECK).await?.unwrap_or_default();
            let sealed = hex::decode(stored).context("corrupt master key check")?;
            cipher
                .open(&sealed, KEY_CHECK.as_bytes())
                .map_err(|_| anyhow::anyhow!("invalid setting TOCSIN_MASTER_KEY: another instance uses another key"))?;
        }
    }
    Ok(cipher)
}

/// Seeds `TOCSIN_ADMIN_TOKEN`, and on the very first start creates the bootstrap admin token.
/// Returns the bootstrap token when this call created it (it is shown once).
pub async fn bootstrap(settings: &Settings, store: &dyn Store) -> anyhow::Result<Option<PlainToken>> {
    let record = |name: &str, token: &PlainToken| TokenRecord {
        id: Uuid::now_v7(),
        tenant_id: TenantId::default_tenant(),
        role: Role::Admin,
        name: name.to_string(),
        prefix: token.display_prefix(),
        created_at: now_ms(),
        revoked_at: None,
    };
    if let Some(raw) = &settings.admin_token {
        let token = PlainToken::given(raw.clone());
        store.insert_token(&record("TOCSIN_ADMIN_TOKEN", &token), token.digest(), None).await?;
        store.meta_insert("bootstrapped", "TOCSIN_ADMIN_TOKEN").await?;
        return Ok(None);
    }
    let token = PlainToken::generate();
    let created = store.bootstrap_token(&record("bootstrap", &token), token.digest()).await?;
    Ok(created.then_some(token))
}

/// A built service, bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The bootstrap admin token, when this start created it.
    pub bootstrap_token: Option<PlainToken>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings).await?;
        let cipher = load_cipher(&settings, store.as_ref()).await?;
        let bootstrap_token = bootstrap(&settings, store.as_ref()).await?;
        let catalogue = Catalogue::load(&settings.catalogue_files)?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("invalid setting TOCSIN_LISTEN: cannot listen on {}", settings.listen))?;
        let address_policy = AddressPolicy::new(settings.allow_destinations.clone());
        let state = AppState::new(Shared { store, cipher, catalogue, settings, address_policy });
        Ok(Self { listener, state, bootstrap_token })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = api::router(self.state.clone());
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await?;
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight work");
}
