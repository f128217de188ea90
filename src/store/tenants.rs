//! Tenant-wide settings: the contact address told about a failing webhook without an owner.

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
}
