//! PostgreSQL's fast paths: a batch publish in three statements, and records of successful
//! attempts written together. Every statement costs a PostgreSQL backend tens of µs; these
//! paths are what keep that from binding.

use std::collections::HashMap;

use uuid::Uuid;

use crate::params;
use crate::store::backend::Durability;
use crate::store::events::{deliveries_by_webhook, published};
use crate::store::sql::{Row, Stmt};
use crate::store::sql_store::corrupt;
use crate::store::{Completion, DeliveryStart, HealthChange, NewEvent, Published, Store, StoreError, Target};

/// Records of successful attempts (each an attempt row and its delivery's update) queued for one
/// multi-row write: on PostgreSQL every statement costs a backend tens of µs, and two statements
/// per delivery were what bound it. Whoever takes `flush` next writes everything queued; the
/// others find their record already written.
#[derive(Default)]
pub(in crate::store) struct PendingRecords {
    queue: std::sync::Mutex<Vec<(serde_json::Value, serde_json::Value, RecordReply)>>,
    flush: tokio::sync::Mutex<()>,
}

type RecordReply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

impl Store {
    /// A batch publish on PostgreSQL in three statements instead of about three per event (each
    /// statement costs PostgreSQL's backend tens of µs: it was the bottleneck): the events, their
    /// deliveries and the lookup each go as one JSON array, unpacked by `jsonb_to_recordset`.
    /// Same outcome as the per-event statements: a repeated event_ref adds nothing.
    pub(in crate::store) async fn publish_batch_pg(
        &self,
        events: Vec<(NewEvent, Vec<Target>)>,
    ) -> Result<Vec<Published>, StoreError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let tenant = events[0].0.tenant_id.as_str().to_string();
        if events.iter().any(|(e, _)| e.tenant_id.as_str() != tenant) {
            return Err(StoreError::Database("a batch publish belongs to one tenant".into()));
        }
        let rows: Vec<serde_json::Value> = events
            .iter()
            .map(|(e, targets)| {
                serde_json::json!({
                    "id": e.id.to_string(), "event_ref": e.event_ref, "event_type": e.event_type,
                    "ordering_key": e.ordering_key, "data": b64.encode(&e.data),
                    "delivery_count": targets.len(), "created_at": e.created_at,
                })
            })
            .collect();
        let deliveries: Vec<serde_json::Value> = deliveries_by_webhook(&events)
            .into_iter()
            .map(|(e, t)| {
                let (lease_until, leased_by) = t.start.lease();
                serde_json::json!({
                    "event_id": e.id.to_string(), "webhook_id": t.webhook_id.to_string(),
                    "ordering_key": e.ordering_key, "state": t.start.state(),
                    "lease_until": lease_until, "leased_by": leased_by, "at": e.created_at,
                })
            })
            .collect();
        macro_rules! insert_deliveries {
            ($returning:literal) => {
                concat!(
                    "INSERT INTO deliveries (tenant_id, event_id, webhook_id, ordering_key, state, attempts, \
                     next_attempt_at, lease_until, leased_by, created_at, updated_at) \
                     SELECT $1, x.event_id, x.webhook_id, x.ordering_key, x.state, 0, x.at, x.lease_until, \
                            x.leased_by, x.at, x.at \
                     FROM ROWS FROM (jsonb_to_recordset(CAST($2 AS TEXT)::jsonb) AS (event_id text, \
                          webhook_id text, ordering_key text, state text, lease_until bigint, leased_by text, \
                          at bigint)) \
                          WITH ORDINALITY AS x(event_id, webhook_id, ordering_key, state, lease_until, leased_by, \
                          at, n) \
                     WHERE x.event_id = ANY(ARRAY(SELECT e.id FROM events e WHERE e.id = ANY(ARRAY( \
                           SELECT r->>'event_id' FROM jsonb_array_elements(CAST($2 AS TEXT)::jsonb) r)))) \
                     ORDER BY x.n",
                    $returning
                )
            };
        }
        // The seqs of deliveries leased to the publisher are needed to hand them over; only then
        // are the inserted rows sent back.
        let any_leased =
            events.iter().any(|(_, ts)| ts.iter().any(|t| matches!(t.start, DeliveryStart::Leased { .. })));
        let insert_deliveries = if any_leased {
            insert_deliveries!(" RETURNING seq, event_id, webhook_id, state")
        } else {
            insert_deliveries!("")
        };
        let refs: Vec<&str> = events.iter().map(|(e, _)| e.event_ref.as_str()).collect();
        let (rows, deliveries, refs) = (
            serde_json::to_string(&rows).map_err(|e| corrupt("publish", e))?,
            serde_json::to_string(&deliveries).map_err(|e| corrupt("publish", e))?,
            serde_json::to_string(&refs).map_err(|e| corrupt("publish", e))?,
        );
        let results = self
            .db
            .write(vec![
                Stmt::new(
                    "INSERT INTO events (id, tenant_id, event_ref, event_type, ordering_key, data, delivery_count, \
                     created_at) \
                     SELECT x.id, $1, x.event_ref, x.event_type, x.ordering_key, decode(x.data, 'base64'), \
                            x.delivery_count, x.created_at \
                     FROM ROWS FROM (jsonb_to_recordset(CAST($2 AS TEXT)::jsonb) AS (id text, event_ref text, \
                          event_type text, ordering_key text, data text, delivery_count bigint, created_at bigint)) \
                          WITH ORDINALITY AS x(id, event_ref, event_type, ordering_key, data, delivery_count, \
                          created_at, n) \
                     ORDER BY x.n ON CONFLICT (tenant_id, event_ref) DO NOTHING",
                    params![tenant.as_str(), rows],
                ),
                // Inserted only for events inserted above (a repeated event_ref adds nothing), in
                // publish order: seq orders the deliveries of an ordering key.
                Stmt::new(insert_deliveries, params![tenant.as_str(), deliveries]),
                // `= ANY(ARRAY(…))`, not `IN (SELECT …)`: the planner guesses a set-returning
                // function's row count (100), and against a young, not yet analyzed `events` it
                // chose a hash join over a sequential scan of the whole table, per publish.
                Stmt::new(
                    "SELECT id, event_ref, delivery_count FROM events WHERE tenant_id = $1 \
                     AND event_ref = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST($2 AS TEXT)::jsonb)))",
                    params![tenant.as_str(), refs],
                ),
            ])
            .await?;
        let mut found: HashMap<String, &Row> = HashMap::new();
        for row in &results[2].rows {
            found.insert(row.text("event_ref")?, row);
        }
        let mut leased: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
        for row in results[1].rows.iter().filter(|r| r.text("state").is_ok_and(|s| s == "leased")) {
            leased.entry(row.uuid("event_id")?).or_default().push((row.uuid("webhook_id")?, row.int("seq")?));
        }
        events
            .iter()
            .map(|(e, _)| {
                let row = found.get(&e.event_ref).ok_or_else(|| corrupt("publish", "event row missing"))?;
                let mut p = published(row, e)?;
                if !p.duplicate {
                    p.leased = leased.remove(&e.id).unwrap_or_default();
                }
                Ok(p)
            })
            .collect()
    }
}

