//! Webhooks: their configuration, sealed secrets and breaker state. Reads for publishing and
//! claiming come from in-memory copies, dropped whenever a write changes a webhook.

use uuid::Uuid;

use super::sql::{Row, Stmt};
use super::sql_store::{audit_stmt, corrupt, count, HELD_RELEASE_CHUNK};
use super::{Activation, AuditEntry, Store, StoreError};
use crate::crypto::Cipher;
use crate::domain::event_type::EventTypePattern;
use crate::domain::filter::EventFilter;
use crate::domain::page::Page;
use crate::domain::severity::Severity;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::webhook::{
    disabled_reason, CustomHeaders, SealedSecrets, SigningAlgorithm, Verification, Webhook, WebhookUrl,
};
use crate::params;

macro_rules! webhook_select {
    ($($rest:literal)*) => {
        concat!(
            "SELECT id, tenant_id, name, url, description, event_types, format, retry_count, timeout_ms, \
             retry_delays_ms, headers, is_active, failure_count, disabled_reason, max_per_second, owner_email, \
             secret, previous_secret, previous_expires_at, secret_rotated_at, created_at, updated_at, \
             circuit_open_until, circuit_opens, failing_since, signing_algorithm, public_key, min_severity, filter, \
             verification FROM webhooks "
            $(, $rest)*
        )
    };
}

