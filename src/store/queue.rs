//! The delivery queue: claiming due deliveries under a lease, recording attempts (with their
//! effect on the webhook's breaker), and giving leases back.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::backend::{Dialect, Durability};
use super::chain::Chain;
use super::event_cache::EventBody;
use super::sql::{self, Stmt, Value};
use super::sql_store::{audit_stmt, corrupt, HELD_RELEASE_CHUNK};
use super::{AttemptRecord, AuditEntry, ClaimedDelivery, Completion, HealthChange, NextStep, Store, StoreError};
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::webhook::disabled_reason;
use crate::params;

impl Store {
    pub async fn claim(
        &self,
        webhook: Uuid,
        claimer: &str,
        limit: u32,
        lease_until: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        // A delivery with an ordering key waits while an earlier one of the same key and webhook is
        // unfinished; other keys are not held up.
        // `state IN ('pending', 'leased')` repeats the partial index's condition so that SQLite
        // uses the index (it does not infer it from `state = 'pending'`).
        macro_rules! claim_sql {
            ($lock:literal) => {
                concat!(
                    "UPDATE deliveries SET state = 'leased', lease_until = $1, leased_by = $2, updated_at = $3 \
                     WHERE seq IN (SELECT d.seq FROM deliveries d \
                       WHERE d.webhook_id = $4 AND d.state IN ('pending', 'leased') AND d.state = 'pending' \
                         AND d.next_attempt_at <= $3 \
                         AND (d.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries p \
                              WHERE p.webhook_id = d.webhook_id AND p.ordering_key = d.ordering_key \
                                AND p.seq < d.seq AND p.state IN ('pending', 'leased', 'held'))) \
                       ORDER BY d.next_attempt_at, d.seq LIMIT $5 ",
                    $lock,
                    ") RETURNING seq, attempts, tenant_id, event_id, ordering_key"
                )
            };
        }
        // The events are read afterwards, outside the write: the single SQLite writer only
        // moves the deliveries, and readers fetch the payloads concurrently.
        let (claim, events_sql) = match self.db.dialect() {
            Dialect::Sqlite => (
                claim_sql!(""),
                "SELECT id, event_ref, event_type, data, created_at, delivery_count FROM events \
                 WHERE id IN (SELECT value FROM json_each($1))",
            ),
            Dialect::Postgres => (
                claim_sql!("FOR UPDATE OF d SKIP LOCKED"),
                "SELECT id, event_ref, event_type, data, created_at, delivery_count FROM events \
                 WHERE id = ANY(string_to_array($1, ','))",
            ),
        };
        let now = now_ms();
        let claim = Stmt::new(claim, params![lease_until, claimer, now, webhook, limit as i64]);
        let r = self.db.write_with(vec![claim], Durability::Deferred).await?;
        let leased = &r[0].rows;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        // Each event once, from the copies other webhooks' claims left, else from the store.
        let mut events: HashMap<String, Option<Arc<EventBody>>> = HashMap::with_capacity(leased.len());
        for row in leased {
            if let std::collections::hash_map::Entry::Vacant(slot) = events.entry(row.text("event_id")?) {
                let kept = self.claimed_events.as_ref().and_then(|c| c.take(slot.key()));
                slot.insert(kept);
            }
        }
        let missing: Vec<&str> = events.iter().filter(|(_, e)| e.is_none()).map(|(id, _)| id.as_str()).collect();
        if !missing.is_empty() {
            let list = match self.db.dialect() {
                Dialect::Sqlite => serde_json::to_string(&missing).map_err(|e| corrupt("claim", e))?,
                Dialect::Postgres => missing.join(","),
            };
            for row in self.db.query_by_key(events_sql, params![list]).await? {
                let id = row.text("id")?;
                let event = Arc::new(EventBody {
                    event_ref: row.text("event_ref")?,
                    event_type: row.text("event_type")?,
                    data: row.bytes("data")?.into(),
                    created_at: row.int("created_at")?,
                });
                // This claim is one of its deliveries; the others are other webhooks' claims.
                let others = (row.int("delivery_count")? as u32).saturating_sub(1);
                if let Some(cache) = &self.claimed_events {
                    cache.keep(id.clone(), event.clone(), others);
                }
                events.insert(id, Some(event));
            }
        }
        let mut claimed = Vec::with_capacity(leased.len());
        for row in leased {
            // Several deliveries may share an event (redeliveries): look it up, don't take it.
            // Events outlive their unfinished deliveries (pruning keeps them); one can only vanish
            // here with its webhook, deleted since the claim, deliveries and all.
            let event_id = row.text("event_id")?;
            let Some(Some(e)) = events.get(&event_id) else {
                tracing::warn!(event_id, "claimed a delivery whose event is gone; skipping it");
                continue;
            };
            claimed.push(ClaimedDelivery {
                seq: row.int("seq")?,
                attempts: row.int("attempts")? as u32,
                tenant_id: row.text("tenant_id")?,
                webhook_id: webhook,
                event_id: row.uuid("event_id")?,
                event_ref: e.event_ref.clone(),
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                created_at: e.created_at,
                ordered: !matches!(row.value("ordering_key")?, Value::Null),
            });
        }
        claimed.sort_by_key(|d| d.seq);
        Ok(claimed)
    }