impl Store {
    /// PostgreSQL: records a successful attempt that changes nothing on its webhook, together with
    /// whatever other such records are queued (see [`PendingRecords`]). A record written twice (a
    /// retry after a commit whose answer was lost) is skipped, so it cannot fail its batch.
    pub(in crate::store) async fn complete_batched(&self, c: &Completion) -> Result<HealthChange, StoreError> {
        use base64::Engine as _;
        let a = &c.attempt;
        let attempt = serde_json::json!({
            "id": a.id.to_string(), "delivery_seq": a.delivery_seq, "tenant_id": a.tenant_id,
            "webhook_id": a.webhook_id.to_string(), "event_ref": a.event_ref, "event_type": a.event_type,
            "attempt_no": a.attempt_no, "success": a.success as i64, "http_status": a.http_status,
            "error": a.error, "response_ms": a.response_ms, "request_headers": a.request_headers,
            "dispatched_at": a.dispatched_at,
            "response_body": base64::engine::general_purpose::STANDARD.encode(&a.response_body),
            "next_attempt_at": a.next_attempt_at, "created_at": a.created_at, "format": a.format.as_str(),
        });
        let delivery = serde_json::json!({
            "seq": a.delivery_seq, "claimer": c.claimer, "at": a.created_at, "status": a.http_status,
            "error": a.error,
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let poisoned = || StoreError::Unavailable("attempt record queue lock poisoned".into());
        self.records.queue.lock().map_err(|_| poisoned())?.push((attempt, delivery, tx));
        {
            let _flushing = self.records.flush.lock().await;
            let batch = std::mem::take(&mut *self.records.queue.lock().map_err(|_| poisoned())?);
            if !batch.is_empty() {
                let result = self.write_records(&batch).await.map_err(|e| e.to_string());
                for (_, _, reply) in batch {
                    reply.send(result.clone().map_err(StoreError::Unavailable)).ok();
                }
            }
        }
        rx.await.map_err(|_| StoreError::Unavailable("a batch of attempt records was dropped".into()))??;
        Ok(HealthChange::default())
    }

    async fn write_records(
        &self,
        batch: &[(serde_json::Value, serde_json::Value, RecordReply)],
    ) -> Result<(), StoreError> {
        let attempts: Vec<&serde_json::Value> = batch.iter().map(|(a, _, _)| a).collect();
        let deliveries: Vec<&serde_json::Value> = batch.iter().map(|(_, d, _)| d).collect();
        let attempts = serde_json::to_string(&attempts).map_err(|e| corrupt("complete", e))?;
        let deliveries = serde_json::to_string(&deliveries).map_err(|e| corrupt("complete", e))?;
        self.db
            .write_with(
                vec![
                    Stmt::new(
                        "INSERT INTO attempts (id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, \
                         attempt_no, success, http_status, error, response_ms, request_headers, dispatched_at, \
                         response_body, next_attempt_at, created_at, format) \
                         SELECT x.id, x.delivery_seq, x.tenant_id, x.webhook_id, x.event_ref, x.event_type, \
                                x.attempt_no, x.success, x.http_status, x.error, x.response_ms, x.request_headers, \
                                x.dispatched_at, decode(x.response_body, 'base64'), x.next_attempt_at, x.created_at, \
                                x.format \
                         FROM jsonb_to_recordset(CAST($1 AS TEXT)::jsonb) AS x(id text, delivery_seq bigint, \
                              tenant_id text, webhook_id text, event_ref text, event_type text, attempt_no bigint, \
                              success bigint, http_status bigint, error text, response_ms bigint, \
                              request_headers text, dispatched_at bigint, response_body text, \
                              next_attempt_at bigint, created_at bigint, format text) \
                         ON CONFLICT (id) DO NOTHING",
                        params![attempts],
                    ),
                    // The `ANY(ARRAY(…))` gives the planner an index condition on `seq`: joined
                    // on the recordset alone it scanned all of a young `deliveries`.
                    Stmt::new(
                        "UPDATE deliveries d SET state = 'succeeded', attempts = d.attempts + 1, \
                         next_attempt_at = x.at, lease_until = NULL, leased_by = NULL, last_status = x.status, \
                         last_error = x.error, updated_at = x.at \
                         FROM jsonb_to_recordset(CAST($1 AS TEXT)::jsonb) AS x(seq bigint, claimer text, at bigint, \
                              status bigint, error text) \
                         WHERE d.seq = x.seq AND d.leased_by = x.claimer \
                           AND d.seq = ANY(ARRAY(SELECT (e->>'seq')::bigint \
                                                 FROM jsonb_array_elements(CAST($1 AS TEXT)::jsonb) e))",
                        params![deliveries],
                    ),
                ],
                Durability::Background,
            )
            .await
            .map(|_| ())
    }
}
