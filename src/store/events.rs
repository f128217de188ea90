//! Events: the atomic publish of events with their deliveries, reading an event's state, and
//! redelivery. Each backend has its own publish path (`sqlite/publish.rs`,
//! `postgres/batch.rs`): the statements that make a batch cheap differ between them. (SQLite's
//! writer commits concurrent publishes together already; PostgreSQL combines small ones too.)

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::backend::{Backend, Dialect};
use super::sql::{Row, Stmt};
use super::sql_store::{audit_stmt, corrupt};
use super::{AuditEntry, DeliveryState, EventRecord, NewEvent, Published, Store, StoreError, Target};
use crate::domain::event_ref::is_event_ref;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::params;

impl Store {
    pub async fn publish(&self, events: Vec<(NewEvent, Vec<Target>)>) -> Result<Vec<Published>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.db.dialect() == Dialect::Postgres {
            return self.publish_pg(events).await;
        }
        self.publish_sqlite(events).await
    }

    pub async fn redeliver(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        event_ref: &str,
        audit: AuditEntry,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        // Whether there is something to redeliver is asked first: the audit entry, a link of a
        // chain, is written only with a delivery (a conditional insert could not be linked).
        let found = self
            .db
            .query(
                "SELECT 1 AS found FROM events e JOIN webhooks w ON w.tenant_id = e.tenant_id \
                 WHERE e.tenant_id = $1 AND e.event_ref = $2 AND w.id = $3",
                params![tenant.as_str(), event_ref, webhook],
            )
            .await?;
        if found.is_empty() {
            return Ok(None);
        }
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO deliveries (tenant_id, event_id, webhook_id, state, attempts, next_attempt_at, \
                     created_at, updated_at) \
                     SELECT e.tenant_id, e.id, w.id, CASE WHEN w.is_active = 1 THEN 'pending' ELSE 'held' END, 0, \
                     CAST($1 AS BIGINT), CAST($1 AS BIGINT), CAST($1 AS BIGINT) FROM events e JOIN webhooks w ON w.tenant_id = e.tenant_id \
                     WHERE e.tenant_id = $2 AND e.event_ref = $3 AND w.id = $4",
                    params![now, tenant.as_str(), event_ref, webhook],
                ),
                Stmt::new(
                    "SELECT MAX(d.seq) AS seq FROM deliveries d JOIN events e ON e.id = d.event_id \
                     WHERE e.tenant_id = $1 AND e.event_ref = $2 AND d.webhook_id = $3",
                    params![tenant.as_str(), event_ref, webhook],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        if r[0].affected == 0 {
            return Ok(None);
        }
        r[1].rows.first().map(|row| row.opt_int("seq")).transpose().map(Option::flatten)
    }

    /// The tenant's latest events (event_ref, type, data), newest first: what a filter is tried on.
    pub async fn recent_events(
        &self,
        tenant: &TenantId,
        limit: i64,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT event_ref, event_type, data FROM events WHERE tenant_id = $1 \
                 ORDER BY created_at DESC LIMIT $2",
                params![tenant.as_str(), limit],
            )
            .await?;
        rows.iter().map(|r| Ok((r.text("event_ref")?, r.text("event_type")?, r.bytes("data")?))).collect()
    }

    pub async fn get_event(&self, tenant: &TenantId, event_ref: &str) -> Result<Option<EventRecord>, StoreError> {
        // Nothing can be stored under what cannot be an event_ref (nor can PostgreSQL read a NUL).
        if !is_event_ref(event_ref) {
            return Ok(None);
        }
        let rows = self
            .db
            .query(
                "SELECT id, event_ref, event_type, ordering_key, data, created_at, filtered FROM events \
                 WHERE tenant_id = $1 AND event_ref = $2",
                params![tenant.as_str(), event_ref],
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let id = row.uuid("id")?;
        let deliveries = self
            .db
            .query(
                "SELECT seq, webhook_id, state, attempts, next_attempt_at, last_status, last_error, updated_at \
                 FROM deliveries WHERE event_id = $1 ORDER BY seq",
                params![id],
            )
            .await?
            .iter()
            .map(|d| {
                Ok(DeliveryState {
                    seq: d.int("seq")?,
                    webhook_id: d.uuid("webhook_id")?,
                    state: d.text("state")?,
                    attempts: d.int("attempts")? as u32,
                    next_attempt_at: d.int("next_attempt_at")?,
                    last_status: d.opt_int("last_status")?.map(|s| s as u16),
                    last_error: d.opt_text("last_error")?,
                    updated_at: d.int("updated_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(EventRecord {
            id,
            event_ref: row.text("event_ref")?,
            event_type: row.text("event_type")?,
            ordering_key: row.opt_text("ordering_key")?,
            data: row.bytes("data")?,
            created_at: row.int("created_at")?,
            deliveries,
            filtered: match row.opt_text("filtered")? {
                Some(t) => serde_json::from_str(&t).map_err(|e| corrupt("filtered", e))?,
                None => Vec::new(),
            },
        }))
    }
}

/// The events first published under the event_refs of `repeats` (events whose insert found their
/// event_ref taken), by (tenant, event_ref): one read per tenant, by the unique index (a client
/// retrying a whole batch repeats every event). Read after the publish's commit, which waited for
/// any write that held the event_ref.
pub(super) async fn originals<'a>(
    db: &dyn Backend,
    repeats: impl Iterator<Item = &'a NewEvent>,
) -> Result<HashMap<(String, String), Row>, StoreError> {
    let mut by_tenant: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in repeats {
        by_tenant.entry(e.tenant_id.as_str()).or_default().push(e.event_ref.as_str());
    }
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT id, event_ref, delivery_count FROM events WHERE tenant_id = $1 \
             AND event_ref IN (SELECT value FROM json_each($2))"
        }
        Dialect::Postgres => {
            "SELECT id, event_ref, delivery_count FROM events WHERE tenant_id = $1 \
             AND event_ref = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST($2 AS TEXT)::jsonb)))"
        }
    };
    let mut originals = HashMap::new();
    for (tenant, refs) in by_tenant {
        let refs = serde_json::to_string(&refs).map_err(|e| corrupt("publish", e))?;
        for row in db.query(sql, params![tenant, refs]).await? {
            originals.insert((tenant.to_string(), row.text("event_ref")?), row);
        }
    }
    Ok(originals)
}