    /// Records an attempt and moves its delivery, with the attempt's effect on the webhook's
    /// circuit breaker, in one transaction.
    pub async fn complete(&self, c: &Completion) -> Result<HealthChange, StoreError> {
        let a = &c.attempt;
        if self.db.dialect() == Dialect::Postgres && c.may_wait_for_company() {
            return self.complete_batched(c).await;
        }
        let now = a.created_at;
        let mut row = attempt_row(a);
        row.extend(params![None::<i64>, None::<String>, None::<String>]);
        let mut stmts = vec![Stmt::chained_row(
            "INSERT INTO attempts (id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, attempt_no, success, \
             http_status, error, response_ms, request_headers, dispatched_at, response_body, next_attempt_at, \
             created_at, format, response_headers, chain_seq, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            row,
            Chain::Attempts,
            [18, 19, 20],
        )];
        let mut disable_at = None;
        let mut open_at = None;
        let counted_failure = c.counts_for_breaker && !a.success;
        if c.counts_for_breaker && a.success && !c.counter_was_zero {
            // A success closes the circuit and ends the failing.
            stmts.push(Stmt::new(
                "UPDATE webhooks SET failure_count = 0, failing_since = NULL, circuit_open_until = NULL, \
                 circuit_opens = 0 WHERE id = $1 \
                 AND (failure_count <> 0 OR circuit_open_until IS NOT NULL OR failing_since IS NOT NULL)",
                params![a.webhook_id],
            ));
        }
        if counted_failure {
            // Attempts sent before the circuit's last cool-down ended (a burst in flight when it
            // opened) are one observation, already counted: only later ones count.
            stmts.push(Stmt::new(
                "UPDATE webhooks SET failure_count = failure_count + 1, failing_since = COALESCE(failing_since, $2) \
                 WHERE id = $1 AND (circuit_open_until IS NULL OR circuit_open_until <= $3)",
                params![a.webhook_id, now, a.dispatched_at],
            ));
            open_at = Some(stmts.len());
            stmts.push(Stmt::new(
                "UPDATE webhooks SET circuit_open_until = $2, circuit_opens = circuit_opens + 1 \
                 WHERE id = $1 AND is_active = 1 AND failure_count >= $3 \
                 AND (circuit_open_until IS NULL OR circuit_open_until <= $4) \
                 RETURNING circuit_open_until, circuit_opens",
                params![a.webhook_id, now.saturating_add(c.breaker.cooldown_ms), c.breaker.threshold, a.dispatched_at],
            ));
        }
        if c.gone {
            disable_at = Some(stmts.len());
            stmts.push(Stmt::new(
                "UPDATE webhooks SET is_active = 0, disabled_reason = $1, updated_at = $2 WHERE id = $3 AND is_active = 1",
                params![disabled_reason::GONE, now, a.webhook_id],
            ));
        } else if counted_failure {
            disable_at = Some(stmts.len());
            stmts.push(Stmt::new(
                "UPDATE webhooks SET is_active = 0, disabled_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND is_active = 1 AND failing_since IS NOT NULL AND failing_since <= $4",
                params![disabled_reason::FAILURES, now, a.webhook_id, now.saturating_sub(c.breaker.disable_after_ms)],
            ));
        }
        // Whatever follows the record so far updates the webhook: its copies go stale.
        let webhook_changed = stmts.len() > 1;
        let (state_sql, next_at): (&'static str, i64) = match c.next {
            NextStep::Succeeded => (
                "UPDATE deliveries SET state = 'succeeded', attempts = attempts + 1, next_attempt_at = $1, \
                 lease_until = NULL, leased_by = NULL, last_status = $2, last_error = $3, updated_at = $4 \
                 WHERE seq = $5 AND leased_by = $6",
                now,
            ),
            NextStep::Failed => (
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, next_attempt_at = $1, \
                 lease_until = NULL, leased_by = NULL, last_status = $2, last_error = $3, updated_at = $4 \
                 WHERE seq = $5 AND leased_by = $6",
                now,
            ),
            NextStep::Retry(at) => (
                "UPDATE deliveries SET state = CASE WHEN (SELECT w.is_active FROM webhooks w \
                 WHERE w.id = deliveries.webhook_id) = 1 THEN 'pending' ELSE 'held' END, attempts = attempts + 1, \
                 next_attempt_at = $1, lease_until = NULL, leased_by = NULL, last_status = $2, last_error = $3, \
                 updated_at = $4 WHERE seq = $5 AND leased_by = $6",
                at,
            ),
        };
        stmts.push(Stmt::new(
            state_sql,
            params![next_at, a.http_status.map(|s| s as i64), a.error.clone(), now, a.delivery_seq, &c.claimer],
        ));
        // A lost attempt record means the delivery is attempted again: not synced, unless the
        // webhook may be disabled by it (that is announced to people at once). The next delivery
        // of an ordering key waits for its predecessor's record: that one is not held back.
        let durability = if disable_at.is_some() {
            Durability::Synced
        } else if c.ordered && !webhook_changed {
            // Not ahead of records queued before it that move the webhook's breaker either:
            // SQLite's writer commits deferred writes first, and the breaker counts in order.
            Durability::Deferred
        } else {
            Durability::Background
        };
        let r = self.db.write_with(stmts, durability).await;
        if webhook_changed {
            self.webhooks_changed();
        }
        let r = r?;
        let disabled = disable_at.is_some_and(|i| r[i].affected == 1);
        let opened = match open_at.and_then(|i| r[i].rows.first()) {
            Some(row) => Some((row.int("circuit_open_until")?, row.int("circuit_opens")? as u32)),
            None => None,
        };
        if disabled {
            // Only now, not with every failure: holding scans the webhook's pending deliveries.
            // Should this write be lost or fail, the deliveries stay pending on an inactive
            // webhook, which is not claimed until re-enabled: the same outcome. So its failure is
            // only logged: the record above is committed, and the disabling must still be told.
            let held = self
                .db
                .write(vec![Stmt::new(
                    "UPDATE deliveries SET state = 'held', updated_at = $1 WHERE webhook_id = $2 \
                     AND state IN ('pending', 'leased') AND state = 'pending' \
                     AND (SELECT w.is_active FROM webhooks w WHERE w.id = $2) = 0",
                    params![now, a.webhook_id],
                )])
                .await;
            if let Err(e) = held {
                tracing::warn!(webhook = %a.webhook_id, error = %e, "cannot hold a disabled webhook's deliveries");
            }
        }
        Ok(HealthChange { opened, disabled })
    }

