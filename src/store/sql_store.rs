//! The queries, written once for both databases.

use async_trait::async_trait;
use uuid::Uuid;

use super::backend::{Backend, Dialect};
use super::migrations;
use super::sql::{Row, Stmt};
use super::{Activation, AuditEntry, AuditRecord, Store, StoreError, TokenRecord};
use crate::domain::event_type::{EventType, EventTypePattern};
use crate::domain::page::Page;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::Role;
use crate::domain::webhook::{disabled_reason, CustomHeaders, Format, SealedSecrets, Webhook, WebhookUrl};
use crate::params;

/// The [`Store`] over any [`Backend`].
pub struct SqlStore<B> {
    pub(crate) db: B,
}

impl<B: Backend> SqlStore<B> {
    pub fn new(db: B) -> Self {
        Self { db }
    }
}

fn audit_stmt(a: &AuditEntry) -> Stmt {
    Stmt::new(
        "INSERT INTO audit_log (tenant_id, actor, action, target, details, at) VALUES ($1, $2, $3, $4, $5, $6)",
        params![a.tenant_id.as_str(), &a.actor, &a.action, &a.target, a.details.to_string(), a.at],
    )
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn token_from_row(r: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.uuid(0)?,
        tenant_id: TenantId::parse(&r.text(1)?).map_err(|e| corrupt("tenant", e))?,
        role: Role::parse(&r.text(2)?).map_err(|e| corrupt("role", e))?,
        name: r.text(3)?,
        prefix: r.text(4)?,
        created_at: r.int(5)?,
        revoked_at: r.opt_int(6)?,
    })
}

macro_rules! webhook_select {
    ($($rest:literal)*) => {
        concat!(
            "SELECT id, tenant_id, name, url, description, event_types, format, retry_count, timeout_ms, \
             retry_delays_ms, headers, is_active, failure_count, disabled_reason, max_per_second, owner_email, \
             secret, previous_secret, previous_expires_at, secret_rotated_at, created_at, updated_at FROM webhooks "
            $(, $rest)*
        )
    };
}

pub(crate) fn webhook_from_row(r: &Row) -> Result<Webhook, StoreError> {
    let patterns: Vec<String> = r.json(5)?;
    let delays: Option<Vec<u64>> = match r.opt_text(9)? {
        Some(t) => Some(serde_json::from_str(&t).map_err(|e| corrupt("retry_delays_ms", e))?),
        None => None,
    };
    Ok(Webhook {
        id: r.uuid(0)?,
        tenant_id: TenantId::parse(&r.text(1)?).map_err(|e| corrupt("tenant", e))?,
        name: r.text(2)?,
        url: WebhookUrl::parse(&r.text(3)?, "url").map_err(|e| corrupt("url", e))?,
        description: r.opt_text(4)?,
        event_types: patterns.iter().map(|p| EventTypePattern::from_stored(p)).collect(),
        format: Format::parse(&r.text(6)?, "format").map_err(|e| corrupt("format", e))?,
        retry_count: r.int(7)? as u32,
        timeout_ms: r.int(8)? as u32,
        retry_delays_ms: delays,
        headers: r.json::<CustomHeaders>(10)?,
        is_active: r.int(11)? != 0,
        failure_count: r.int(12)? as u32,
        disabled_reason: r.opt_text(13)?,
        max_per_second: r.opt_int(14)?.map(|v| v as u32),
        owner_email: r.opt_text(15)?,
        secret: SealedSecrets {
            current: r.bytes(16)?,
            previous: r.opt_bytes(17)?,
            previous_expires_at: r.opt_int(18)?,
            rotated_at: r.int(19)?,
        },
        created_at: r.int(20)?,
        updated_at: r.int(21)?,
    })
}

fn patterns_json(w: &Webhook) -> String {
    serde_json::Value::from(w.event_types.iter().map(EventTypePattern::as_string).collect::<Vec<_>>()).to_string()
}

fn delays_json(w: &Webhook) -> Option<String> {
    w.retry_delays_ms.as_ref().map(|d| serde_json::to_string(d).unwrap_or_else(|_| "[]".into()))
}

fn headers_json(w: &Webhook) -> String {
    serde_json::to_string(&w.headers).unwrap_or_else(|_| "{}".into())
}

fn event_type_from_row(r: &Row) -> Result<EventType, StoreError> {
    let json = |i| -> Result<Option<serde_json::Value>, StoreError> {
        r.opt_text(i)?.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("event type json", e))).transpose()
    };
    Ok(EventType {
        name: r.text(0)?,
        description: r.text(1)?,
        schema: json(2)?,
        example: json(3)?,
        presentation: json(4)?,
    })
}

