//! Tenant-wide settings: the contact address told about a failing webhook without an owner, and
//! the product profile the tenant speaks.

use super::sql::Stmt;
use super::sql_store::audit_stmt;
use super::{AuditEntry, Store, StoreError};
use crate::domain::tenant::TenantId;
use crate::params;

impl Store {
    /// The tenant's contact address, if one is set.
    pub async fn tenant_contact(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        let rows = self.db.query("SELECT contact_email FROM tenants WHERE id = $1", params![tenant.as_str()]).await?;
        Ok(rows.first().map(|r| r.opt_text("contact_email")).transpose()?.flatten())
    }

    /// Sets (or, with `None`, clears) the tenant's contact address.
    pub async fn set_tenant_contact(
        &self,
        tenant: &TenantId,
        contact: Option<&str>,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.db
            .write(vec![
                Stmt::new(
                    "INSERT INTO tenants (id, contact_email, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET contact_email = excluded.contact_email, \
                     updated_at = excluded.updated_at",
                    params![tenant.as_str(), contact, audit.at],
                ),
                audit_stmt(&audit),
            ])
            .await
            .map(|_| ())
    }

    /// The profile the tenant chose, if it chose one (read on every publish: kept briefly).
    pub async fn tenant_profile(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        self.tenant_profiles
            .get_or_load(tenant.clone(), async {
                let rows = self.db.query("SELECT profile FROM tenants WHERE id = $1", params![tenant.as_str()]).await?;
                Ok::<_, StoreError>(rows.first().map(|r| r.opt_text("profile")).transpose()?.flatten())
            })
            .await
    }

    /// Sets (or, with `None`, clears) the tenant's profile.
    pub async fn set_tenant_profile(
        &self,
        tenant: &TenantId,
        profile: Option<&str>,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO tenants (id, profile, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
                    params![tenant.as_str(), profile, audit.at],
                ),
                audit_stmt(&audit),
            ])
            .await;
        self.tenant_profiles.invalidate();
        r.map(|_| ())
    }
}