/// What a publish answers for event `e`: its own event when it was inserted (with the deliveries
/// leased to the publisher, taken from `leased`), else the event first published under its
/// event_ref (from [`originals`]).
pub(super) fn answer(
    e: &NewEvent,
    targets: &[Target],
    inserted: &HashSet<Uuid>,
    leased: &mut HashMap<Uuid, Vec<(Uuid, i64)>>,
    originals: &HashMap<(String, String), Row>,
) -> Result<Published, StoreError> {
    if inserted.contains(&e.id) {
        return Ok(Published {
            event_id: e.id,
            event_ref: e.event_ref.clone(),
            deliveries: targets.len() as u64,
            duplicate: false,
            leased: leased.remove(&e.id).unwrap_or_default(),
        });
    }
    let key = (e.tenant_id.as_str().to_string(), e.event_ref.clone());
    let row =
        originals.get(&key).ok_or_else(|| corrupt("publish", "the first event of a repeated event_ref is missing"))?;
    Ok(Published {
        event_id: row.uuid("id")?,
        event_ref: row.text("event_ref")?,
        deliveries: row.int("delivery_count")? as u64,
        duplicate: true,
        leased: Vec::new(),
    })
}

/// The webhooks whose filter left event `e` out, as stored (`NULL` when none: nearly always).
pub(super) fn filtered_json(e: &NewEvent) -> Option<String> {
    (!e.filtered.is_empty())
        .then(|| serde_json::Value::from(e.filtered.iter().map(Uuid::to_string).collect::<Vec<_>>()).to_string())
}

/// A batch's deliveries in the order they are stored: webhook by webhook, each webhook's in publish
/// order (its seqs follow the publish order, which ordering keys rely on). In event order, a
/// fan-out to ten webhooks put ten webhooks' rows on every page of the deliveries table, so each
/// claim and each completion of one webhook rewrote a page of its own (4 KiB of WAL for a row of
/// 150 bytes); grouped, a claim's rows and the completions committed together share pages.
pub(super) fn deliveries_by_webhook(events: &[(NewEvent, Vec<Target>)]) -> Vec<(&NewEvent, &Target)> {
    let mut all: Vec<(&NewEvent, &Target)> =
        events.iter().flat_map(|(e, targets)| targets.iter().map(move |t| (e, t))).collect();
    all.sort_by_key(|(_, t)| t.webhook_id);
    all
}
