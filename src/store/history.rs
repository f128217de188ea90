//! The delivery log: attempts, per-webhook statistics, retention, and the audit log.

use uuid::Uuid;

use super::sql::Row;
use super::sql_store::{corrupt, count};
use super::{AttemptRecord, AuditEntry, AuditRecord, Store, StoreError, WebhookStats};
use crate::domain::page::Page;
use crate::domain::tenant::TenantId;
use crate::params;

macro_rules! attempt_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, attempt_no, success, http_status, \
             error, response_ms, request_headers, dispatched_at, response_body, next_attempt_at, created_at, format, \
             response_headers FROM attempts ",
            $rest
        )
    };
}

impl Store {
    pub async fn list_attempts(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        page: Page,
        success: Option<bool>,
    ) -> Result<(Vec<AttemptRecord>, u64), StoreError> {
        // -1 matches both outcomes.
        let filter = success.map_or(-1, i64::from);
        let rows = self
            .db
            .query(
                attempt_select!(
                    "WHERE tenant_id = $1 AND webhook_id = $2 AND (CAST($3 AS BIGINT) = -1 OR success = $3) \
                     ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
                ),
                params![tenant.as_str(), webhook, filter, page.limit(), page.offset()],
            )
            .await?;
        let total = self
            .db
            .query(
                "SELECT COUNT(*) AS n FROM attempts WHERE tenant_id = $1 AND webhook_id = $2 \
                 AND (CAST($3 AS BIGINT) = -1 OR success = $3)",
                params![tenant.as_str(), webhook, filter],
            )
            .await?;
        Ok((rows.iter().map(attempt_from_row).collect::<Result<_, _>>()?, count(&total)?))
    }

    pub async fn recent_attempts(&self, tenant: &TenantId, limit: u32) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = self
            .db
            .query(
                attempt_select!("WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"),
                params![tenant.as_str(), limit as i64],
            )
            .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    pub async fn get_attempt(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        id: Uuid,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let rows = self
            .db
            .query(
                attempt_select!("WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3"),
                params![tenant.as_str(), webhook, id],
            )
            .await?;
        rows.first().map(attempt_from_row).transpose()
    }

    pub async fn webhook_stats(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        since: i64,
    ) -> Result<WebhookStats, StoreError> {
        let p = params![tenant.as_str(), webhook, since];
        let rows = self
            .db
            .query(
                "SELECT COUNT(*) AS attempts, CAST(COALESCE(SUM(success), 0) AS BIGINT) AS successes, \
                 MAX(CASE WHEN success = 1 THEN created_at END) AS last_success_at, \
                 MAX(CASE WHEN success = 0 THEN created_at END) AS last_failure_at \
                 FROM attempts WHERE tenant_id = $1 AND webhook_id = $2 AND created_at >= $3",
                p.clone(),
            )
            .await?;
        let row = rows.first().ok_or_else(|| corrupt("stats", "no row"))?;
        let attempts = row.int("attempts")? as u64;
        let successes = row.int("successes")? as u64;
        let percentile = |q: f64| {
            let offset = ((attempts as f64 - 1.0) * q).round().max(0.0) as i64;
            let mut params = p.clone();
            params.push(offset.into());
            params
        };
        let mut p50 = None;
        let mut p95 = None;
        if attempts > 0 {
            const SQL: &str = "SELECT response_ms FROM attempts WHERE tenant_id = $1 AND webhook_id = $2 \
                               AND created_at >= $3 ORDER BY response_ms LIMIT 1 OFFSET $4";
            p50 = self.db.query(SQL, percentile(0.5)).await?.first().map(|r| r.int("response_ms")).transpose()?;
            p95 = self.db.query(SQL, percentile(0.95)).await?.first().map(|r| r.int("response_ms")).transpose()?;
        }
        Ok(WebhookStats {
            attempts,
            successes,
            failures: attempts - successes,
            p50_ms: p50,
            p95_ms: p95,
            last_success_at: row.opt_int("last_success_at")?,
            last_failure_at: row.opt_int("last_failure_at")?,
        })
    }