impl Store {
    pub async fn insert_webhook(&self, w: &Webhook, audit: AuditEntry) -> Result<(), StoreError> {
        let state = params![
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
            w.updated_at,
            w.signing_algorithm.as_str(),
            w.secret.public_key.clone(),
            w.verification.as_str()
        ];
        let values = [params![w.id, w.tenant_id.as_str()], self.configuration(w), state].concat();
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO webhooks (id, tenant_id, name, url, description, event_types, format, retry_count, \
                     timeout_ms, retry_delays_ms, headers, min_severity, filter, is_active, failure_count, \
                     disabled_reason, max_per_second, owner_email, secret, previous_secret, previous_expires_at, \
                     secret_rotated_at, created_at, updated_at, signing_algorithm, public_key, verification) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                     $21, $22, $23, $24, $25, $26, $27)",
                    values,
                ),
                audit_stmt(&audit),
            ])
            .await;
        self.webhooks_changed();
        r?;
        Ok(())
    }

    pub async fn get_webhook(&self, tenant: &TenantId, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let rows =
            self.db.query(webhook_select!("WHERE tenant_id = $1 AND id = $2"), params![tenant.as_str(), id]).await?;
        rows.first().map(|r| self.webhook_from_row(r)).transpose()
    }

    pub async fn list_webhooks(&self, tenant: &TenantId, page: Page) -> Result<(Vec<Webhook>, u64), StoreError> {
        let rows = self
            .db
            .query(
                webhook_select!("WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"),
                params![tenant.as_str(), page.limit(), page.offset()],
            )
            .await?;
        let total =
            self.db.query("SELECT COUNT(*) AS n FROM webhooks WHERE tenant_id = $1", params![tenant.as_str()]).await?;
        Ok((rows.iter().map(|r| self.webhook_from_row(r)).collect::<Result<_, _>>()?, count(&total)?))
    }

    pub async fn update_webhook(
        &self,
        w: &Webhook,
        activation: Activation,
        audit: AuditEntry,
    ) -> Result<bool, StoreError> {
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
                     retry_count = $6, timeout_ms = $7, retry_delays_ms = $8, headers = $9, min_severity = $10, \
                     filter = $11, max_per_second = $12, owner_email = $13, updated_at = $14, \
                     failure_count = CASE WHEN CAST($15 AS BIGINT) = 1 AND is_active = 0 THEN 0 \
                                          ELSE failure_count END, \
                     disabled_reason = CASE WHEN CAST($15 AS BIGINT) = 1 THEN NULL \
                                            WHEN CAST($15 AS BIGINT) = 0 AND is_active = 1 THEN $16 \
                                            ELSE disabled_reason END, \
                     circuit_open_until = CASE WHEN CAST($15 AS BIGINT) = 1 THEN NULL ELSE circuit_open_until END, \
                     circuit_opens = CASE WHEN CAST($15 AS BIGINT) = 1 THEN 0 ELSE circuit_opens END, \
                     failing_since = CASE WHEN CAST($15 AS BIGINT) = 1 THEN NULL ELSE failing_since END, \
                     is_active = COALESCE(CAST($15 AS BIGINT), is_active) \
                     WHERE tenant_id = $17 AND id = $18",
                    [
                        self.configuration(w),
                        params![
                            w.max_per_second,
                            w.owner_email.clone(),
                            w.updated_at,
                            act,
                            // The reason the service gave (`unverified` after a URL change), else
                            // a person's: a verify re-enables only a webhook disabled as unverified.
                            w.disabled_reason.as_deref().unwrap_or(disabled_reason::MANUAL),
                            w.tenant_id.as_str(),
                            w.id
                        ],
                    ]
                    .concat(),
                ),
                // Re-enabled: held deliveries are due now, the first chunk at once and the rest as
                // the dispatcher runs short (`release_held`). Disabled: pending ones wait.
                Stmt::new(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                     WHERE seq IN (SELECT seq FROM deliveries WHERE webhook_id = $2 AND state = 'held' \
                                   ORDER BY seq LIMIT $4) \
                       AND CAST($3 AS BIGINT) = 1",
                    params![w.updated_at, w.id, act, HELD_RELEASE_CHUNK],
                ),
                Stmt::new(
                    "UPDATE deliveries SET state = 'held', updated_at = $1 \
                     WHERE webhook_id = $2 AND state IN ('pending', 'leased') AND state = 'pending' \
                       AND CAST($3 AS BIGINT) = 0",
                    params![w.updated_at, w.id, act],
                ),
                audit_stmt(&audit),
            ])
            .await;
        self.webhooks_changed();
        let r = r?;
        Ok(r[0].affected == 1)
    }

    /// Sets a webhook's endpoint verification state.
    pub async fn set_verification(&self, tenant: &TenantId, id: Uuid, v: Verification) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![Stmt::new(
                "UPDATE webhooks SET verification = $1 WHERE tenant_id = $2 AND id = $3",
                params![v.as_str(), tenant.as_str(), id],
            )])
            .await;
        self.webhooks_changed();
        Ok(r?[0].affected == 1)
    }

    pub async fn update_secrets(
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
                     secret_rotated_at = $4, updated_at = $5, public_key = $8 WHERE tenant_id = $6 AND id = $7",
                    params![
                        s.current.clone(),
                        s.previous.clone(),
                        s.previous_expires_at,
                        s.rotated_at,
                        now_ms(),
                        tenant.as_str(),
                        id,
                        s.public_key.clone()
                    ],
                ),
                audit_stmt(&audit),
            ])
            .await;
        self.webhooks_changed();
        let r = r?;
        Ok(r[0].affected == 1)
    }

    pub async fn delete_webhook(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2", params![tenant.as_str(), id]),
                // The tenant too: a webhook id given by another tenant must delete nothing.
                Stmt::new(
                    "DELETE FROM deliveries WHERE tenant_id = $1 AND webhook_id = $2",
                    params![tenant.as_str(), id],
                ),
                // Its attempts stay, links of the tenant's chain, until retention prunes them.
                audit_stmt(&audit),
            ])
            .await;
        self.webhooks_changed();
        let r = r?;
        Ok(r[0].affected == 1)
    }

    /// The active webhooks, each with whether it has a delivery due at `now`: one statement for
    /// all of them (an index probe each), so that the engine need not ask webhook by webhook.
    pub async fn active_webhooks_due(&self, now: i64) -> Result<Vec<(Uuid, bool)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT w.id, CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id \
                   AND d.state IN ('pending', 'leased') AND d.state = 'pending' AND d.next_attempt_at <= $1) \
                   THEN 1 ELSE 0 END AS due \
                 FROM webhooks w WHERE w.is_active = 1",
                params![now],
            )
            .await?;
        rows.iter().map(|r| Ok((r.uuid("id")?, r.int("due")? == 1))).collect()
    }

    pub async fn tenant_webhooks(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        self.webhooks
            .get_or_load(tenant.clone(), async {
                let rows = self.db.query(webhook_select!("WHERE tenant_id = $1"), params![tenant.as_str()]).await?;
                rows.iter().map(|r| self.webhook_from_row(r)).collect()
            })
            .await
    }

    pub async fn webhook_by_id(&self, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        self.webhooks_by_id
            .get_or_load(id, async {
                let rows = self.db.query(webhook_select!("WHERE id = $1"), params![id]).await?;
                rows.first().map(|r| self.webhook_from_row(r)).transpose()
            })
            .await
    }
}

impl Store {
    fn webhook_from_row(&self, r: &Row) -> Result<Webhook, StoreError> {
        webhook_from_row(r, self.sealer.get())
    }

    /// The webhook's configuration columns, with its header values sealed.
    fn configuration(&self, w: &Webhook) -> Vec<super::sql::Value> {
        configuration(w, self.sealer.get())
    }
}

/// What marks a sealed header value in the `headers` column: `sealed:<base64>`.
const SEALED: &str = "sealed:";