    /// Makes up to `limit` of the webhook's failed deliveries (retries exhausted) pending again,
    /// oldest first, each for one more attempt; audited. Returns how many.
    pub async fn retry_failed(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        limit: i64,
        now: i64,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                     WHERE seq IN (SELECT seq FROM deliveries WHERE tenant_id = $2 AND webhook_id = $3 \
                                   AND state = 'failed' ORDER BY seq LIMIT $4)",
                    params![now, tenant.as_str(), webhook, limit],
                ),
                audit_stmt(&audit),
            ])
            .await?;
        Ok(r[0].affected)
    }

    pub async fn release_held(&self, webhook: Uuid, now: i64) -> Result<u64, StoreError> {
        let r = self
            .db
            .write_with(
                vec![Stmt::new(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                     WHERE seq IN (SELECT seq FROM deliveries WHERE webhook_id = $2 AND state = 'held' \
                                   ORDER BY seq LIMIT $3) \
                       AND (SELECT w.is_active FROM webhooks w WHERE w.id = $2) = 1",
                    params![now, webhook, HELD_RELEASE_CHUNK],
                )],
                Durability::Deferred,
            )
            .await?;
        Ok(r[0].affected)
    }

    pub async fn expire_leases(&self, now: i64) -> Result<u64, StoreError> {
        let r = self
            .db
            .write_with(
                vec![Stmt::new(
                    "UPDATE deliveries SET state = 'pending', lease_until = NULL, leased_by = NULL \
                     WHERE webhook_id IN (SELECT id FROM webhooks) AND state IN ('pending', 'leased') \
                       AND state = 'leased' AND lease_until < $1",
                    params![now],
                )],
                Durability::Deferred,
            )
            .await?;
        Ok(r[0].affected)
    }

    /// Records that server `id` (the first part of its lease ids, `<id>:<n>`) is alive at `now`,
    /// and makes the leases of servers not seen since `stale_before` pending again: a server
    /// that died is taken over within seconds. Servers long gone are forgotten.
    pub async fn heartbeat(&self, id: &str, now: i64, stale_before: i64) -> Result<u64, StoreError> {
        let r = self
            .db
            .write_with(
                vec![
                    Stmt::new(
                        "INSERT INTO servers (id, seen_at) VALUES ($1, $2) \
                         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                        params![id, now],
                    ),
                    Stmt::new(
                        // The first EXISTS, on no column of deliveries, is checked once: with no
                        // stale server (nearly always) the deliveries are not looked at.
                        "UPDATE deliveries SET state = 'pending', lease_until = NULL, leased_by = NULL \
                         WHERE EXISTS (SELECT 1 FROM servers WHERE seen_at < $1) \
                           AND state IN ('pending', 'leased') AND state = 'leased' \
                           AND EXISTS (SELECT 1 FROM servers s WHERE s.seen_at < $1 \
                                       AND deliveries.leased_by LIKE s.id || ':%')",
                        params![stale_before],
                    ),
                    Stmt::new("DELETE FROM servers WHERE seen_at < $1", params![now.saturating_sub(3_600_000)]),
                ],
                Durability::Deferred,
            )
            .await?;
        Ok(r[1].affected)
    }

    /// Makes every leased delivery pending again: for a store that one process owns (SQLite), at
    /// start-up, when the leases left are those of the previous process, which is gone. Without
    /// this they would wait out their lease (the attempt's timeout plus the lease margin).
    pub async fn release_every_lease(&self) -> Result<u64, StoreError> {
        let r = self
            .db
            .write(vec![Stmt::new(
                "UPDATE deliveries SET state = 'pending', lease_until = NULL, leased_by = NULL \
                 WHERE state IN ('pending', 'leased') AND state = 'leased'",
                vec![],
            )])
            .await?;
        Ok(r[0].affected)
    }

    pub async fn release(&self, leases: &[(i64, String)]) -> Result<(), StoreError> {
        let stmts = leases
            .iter()
            .map(|(seq, claimer)| {
                Stmt::new(
                    "UPDATE deliveries SET state = 'pending', lease_until = NULL, leased_by = NULL \
                     WHERE seq = $1 AND leased_by = $2 AND state = 'leased'",
                    params![*seq, claimer.as_str()],
                )
            })
            .collect::<Vec<_>>();
        if !stmts.is_empty() {
            self.db.write_with(stmts, Durability::Deferred).await?;
        }
        Ok(())
    }

    pub async fn lease_new_delivery(
        &self,
        event_id: Uuid,
        tenant: &TenantId,
        webhook: Uuid,
        claimer: &str,
        lease_until: i64,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let r = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO deliveries (tenant_id, event_id, webhook_id, state, attempts, next_attempt_at, \
                     lease_until, leased_by, created_at, updated_at) VALUES ($1, $2, $3, 'leased', 0, $4, $5, $6, $4, $4)",
                    params![tenant.as_str(), event_id, webhook, now, lease_until, claimer],
                ),
                Stmt::new(
                    "SELECT MAX(seq) AS seq FROM deliveries WHERE event_id = $1 AND webhook_id = $2 AND leased_by = $3",
                    params![event_id, webhook, claimer],
                ),
            ])
            .await?;
        r[1].rows.first().ok_or_else(|| corrupt("lease", "delivery missing"))?.int("seq")
    }
}

/// An attempt's row of the delivery log, its values in the order of the attempts table's columns.
/// An attempt's columns, in the order of [`Chain::Attempts`]' columns.
pub(super) fn attempt_row(a: &AttemptRecord) -> Vec<sql::Value> {
    params![
        a.id,
        a.delivery_seq,
        &a.tenant_id,
        a.webhook_id,
        &a.event_ref,
        &a.event_type,
        a.attempt_no,
        a.success,
        a.http_status.map(i64::from),
        a.error.clone(),
        a.response_ms,
        &a.request_headers,
        a.dispatched_at,
        a.response_body.clone(),
        a.next_attempt_at,
        a.created_at,
        a.format.as_str(),
        (!a.response_headers.is_empty()).then(|| a.response_headers.clone())
    ]
}
