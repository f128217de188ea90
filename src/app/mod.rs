//! Building and running the service: store, migrations, keys, bootstrap, HTTP server.

pub mod serve;
pub mod supervise;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::{self, Cipher};
use crate::delivery::Dispatcher;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::{PlainToken, Role};
use crate::service::{AppState, Health, Shared};
use crate::store::{self, Store, TokenRecord};
use crate::transport::ssrf::AddressPolicy;
use supervise::Supervisor;

const KEY_CHECK: &str = "master_key_check";

/// Opens the store and applies pending migrations.
/// For the commands that manage a server's data (`token`, `tenant`): the store `serve` made. A
/// SQLite file that does not exist is not created: the command was pointed elsewhere than the
/// server's data (another working directory, a missing `--data-dir`), and a token made in a new
/// empty store would be one the server rejects.
pub async fn open_existing_store(settings: &Settings) -> anyhow::Result<Result<Arc<Store>, String>> {
    if let store::DatabaseUrl::Sqlite(path) = &settings.database {
        if !path.exists() {
            return Ok(Err(format!(
                "no Tocsin database at {}: pass the server's data directory (--data-dir or TOCSIN_DATA_DIR), \
                 its --database-url or its --config; `tocsin serve` creates the database on its first start",
                path.display()
            )));
        }
    }
    let store = open_store(settings).await?;
    // Writes of the command (audit entries) sign their chains' heads like the server's.
    store.seal_with(load_cipher(settings, &store).await?);
    Ok(Ok(store))
}

/// The store for a command that only reads it (`verify-log`): opened as it is, never migrated
/// (a newer binary must not change a store another server runs on), with the master key loaded.
pub async fn open_store_as_is(settings: &Settings) -> anyhow::Result<Result<(Arc<Store>, Cipher), String>> {
    if let store::DatabaseUrl::Sqlite(path) = &settings.database {
        if !path.exists() {
            return Ok(Err(format!(
                "no Tocsin database at {}: pass the server's data directory (--data-dir or TOCSIN_DATA_DIR) \
                 or its --database-url",
                path.display()
            )));
        }
    }
    let store = store::open(&settings.database)
        .await
        .with_context(|| format!("cannot open database {}", settings.database.redacted()))?;
    let unapplied = store.unapplied_migrations().await.context("cannot read the schema's version")?;
    if !unapplied.is_empty() {
        return Ok(Err(format!(
            "the store is older than this binary (migrations {unapplied:?} not applied): check it with the \
             tocsin it runs with, or upgrade it first (tocsin migrate)"
        )));
    }
    let cipher = load_cipher(settings, &store).await?;
    store.seal_with(cipher.clone());
    Ok(Ok((store, cipher)))
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<Store>> {
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
pub async fn load_cipher(settings: &Settings, store: &Store) -> anyhow::Result<Cipher> {
    let key = crypto::load_or_create_master_key(settings.master_key.as_ref().map(|k| k.0), &settings.data_dir)?;
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
pub async fn bootstrap(settings: &Settings, store: &Store) -> anyhow::Result<Option<PlainToken>> {
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
        let token = PlainToken::given(raw.0.clone());
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
        // One server owns a SQLite file: leases found when it starts belong to a server that
        // died. (Only the server does this: `tocsin token` opens the file beside a running one.)
        if store.dialect() == crate::store::Dialect::Sqlite {
            let released = store.release_every_lease().await.context("cannot release the previous server's leases")?;
            if released > 0 {
                tracing::info!(deliveries = released, "released the leases of the previous server");
            }
        }
        let cipher = load_cipher(&settings, store.as_ref()).await?;
        store.seal_with(cipher.clone());
        let bootstrap_token = bootstrap(&settings, store.as_ref()).await?;
        let profiles = settings.load_profiles()?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("invalid setting TOCSIN_LISTEN: cannot listen on {}", settings.listen))?;
        let address_policy = AddressPolicy::new(settings.allow_destinations.clone());
        let dispatcher = Dispatcher::new(&settings, store.clone(), cipher.clone(), profiles.clone())?;
        let health = Health::default();
        let state = AppState::new(Shared { store, cipher, profiles, settings, address_policy, dispatcher, health });
        Ok(Self { listener, state, bootstrap_token })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves and delivers until `shutdown` resolves; then finishes in-flight requests, lets
    /// attempts in flight finish within the grace period, and releases the rest. Should a
    /// background task end on its own, everything stops and the failure is returned.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = crate::http::router(self.state.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let grace = self.state.settings.shutdown_grace;
        let mut tasks = Supervisor::default();
        let mut stop_delivery = stop_rx.clone();
        tasks.spawn(
            "delivery",
            self.state.dispatcher.clone().run(
                async move {
                    stop_delivery.wait_for(|s| *s).await.ok();
                },
                grace,
            ),
        );
        tasks.spawn("history pruning", prune_history(self.state.clone(), stop_rx.clone()));
        let mut stopped = stop_rx.clone();
        let stop_on_signal = stop_tx.clone();
        let limits = serve::Limits {
            header_read: self.state.settings.request_timeout,
            max_connections: self.state.settings.max_connections,
        };
        let serve = serve::serve(self.listener, app, limits, async move {
            tokio::select! {
                _ = shutdown => {
                    stop_on_signal.send(true).ok();
                }
                // A background task failed: the supervisor asked everything to stop.
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
        // Should the server end on its own (its listener failed), the tasks stop too.
        let stop_after_serving = stop_tx.clone();
        let server = tokio::spawn(async move {
            let served = serve.await;
            stop_after_serving.send(true).ok();
            served
        });
        let supervised = tasks.wait(stop_rx, &stop_tx, &self.state.health).await;
        let served = server.await.context("the HTTP server task failed")?;
        supervised?;
        served?;
        Ok(())
    }
}

/// Deletes delivery history older than the retention, hourly, in the background.
async fn prune_history(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let before = now_ms() - state.settings.retention.as_millis() as i64;
        match state.store.prune(before, &state.cipher).await {
            Ok(n) if n > 0 => tracing::info!(attempts = n, "pruned delivery history"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning delivery history failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
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
