//! Use cases shared by the API, the dashboard and the CLI: each parses its input into domain
//! types, checks the caller's role, and works through the store and the delivery engine.
//! Failures are typed ([`ServiceError`]); the adapters decide how to show them.

pub mod caller;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod health;
pub mod tenant;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

pub use caller::{Principal, Publisher};
pub use error::{ServiceError, ServiceResult};
pub use health::Health;

use crate::config::Settings;
use crate::crypto::Cipher;
use crate::delivery::Dispatcher;
use crate::domain::tenant::TenantId;
use crate::profile::{Profile, Profiles};
use crate::store::Store;
use crate::transport::ssrf::AddressPolicy;

/// What every use case can reach (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<Store>,
    pub cipher: Cipher,
    /// The product contracts, and the deployment's default.
    pub profiles: Profiles,
    pub settings: Settings,
    pub address_policy: AddressPolicy,
    pub dispatcher: Dispatcher,
    pub health: Health,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The profile a tenant speaks: its own choice, else the deployment's default.
    pub async fn profile_of(&self, tenant: &TenantId) -> ServiceResult<Arc<Profile>> {
        Ok(self.profiles.resolve(self.store.tenant_profile(tenant).await?.as_deref()))
    }

    /// [`AppState::profile_of`] for pages that show it: the deployment's default if the store
    /// cannot say.
    pub async fn shown_profile(&self, tenant: &TenantId) -> Arc<Profile> {
        self.profile_of(tenant).await.unwrap_or_else(|_| self.profiles.default_profile().clone())
    }
}