fn count(rows: &[Row]) -> Result<u64, StoreError> {
    rows.first().map(|r| r.int(0)).transpose().map(|c| c.unwrap_or(0) as u64)
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let list = match self.db.dialect() {
            Dialect::Sqlite => migrations::SQLITE,
            Dialect::Postgres => migrations::POSTGRES,
        };
        self.db.migrate(list).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.query("SELECT 1", vec![]).await.map(|_| ())
    }

    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self.db.query("SELECT value FROM meta WHERE key = $1", params![key]).await?;
        rows.first().map(|r| r.text(0)).transpose()
    }

    async fn meta_insert(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![Stmt::new(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )])
            .await?;
        Ok(r[0].affected == 1)
    }

    async fn insert_token(
        &self,
        t: &TokenRecord,
        digest: [u8; 32],
        audit: Option<AuditEntry>,
    ) -> Result<bool, StoreError> {
        let mut stmts = vec![Stmt::new(
            "INSERT INTO api_tokens (id, tenant_id, role, name, prefix, digest, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (digest) DO NOTHING",
            params![t.id, t.tenant_id.as_str(), t.role.as_str(), &t.name, &t.prefix, &digest[..], t.created_at],
        )];
        stmts.extend(audit.as_ref().map(audit_stmt));
        let r = self.db.write(stmts).await?;
        Ok(r[0].affected == 1)
    }

    async fn bootstrap_token(&self, t: &TokenRecord, digest: [u8; 32]) -> Result<bool, StoreError> {
        // The meta row goes first: a concurrent bootstrap waits on its key, then inserts nothing.
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO meta (key, value) VALUES ('bootstrapped', $1) ON CONFLICT (key) DO NOTHING",
                    params![t.id],
                ),
                Stmt::new(
                    "INSERT INTO api_tokens (id, tenant_id, role, name, prefix, digest, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'bootstrapped' AND value = $1)",
                    params![t.id, t.tenant_id.as_str(), t.role.as_str(), &t.name, &t.prefix, &digest[..], t.created_at],
                ),
            ])
            .await?;
        Ok(r[1].affected == 1)
    }

    async fn find_token(&self, digest: [u8; 32]) -> Result<Option<(TokenRecord, Vec<u8>)>, StoreError> {
        const SQL: &str = "SELECT id, tenant_id, role, name, prefix, created_at, revoked_at, digest \
                           FROM api_tokens WHERE digest = $1 AND revoked_at IS NULL";
        let rows = self.db.query(SQL, params![&digest[..]]).await?;
        rows.first().map(|r| Ok((token_from_row(r)?, r.bytes(7)?))).transpose()
    }

    async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<TokenRecord>, StoreError> {
        const SQL: &str = "SELECT id, tenant_id, role, name, prefix, created_at, revoked_at \
                           FROM api_tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC";
        let rows = self.db.query(SQL, params![tenant.as_str()]).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
                    params![audit.at, tenant.as_str(), id],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(r[0].affected == 1)
    }

    async fn list_event_types(&self, tenant: &TenantId) -> Result<Vec<EventType>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT name, description, schema, example, presentation FROM event_types \
                 WHERE tenant_id = $1 ORDER BY name",
                params![tenant.as_str()],
            )
            .await?;
        rows.iter().map(event_type_from_row).collect()
    }

    async fn upsert_event_type(
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
                    "SELECT COUNT(*) FROM event_types WHERE tenant_id = $1 AND name = $2",
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
            .await?;
        Ok(count(&r[0].rows)? == 0)
    }

    async fn delete_event_type(&self, tenant: &TenantId, name: &str, audit: AuditEntry) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new("DELETE FROM event_types WHERE tenant_id = $1 AND name = $2", params![tenant.as_str(), name]),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(r[0].affected == 1)
    }

    async fn insert_webhook(&self, w: &Webhook, audit: AuditEntry) -> Result<(), StoreError> {
        self.db
            .write(vec![
                Stmt::new(
                    "INSERT INTO webhooks (id, tenant_id, name, url, description, event_types, format, retry_count, \
                     timeout_ms, retry_delays_ms, headers, is_active, failure_count, disabled_reason, \
                     max_per_second, owner_email, secret, previous_secret, previous_expires_at, \
                     secret_rotated_at, created_at, updated_at) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                     $21, $22)",
                    params![
                        w.id,
                        w.tenant_id.as_str(),
                        &w.name,
                        w.url.as_str(),
                        w.description.clone(),
                        patterns_json(w),
                        w.format.as_str(),
                        w.retry_count,
                        w.timeout_ms,
                        delays_json(w),
                        headers_json(w),
                        w.is_active,
                        w.failure_count,
                        w.disabled_reason.clone(),
                        w.max_per_second,
                        w.owner_email.clone(),
                        w.secret.current.clone(),
                        w.secret.previous.clone(),
                        w.secret.previous_expires_at,
                        w.secret.rotated_at,
                        w.created_at,
                        w.updated_at
                    ],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(())
    }

    async fn get_webhook(&self, tenant: &TenantId, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let rows =
            self.db.query(webhook_select!("WHERE tenant_id = $1 AND id = $2"), params![tenant.as_str(), id]).await?;
        rows.first().map(webhook_from_row).transpose()
    }

    async fn list_webhooks(&self, tenant: &TenantId, page: Page) -> Result<(Vec<Webhook>, u64), StoreError> {
        let rows = self
            .db
            .query(
                webhook_select!("WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"),
                params![tenant.as_str(), page.limit(), page.offset()],
            )
            .await?;
        let total =
            self.db.query("SELECT COUNT(*) FROM webhooks WHERE tenant_id = $1", params![tenant.as_str()]).await?;
        Ok((rows.iter().map(webhook_from_row).collect::<Result<_, _>>()?, count(&total)?))
    }

    async fn update_webhook(&self, w: &Webhook, activation: Activation, audit: AuditEntry) -> Result<bool, StoreError> {
        // `is_active`, the failure counter and the reason are written only when the request changed
        // activation: the dispatcher updates them concurrently.
        let act: Option<i64> = match activation {
            Activation::Unchanged => None,
            Activation::Enable => Some(1),
            Activation::Disable => Some(0),
        };
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "UPDATE webhooks SET name = $1, url = $2, description = $3, event_types = $4, format = $5, \
                     retry_count = $6, timeout_ms = $7, retry_delays_ms = $8, headers = $9, max_per_second = $10, \
                     owner_email = $11, updated_at = $12, \
                     failure_count = CASE WHEN CAST($13 AS BIGINT) = 1 AND is_active = 0 THEN 0 \
                                          ELSE failure_count END, \
                     disabled_reason = CASE WHEN CAST($13 AS BIGINT) = 1 THEN NULL \
                                            WHEN CAST($13 AS BIGINT) = 0 AND is_active = 1 THEN $14 \
                                            ELSE disabled_reason END, \
                     is_active = COALESCE(CAST($13 AS BIGINT), is_active) \
                     WHERE tenant_id = $15 AND id = $16",
                    params![
                        &w.name,
                        w.url.as_str(),
                        w.description.clone(),
                        patterns_json(w),
                        w.format.as_str(),
                        w.retry_count,
                        w.timeout_ms,
                        delays_json(w),
                        headers_json(w),
                        w.max_per_second,
                        w.owner_email.clone(),
                        w.updated_at,
                        act,
                        disabled_reason::MANUAL,
                        w.tenant_id.as_str(),
                        w.id
                    ],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(r[0].affected == 1)
    }

    async fn update_secrets(
        &self,
        tenant: &TenantId,
        id: Uuid,
        s: &SealedSecrets,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "UPDATE webhooks SET secret = $1, previous_secret = $2, previous_expires_at = $3, \
                     secret_rotated_at = $4, updated_at = $5 WHERE tenant_id = $6 AND id = $7",
                    params![
                        s.current.clone(),
                        s.previous.clone(),
                        s.previous_expires_at,
                        s.rotated_at,
                        now_ms(),
                        tenant.as_str(),
                        id
                    ],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(r[0].affected == 1)
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2", params![tenant.as_str(), id]),
                Stmt::new(
                    "DELETE FROM deliveries WHERE tenant_id = $1 AND webhook_id = $2",
                    params![tenant.as_str(), id],
                ),
                Stmt::new(
                    "DELETE FROM attempts WHERE tenant_id = $1 AND webhook_id = $2",
                    params![tenant.as_str(), id],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(r[0].affected == 1)
    }

    async fn list_audit(&self, tenant: &TenantId, page: Page) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let rows = self
            .db
            .query(
                "SELECT id, tenant_id, actor, action, target, details, at FROM audit_log WHERE tenant_id = $1 \
                 ORDER BY id DESC LIMIT $2 OFFSET $3",
                params![tenant.as_str(), page.limit(), page.offset()],
            )
            .await?;
        let total =
            self.db.query("SELECT COUNT(*) FROM audit_log WHERE tenant_id = $1", params![tenant.as_str()]).await?;
        let records = rows
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.int(0)?,
                    entry: AuditEntry {
                        tenant_id: TenantId::parse(&r.text(1)?).map_err(|e| corrupt("tenant", e))?,
                        actor: r.text(2)?,
                        action: r.text(3)?,
                        target: r.text(4)?,
                        details: r.json(5)?,
                        at: r.int(6)?,
                    },
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((records, count(&total)?))
    }
}