    pub async fn attempt_histogram(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, u64, u64, i64)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT CAST(created_at / $4 AS BIGINT) AS bucket, COUNT(*) AS attempts, \
                 CAST(COALESCE(SUM(success), 0) AS BIGINT) AS successes, \
                 CAST(COALESCE(AVG(response_ms), 0) AS BIGINT) AS mean_ms FROM attempts \
                 WHERE tenant_id = $1 AND webhook_id = $2 AND created_at >= $3 \
                 GROUP BY CAST(created_at / $4 AS BIGINT) ORDER BY 1",
                params![tenant.as_str(), webhook, since, bucket_ms],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.int("bucket")? * bucket_ms,
                    r.int("attempts")? as u64,
                    r.int("successes")? as u64,
                    r.int("mean_ms")?,
                ))
            })
            .collect()
    }

    pub async fn list_audit(&self, tenant: &TenantId, page: Page) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let rows = self
            .db
            .query(
                "SELECT id, tenant_id, actor, action, target, details, at FROM audit_log WHERE tenant_id = $1 \
                 ORDER BY id DESC LIMIT $2 OFFSET $3",
                params![tenant.as_str(), page.limit(), page.offset()],
            )
            .await?;
        let total =
            self.db.query("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = $1", params![tenant.as_str()]).await?;
        let records = rows
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.int("id")?,
                    entry: AuditEntry {
                        tenant_id: TenantId::parse(&r.text("tenant_id")?).map_err(|e| corrupt("tenant", e))?,
                        actor: r.text("actor")?,
                        action: r.text("action")?,
                        target: r.text("target")?,
                        details: r.json("details")?,
                        at: r.int("at")?,
                    },
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((records, count(&total)?))
    }
}

fn attempt_from_row(r: &Row) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        id: r.uuid("id")?,
        delivery_seq: r.int("delivery_seq")?,
        tenant_id: r.text("tenant_id")?,
        webhook_id: r.uuid("webhook_id")?,
        event_ref: r.text("event_ref")?,
        event_type: r.text("event_type")?,
        attempt_no: r.int("attempt_no")? as u32,
        success: r.int("success")? != 0,
        http_status: r.opt_int("http_status")?.map(|s| s as u16),
        error: r.opt_text("error")?,
        response_ms: r.int("response_ms")?,
        request_headers: r.text("request_headers")?,
        dispatched_at: r.int("dispatched_at")?,
        response_body: r.opt_bytes("response_body")?.unwrap_or_default(),
        response_headers: r.opt_text("response_headers")?.unwrap_or_default(),
        next_attempt_at: r.opt_int("next_attempt_at")?,
        created_at: r.int("created_at")?,
        format: crate::destinations::parse_format(&r.text("format")?, "format").map_err(|e| corrupt("format", e))?,
    })
}

impl Store {
    /// What `/metrics` reads of the stored state: deliveries waiting (pending and held), and
    /// whether each active webhook's circuit is open at `now`.
    pub async fn metrics_snapshot(&self, now: i64) -> Result<crate::metrics::Snapshot, StoreError> {
        let mut snapshot = crate::metrics::Snapshot::default();
        let waiting = self
            .db
            .query(
                "SELECT state, COUNT(*) AS n FROM deliveries WHERE state IN ('pending', 'held') GROUP BY state",
                vec![],
            )
            .await?;
        for row in &waiting {
            match row.text("state")?.as_str() {
                "pending" => snapshot.pending = row.int("n")?,
                _ => snapshot.held = row.int("n")?,
            }
        }
        let circuits =
            self.db.query("SELECT tenant_id, id, circuit_open_until FROM webhooks WHERE is_active = 1", vec![]).await?;
        for row in &circuits {
            let open = row.opt_int("circuit_open_until")?.is_some_and(|until| until > now);
            snapshot.circuits.push((row.text("tenant_id")?, row.text("id")?, open));
        }
        Ok(snapshot)
    }
}