/// The custom headers as stored: values sealed when a sealer is set, each bound to its webhook
/// and header name.
fn headers_json(w: &Webhook, sealer: Option<&Cipher>) -> String {
    use base64::Engine as _;
    let stored: std::collections::BTreeMap<&String, String> = w
        .headers
        .iter()
        .map(|(name, value)| {
            let value = match sealer {
                Some(c) => {
                    let sealed = c.seal(value.as_bytes(), &header_context(w.id, name));
                    format!("{SEALED}{}", base64::engine::general_purpose::STANDARD.encode(sealed))
                }
                None => value.clone(),
            };
            (name, value)
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "{}".into())
}

/// Reads the stored custom headers back, opening sealed values.
fn headers_from(
    raw: std::collections::BTreeMap<String, String>,
    id: Uuid,
    sealer: Option<&Cipher>,
) -> Result<CustomHeaders, StoreError> {
    use base64::Engine as _;
    let mut open = std::collections::BTreeMap::new();
    for (name, value) in raw {
        let plain = match value.strip_prefix(SEALED) {
            Some(b64) => {
                let cipher = sealer.ok_or_else(|| corrupt("headers", "a sealed header value and no key to open it"))?;
                let sealed =
                    base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| corrupt("headers", e))?;
                let bytes = cipher.open(&sealed, &header_context(id, &name)).map_err(|e| corrupt("headers", e))?;
                String::from_utf8(bytes).map_err(|e| corrupt("headers", e))?
            }
            None => value,
        };
        open.insert(name, plain);
    }
    Ok(CustomHeaders::from_stored(open))
}

/// What a sealed header value is bound to: its webhook and its name.
fn header_context(id: Uuid, name: &str) -> Vec<u8> {
    [id.as_bytes().as_slice(), b"/headers/", name.as_bytes()].concat()
}

fn webhook_from_row(r: &Row, sealer: Option<&Cipher>) -> Result<Webhook, StoreError> {
    let patterns: Vec<String> = r.json("event_types")?;
    let delays: Option<Vec<u64>> = match r.opt_text("retry_delays_ms")? {
        Some(t) => Some(serde_json::from_str(&t).map_err(|e| corrupt("retry_delays_ms", e))?),
        None => None,
    };
    Ok(Webhook {
        id: r.uuid("id")?,
        tenant_id: TenantId::parse(&r.text("tenant_id")?).map_err(|e| corrupt("tenant", e))?,
        name: r.text("name")?,
        url: WebhookUrl::parse(&r.text("url")?, "url").map_err(|e| corrupt("url", e))?,
        description: r.opt_text("description")?,
        event_types: patterns.iter().map(|p| EventTypePattern::from_stored(p)).collect(),
        format: crate::destinations::parse_format(&r.text("format")?, "format").map_err(|e| corrupt("format", e))?,
        retry_count: r.int("retry_count")? as u32,
        timeout_ms: r.int("timeout_ms")? as u32,
        retry_delays_ms: delays,
        headers: headers_from(r.json("headers")?, r.uuid("id")?, sealer)?,
        is_active: r.int("is_active")? != 0,
        failure_count: r.int("failure_count")? as u32,
        disabled_reason: r.opt_text("disabled_reason")?,
        circuit_open_until: r.opt_int("circuit_open_until")?,
        circuit_opens: r.int("circuit_opens")? as u32,
        failing_since: r.opt_int("failing_since")?,
        max_per_second: r.opt_int("max_per_second")?.map(|v| v as u32),
        owner_email: r.opt_text("owner_email")?,
        min_severity: r
            .opt_text("min_severity")?
            .map(|s| Severity::parse(&s, "min_severity"))
            .transpose()
            .map_err(|e| corrupt("min_severity", e))?,
        verification: Verification::from_stored(&r.text("verification")?),
        filter: r
            .opt_text("filter")?
            .map(|s| EventFilter::parse(&s, "filter"))
            .transpose()
            .map_err(|e| corrupt("filter", e))?,
        signing_algorithm: SigningAlgorithm::parse(&r.text("signing_algorithm")?, "signing_algorithm")
            .map_err(|e| corrupt("signing_algorithm", e))?,
        secret: SealedSecrets {
            current: r.bytes("secret")?,
            previous: r.opt_bytes("previous_secret")?,
            previous_expires_at: r.opt_int("previous_expires_at")?,
            rotated_at: r.int("secret_rotated_at")?,
            public_key: r.opt_text("public_key")?,
        },
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// A webhook's configuration, in the order its INSERT and its UPDATE both list the columns:
/// name, url, description, event_types, format, retry_count, timeout_ms, retry_delays_ms, headers.
fn configuration(w: &Webhook, sealer: Option<&Cipher>) -> Vec<super::sql::Value> {
    params![
        &w.name,
        w.url.as_str(),
        w.description.clone(),
        patterns_json(w),
        w.format.as_str(),
        w.retry_count,
        w.timeout_ms,
        delays_json(w),
        headers_json(w, sealer),
        w.min_severity.map(Severity::name),
        w.filter.as_ref().map(|f| f.source().to_string()),
    ]
}

fn patterns_json(w: &Webhook) -> String {
    serde_json::Value::from(w.event_types.iter().map(EventTypePattern::as_string).collect::<Vec<_>>()).to_string()
}

fn delays_json(w: &Webhook) -> Option<String> {
    w.retry_delays_ms.as_ref().map(|d| serde_json::to_string(d).unwrap_or_else(|_| "[]".into()))
}
