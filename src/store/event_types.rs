//! A tenant's own event types (the configured catalogue is not stored).

use super::sql::{Row, Stmt};
use super::sql_store::{audit_stmt, corrupt, count};
use super::{AuditEntry, Store, StoreError};
use crate::domain::event_type::EventType;
use crate::domain::tenant::TenantId;
use crate::params;

impl Store {
    pub async fn list_event_types(&self, tenant: &TenantId) -> Result<Vec<EventType>, StoreError> {
        self.event_types
            .get_or_load(tenant.clone(), async {
                let rows = self
                    .db
                    .query(
                        "SELECT name, description, schema, example, presentation FROM event_types \
                         WHERE tenant_id = $1 ORDER BY name",
                        params![tenant.as_str()],
                    )
                    .await?;
                rows.iter().map(event_type_from_row).collect()
            })
            .await
    }

    pub async fn upsert_event_type(
        &self,
        tenant: &TenantId,
        et: &EventType,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "SELECT COUNT(*) AS n FROM event_types WHERE tenant_id = $1 AND name = $2",
                    params![tenant.as_str(), &et.name],
                ),
                Stmt::new(
                    "INSERT INTO event_types (tenant_id, name, description, schema, example, presentation, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (tenant_id, name) DO UPDATE SET description = excluded.description, \
                     schema = excluded.schema, example = excluded.example, \
                     presentation = excluded.presentation, updated_at = excluded.updated_at",
                    params![
                        tenant.as_str(),
                        &et.name,
                        &et.description,
                        json(&et.schema),
                        json(&et.example),
                        json(&et.presentation),
                        audit.at
                    ],
                ),
                audit_stmt(&audit),
            ])
            .await;
        self.event_types.invalidate();
        let r = r?;
        Ok(count(&r[0].rows)? == 0)
    }

    pub async fn delete_event_type(
        &self,
        tenant: &TenantId,
        name: &str,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new("DELETE FROM event_types WHERE tenant_id = $1 AND name = $2", params![tenant.as_str(), name]),
                audit_stmt(&audit),
            ])
            .await;
        self.event_types.invalidate();
        let r = r?;
        Ok(r[0].affected == 1)
    }
}

fn event_type_from_row(r: &Row) -> Result<EventType, StoreError> {
    let json = |column: &str| -> Result<Option<serde_json::Value>, StoreError> {
        r.opt_text(column)?.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("event type json", e))).transpose()
    };
    Ok(EventType {
        name: r.text("name")?,
        description: r.text("description")?,
        schema: json("schema")?,
        example: json("example")?,
        presentation: json("presentation")?,
    })
}
