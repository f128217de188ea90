//! The queries, written once for both databases.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::backend::{Backend, Dialect, Durability};
use super::cache::ReadCache;
use super::event_cache::{EventBody, EventCache};
use super::migrations;
use super::sql::{Row, Stmt};
use super::{
    Activation, AttemptRecord, AuditEntry, AuditRecord, ClaimedDelivery, Completion, DeliveryState, EventRecord,
    NewEvent, NextStep, Published, Store, StoreError, Target, TokenRecord, WebhookStats,
};
use crate::domain::event_type::{EventType, EventTypePattern};
use crate::domain::page::Page;
use crate::domain::tenant::TenantId;
use crate::domain::time::now_ms;
use crate::domain::token::Role;
use crate::domain::webhook::{disabled_reason, CustomHeaders, SealedSecrets, Webhook, WebhookUrl};
use crate::params;

/// Held deliveries made pending per statement when a webhook is re-enabled: a backlog of a
/// million is released as it drains, not in one transaction (which grew the WAL and the
/// server's memory by hundreds of MiB).
const HELD_RELEASE_CHUNK: i64 = 5000;

/// The [`Store`] over any [`Backend`].
pub struct SqlStore<B> {
    pub(crate) db: B,
    /// Copies of the reads every publish makes (see [`super::cache`]); each method that changes
    /// what they hold drops them once its write is done.
    event_types: ReadCache<TenantId, Vec<EventType>>,
    webhooks: ReadCache<TenantId, Vec<Webhook>>,
    webhooks_by_id: ReadCache<Uuid, Option<Webhook>>,
    /// Events one webhook's claim read, for the other webhooks' claims (see [`super::event_cache`]).
    /// SQLite only: on PostgreSQL a fan-out to ten was slower with it (alternating runs of (b),
    /// `--events 30000`: 7 443 and 8 173 deliveries/s without, 5 986 and 6 118 with, and more of
    /// the server's CPU per delivery), for reasons not found yet.
    claimed_events: Option<EventCache>,
    /// PostgreSQL: records of successful attempts waiting to be written together.
    records: PendingRecords,
}

/// Records of successful attempts (each an attempt row and its delivery's update) queued for one
/// multi-row write: on PostgreSQL every statement costs a backend tens of µs, and two statements
/// per delivery were what bound it. Whoever takes `flush` next writes everything queued; the
/// others find their record already written.
#[derive(Default)]
struct PendingRecords {
    queue: std::sync::Mutex<Vec<(serde_json::Value, serde_json::Value, RecordReply)>>,
    flush: tokio::sync::Mutex<()>,
}

type RecordReply = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

impl<B: Backend> SqlStore<B> {
    pub fn new(db: B) -> Self {
        let sqlite = db.dialect() == Dialect::Sqlite;
        Self {
            db,
            event_types: ReadCache::new(),
            webhooks: ReadCache::new(),
            webhooks_by_id: ReadCache::new(),
            claimed_events: sqlite.then(EventCache::new),
            records: PendingRecords::default(),
        }
    }

    /// Drops the copies of webhooks, after a write that changed one.
    fn webhooks_changed(&self) {
        self.webhooks.invalidate();
        self.webhooks_by_id.invalidate();
    }
}

impl<B: Backend> SqlStore<B> {
    /// A batch publish on PostgreSQL in three statements instead of about three per event (each
    /// statement costs PostgreSQL's backend tens of µs: it was the bottleneck): the events, their
    /// deliveries and the lookup each go as one JSON array, unpacked by `jsonb_to_recordset`.
    /// Same outcome as the per-event statements: a repeated event_ref adds nothing.
    async fn publish_batch_pg(&self, events: Vec<(NewEvent, Vec<Target>)>) -> Result<Vec<Published>, StoreError> {
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
                     WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = x.event_id) ORDER BY x.n",
                    $returning
                )
            };
        }
        // The seqs of deliveries leased to the publisher are needed to hand them over; only then
        // are the inserted rows sent back.
        let any_leased =
            events.iter().any(|(_, ts)| ts.iter().any(|t| matches!(t.start, super::DeliveryStart::Leased { .. })));
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
                Stmt::new(
                    "SELECT id, event_ref, delivery_count FROM events WHERE tenant_id = $1 \
                     AND event_ref IN (SELECT jsonb_array_elements_text(CAST($2 AS TEXT)::jsonb))",
                    params![tenant.as_str(), refs],
                ),
            ])
            .await?;
        let mut found: HashMap<String, &Row> = HashMap::new();
        for row in &results[2].rows {
            found.insert(row.text(1)?, row);
        }
        let mut leased: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
        for row in results[1].rows.iter().filter(|r| r.text(3).is_ok_and(|s| s == "leased")) {
            leased.entry(row.uuid(1)?).or_default().push((row.uuid(2)?, row.int(0)?));
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

impl<B: Backend> SqlStore<B> {
    /// PostgreSQL: records a successful attempt that changes nothing on its webhook, together with
    /// whatever other such records are queued (see [`PendingRecords`]). A record written twice (a
    /// retry after a commit whose answer was lost) is skipped, so it cannot fail its batch.
    async fn complete_batched(&self, c: &Completion) -> Result<bool, StoreError> {
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
                    let _ = reply.send(result.clone().map_err(StoreError::Unavailable));
                }
            }
        }
        rx.await.map_err(|_| StoreError::Unavailable("a batch of attempt records was dropped".into()))??;
        Ok(false)
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
                    Stmt::new(
                        "UPDATE deliveries d SET state = 'succeeded', attempts = d.attempts + 1, \
                         next_attempt_at = x.at, lease_until = NULL, leased_by = NULL, last_status = x.status, \
                         last_error = x.error, updated_at = x.at \
                         FROM jsonb_to_recordset(CAST($1 AS TEXT)::jsonb) AS x(seq bigint, claimer text, at bigint, \
                              status bigint, error text) \
                         WHERE d.seq = x.seq AND d.leased_by = x.claimer",
                        params![deliveries],
                    ),
                ],
                Durability::Background,
            )
            .await
            .map(|_| ())
    }
}

/// A batch's deliveries in the order they are stored: webhook by webhook, each webhook's in publish
/// order (its seqs follow the publish order, which ordering keys rely on). In event order, a
/// fan-out to ten webhooks put ten webhooks' rows on every page of the deliveries table, so each
/// claim and each completion of one webhook rewrote a page of its own (4 KiB of WAL for a row of
/// 150 bytes); grouped, a claim's rows and the completions committed together share pages.
fn deliveries_by_webhook(events: &[(NewEvent, Vec<Target>)]) -> Vec<(&NewEvent, &Target)> {
    let mut all: Vec<(&NewEvent, &Target)> =
        events.iter().flat_map(|(e, targets)| targets.iter().map(move |t| (e, t))).collect();
    all.sort_by_key(|(_, t)| t.webhook_id);
    all
}

/// An attempt's row of the delivery log, its values in the order of the attempts table's columns.
fn attempt_row(a: &AttemptRecord) -> Vec<super::sql::Value> {
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
        a.format.as_str()
    ]
}

/// A SQLite statement over many rows at once: `{values}` in its template stands for
/// `(VALUES ($1, …), …)` with `width` values a row. Rows go in chunks of a few fixed sizes, so each
/// size is prepared once (the statement cache keys on the text). A statement per row cost the
/// single writer about three times as much per row.
struct MultiRow {
    template: &'static str,
    width: usize,
    texts: std::sync::OnceLock<Vec<&'static str>>,
}

impl MultiRow {
    /// Rows per statement, largest first; a batch is cut greedily into these.
    const SIZES: [usize; 4] = [128, 32, 8, 1];

    const fn new(template: &'static str, width: usize) -> Self {
        Self { template, width, texts: std::sync::OnceLock::new() }
    }

    /// The statement for a chunk of `rows` (as cut by [`MultiRow::chunks`]).
    fn statement(&self, rows: Vec<Vec<super::sql::Value>>) -> Stmt {
        let texts = self.texts.get_or_init(|| {
            Self::SIZES
                .iter()
                .map(|&n| {
                    let values: Vec<String> = (0..n)
                        .map(|r| {
                            let p: Vec<String> = (1..=self.width).map(|c| format!("${}", r * self.width + c)).collect();
                            format!("({})", p.join(", "))
                        })
                        .collect();
                    let text = self.template.replace("{values}", &format!("(VALUES {})", values.join(", ")));
                    // Leaked once per size: statements are `&'static str`.
                    &*Box::leak(text.into_boxed_str())
                })
                .collect()
        });
        let at = Self::SIZES.iter().position(|&n| n == rows.len()).expect("a chunk has one of the sizes");
        Stmt::new(texts[at], rows.into_iter().flatten().collect())
    }

    /// Cuts `rows` into chunks of the fixed sizes, in order.
    fn chunks(rows: Vec<Vec<super::sql::Value>>) -> Vec<Vec<Vec<super::sql::Value>>> {
        let mut out = Vec::new();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let left = rows.len();
            let size = Self::SIZES.iter().copied().find(|&n| n <= left).unwrap_or(1);
            out.push(rows.by_ref().take(size).collect());
        }
        out
    }
}

/// SQLite: new deliveries, each row `(tenant_id, event_id, webhook_id, ordering_key, state, at,
/// lease_until, leased_by)`. A delivery of an event that was not inserted (a repeat) is skipped.
macro_rules! sqlite_insert_deliveries {
    ($returning:literal) => {
        MultiRow::new(
            concat!(
                "INSERT INTO deliveries (tenant_id, event_id, webhook_id, ordering_key, state, attempts, \
                 next_attempt_at, lease_until, leased_by, created_at, updated_at) \
                 SELECT v.column1, v.column2, v.column3, v.column4, v.column5, 0, v.column6, v.column7, v.column8, \
                 v.column6, v.column6 FROM {values} AS v WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = v.column2)",
                $returning
            ),
            8,
        )
    };
}
static SQLITE_INSERT_DELIVERIES: MultiRow = sqlite_insert_deliveries!("");
/// ... sending back `(seq, event_id, webhook_id, state)` of each, for the hand-over of the leased ones.
static SQLITE_INSERT_DELIVERIES_RETURNING: MultiRow =
    sqlite_insert_deliveries!(" RETURNING seq, event_id, webhook_id, state");

/// What a publish reports for event `e`, from its lookup row (id, event_ref, delivery_count): a
/// different id means the event_ref was already taken.
fn published(row: &Row, e: &NewEvent) -> Result<Published, StoreError> {
    let id = row.uuid(0)?;
    Ok(Published {
        event_id: id,
        event_ref: row.text(1)?,
        deliveries: row.int(2)? as u64,
        duplicate: id != e.id,
        leased: Vec::new(),
    })
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
        format: crate::destinations::parse_format(&r.text(6)?, "format").map_err(|e| corrupt("format", e))?,
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

macro_rules! attempt_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, attempt_no, success, http_status, \
             error, response_ms, request_headers, dispatched_at, response_body, next_attempt_at, created_at, format \
             FROM attempts ",
            $rest
        )
    };
}

fn attempt_from_row(r: &Row) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        id: r.uuid(0)?,
        delivery_seq: r.int(1)?,
        tenant_id: r.text(2)?,
        webhook_id: r.uuid(3)?,
        event_ref: r.text(4)?,
        event_type: r.text(5)?,
        attempt_no: r.int(6)? as u32,
        success: r.int(7)? != 0,
        http_status: r.opt_int(8)?.map(|s| s as u16),
        error: r.opt_text(9)?,
        response_ms: r.int(10)?,
        request_headers: r.text(11)?,
        dispatched_at: r.int(12)?,
        response_body: r.opt_bytes(13)?.unwrap_or_default(),
        next_attempt_at: r.opt_int(14)?,
        created_at: r.int(15)?,
        format: crate::destinations::parse_format(&r.text(16)?, "format").map_err(|e| corrupt("format", e))?,
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
            .await;
        self.event_types.invalidate();
        let r = r?;
        Ok(count(&r[0].rows)? == 0)
    }

    async fn delete_event_type(&self, tenant: &TenantId, name: &str, audit: AuditEntry) -> Result<bool, StoreError> {
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

    async fn insert_webhook(&self, w: &Webhook, audit: AuditEntry) -> Result<(), StoreError> {
        let r = self
            .db
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
            .await;
        self.webhooks_changed();
        r?;
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
            .await;
        self.webhooks_changed();
        let r = r?;
        Ok(r[0].affected == 1)
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: Uuid, audit: AuditEntry) -> Result<bool, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2", params![tenant.as_str(), id]),
                Stmt::new("DELETE FROM deliveries WHERE webhook_id = $1", params![id]),
                Stmt::new(
                    "DELETE FROM attempts WHERE tenant_id = $1 AND webhook_id = $2",
                    params![tenant.as_str(), id],
                ),
                audit_stmt(&audit),
            ])
            .await;
        self.webhooks_changed();
        let r = r?;
        Ok(r[0].affected == 1)
    }

    async fn publish(&self, events: Vec<(NewEvent, Vec<Target>)>) -> Result<Vec<Published>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if self.db.dialect() == Dialect::Postgres {
            return self.publish_batch_pg(events).await;
        }
        // SQLite: one statement per event (its payload bound as it is), then the deliveries of all
        // of them in multi-row statements (see `MultiRow`).
        let mut stmts = Vec::with_capacity(events.len() + 2);
        for (e, targets) in &events {
            // A repeated event_ref adds nothing (and changes no row).
            stmts.push(Stmt::new(
                "INSERT INTO events (id, tenant_id, event_ref, event_type, ordering_key, data, delivery_count, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, event_ref) DO NOTHING",
                params![
                    e.id,
                    e.tenant_id.as_str(),
                    &e.event_ref,
                    &e.event_type,
                    e.ordering_key.clone(),
                    e.data.to_vec(),
                    targets.len() as i64,
                    e.created_at
                ],
            ));
        }
        let rows = deliveries_by_webhook(&events)
            .into_iter()
            .map(|(e, t)| {
                let (lease_until, leased_by) = t.start.lease();
                params![
                    e.tenant_id.as_str(),
                    e.id,
                    t.webhook_id,
                    e.ordering_key.clone(),
                    t.start.state(),
                    e.created_at,
                    lease_until,
                    leased_by
                ]
            })
            .collect();
        for chunk in MultiRow::chunks(rows) {
            // Only chunks with leased deliveries (those with a `leased_by`) send rows back.
            let leased = chunk.iter().any(|r| r[7] != super::sql::Value::Null);
            let sql = if leased { &SQLITE_INSERT_DELIVERIES_RETURNING } else { &SQLITE_INSERT_DELIVERIES };
            stmts.push(sql.statement(chunk));
        }
        let results = self.db.write(stmts).await?;
        // The seqs of the deliveries leased to the publisher, to hand them over.
        let mut leased: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
        let rows = results[events.len()..].iter().flat_map(|r| &r.rows);
        for row in rows.filter(|r| r.text(3).is_ok_and(|s| s == "leased")) {
            leased.entry(row.uuid(1)?).or_default().push((row.uuid(2)?, row.int(0)?));
        }
        // Repeats answer with the event first published under their event_ref: one read per tenant
        // for all of them (a client retrying a whole batch repeats every event).
        let mut repeats: HashMap<&str, Vec<&str>> = HashMap::new();
        for ((e, _), inserted) in events.iter().zip(&results) {
            if inserted.affected == 0 {
                repeats.entry(e.tenant_id.as_str()).or_default().push(e.event_ref.as_str());
            }
        }
        let mut originals: HashMap<(String, String), Row> = HashMap::new();
        for (tenant, refs) in repeats {
            let refs = serde_json::to_string(&refs).map_err(|e| corrupt("publish", e))?;
            let rows = self
                .db
                .query(
                    "SELECT id, event_ref, delivery_count FROM events WHERE tenant_id = $1 \
                     AND event_ref IN (SELECT value FROM json_each($2))",
                    params![tenant, refs],
                )
                .await?;
            for row in rows {
                originals.insert((tenant.to_string(), row.text(1)?), row);
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for ((e, targets), inserted) in events.iter().zip(&results) {
            if inserted.affected == 0 {
                let key = (e.tenant_id.as_str().to_string(), e.event_ref.clone());
                let row = originals.get(&key).ok_or_else(|| corrupt("publish", "event row missing"))?;
                out.push(published(row, e)?);
            } else {
                out.push(Published {
                    event_id: e.id,
                    event_ref: e.event_ref.clone(),
                    deliveries: targets.len() as u64,
                    duplicate: false,
                    leased: leased.remove(&e.id).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn active_webhook_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let rows = self.db.query("SELECT id FROM webhooks WHERE is_active = 1", vec![]).await?;
        rows.iter().map(|r| r.uuid(0)).collect()
    }

    async fn tenant_webhooks(&self, tenant: &TenantId) -> Result<Vec<Webhook>, StoreError> {
        self.webhooks
            .get_or_load(tenant.clone(), async {
                let rows = self.db.query(webhook_select!("WHERE tenant_id = $1"), params![tenant.as_str()]).await?;
                rows.iter().map(webhook_from_row).collect()
            })
            .await
    }

    async fn webhook_by_id(&self, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        self.webhooks_by_id
            .get_or_load(id, async {
                let rows = self.db.query(webhook_select!("WHERE id = $1"), params![id]).await?;
                rows.first().map(webhook_from_row).transpose()
            })
            .await
    }

    async fn claim(
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
                    ") RETURNING seq, attempts, tenant_id, event_id"
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
            if let std::collections::hash_map::Entry::Vacant(slot) = events.entry(row.text(3)?) {
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
            for row in self.db.query(events_sql, params![list]).await? {
                let id = row.text(0)?;
                let event = Arc::new(EventBody {
                    event_ref: row.text(1)?,
                    event_type: row.text(2)?,
                    data: row.bytes(3)?.into(),
                    created_at: row.int(4)?,
                });
                // This claim is one of its deliveries; the others are other webhooks' claims.
                let others = (row.int(5)? as u32).saturating_sub(1);
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
            let event_id = row.text(3)?;
            let Some(Some(e)) = events.get(&event_id) else {
                tracing::warn!(event_id, "claimed a delivery whose event is gone; skipping it");
                continue;
            };
            claimed.push(ClaimedDelivery {
                seq: row.int(0)?,
                attempts: row.int(1)? as u32,
                tenant_id: row.text(2)?,
                webhook_id: webhook,
                event_id: row.uuid(3)?,
                event_ref: e.event_ref.clone(),
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                created_at: e.created_at,
            });
        }
        claimed.sort_by_key(|d| d.seq);
        Ok(claimed)
    }

    async fn complete(&self, c: &Completion) -> Result<bool, StoreError> {
        let a = &c.attempt;
        let webhook_untouched = !c.gone && (!c.counts_for_breaker || c.counter_was_zero);
        if self.db.dialect() == Dialect::Postgres && a.success && webhook_untouched && c.next == NextStep::Succeeded {
            return self.complete_batched(c).await;
        }
        let now = a.created_at;
        let mut stmts = vec![Stmt::new(
            "INSERT INTO attempts (id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, attempt_no, success, \
             http_status, error, response_ms, request_headers, dispatched_at, response_body, next_attempt_at, \
             created_at, format) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            attempt_row(a),
        )];
        let mut disable_at = None;
        if c.counts_for_breaker {
            if a.success && c.counter_was_zero {
                // Nothing to reset.
            } else if a.success {
                stmts.push(Stmt::new(
                    "UPDATE webhooks SET failure_count = 0 WHERE id = $1 AND failure_count <> 0",
                    params![a.webhook_id],
                ));
            } else {
                stmts.push(Stmt::new(
                    "UPDATE webhooks SET failure_count = failure_count + 1 WHERE id = $1",
                    params![a.webhook_id],
                ));
            }
        }
        if c.gone {
            disable_at = Some(stmts.len());
            stmts.push(Stmt::new(
                "UPDATE webhooks SET is_active = 0, disabled_reason = $1, updated_at = $2 WHERE id = $3 AND is_active = 1",
                params![disabled_reason::GONE, now, a.webhook_id],
            ));
        } else if c.counts_for_breaker && !a.success {
            disable_at = Some(stmts.len());
            stmts.push(Stmt::new(
                "UPDATE webhooks SET is_active = 0, disabled_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND is_active = 1 AND failure_count >= $4",
                params![disabled_reason::FAILURES, now, a.webhook_id, c.failure_threshold],
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
        // A lost attempt record means the delivery is attempted again: deferred, unless the
        // webhook may be disabled by it (that is announced to people at once).
        let durability = if disable_at.is_some() { Durability::Synced } else { Durability::Background };
        let r = self.db.write_with(stmts, durability).await;
        if webhook_changed {
            self.webhooks_changed();
        }
        let r = r?;
        let disabled = disable_at.is_some_and(|i| r[i].affected == 1);
        if disabled {
            // Only now, not with every failure: holding scans the webhook's pending deliveries.
            // Should this write be lost, the deliveries stay pending on an inactive webhook, which
            // is not claimed until re-enabled: the same outcome.
            self.db
                .write(vec![Stmt::new(
                    "UPDATE deliveries SET state = 'held', updated_at = $1 WHERE webhook_id = $2 \
                     AND state IN ('pending', 'leased') AND state = 'pending' \
                     AND (SELECT w.is_active FROM webhooks w WHERE w.id = $2) = 0",
                    params![now, a.webhook_id],
                )])
                .await?;
        }
        Ok(disabled)
    }

    async fn release_held(&self, webhook: Uuid, now: i64) -> Result<u64, StoreError> {
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

    async fn expire_leases(&self, now: i64) -> Result<u64, StoreError> {
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

    async fn release(&self, leases: &[(i64, String)]) -> Result<(), StoreError> {
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

    async fn lease_new_delivery(
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
                    "SELECT MAX(seq) FROM deliveries WHERE event_id = $1 AND webhook_id = $2 AND leased_by = $3",
                    params![event_id, webhook, claimer],
                ),
            ])
            .await?;
        r[1].rows.first().ok_or_else(|| corrupt("lease", "delivery missing"))?.int(0)
    }

    async fn redeliver(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        event_ref: &str,
        audit: AuditEntry,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let a = &audit;
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
                    "SELECT MAX(d.seq) FROM deliveries d JOIN events e ON e.id = d.event_id \
                     WHERE e.tenant_id = $1 AND e.event_ref = $2 AND d.webhook_id = $3",
                    params![tenant.as_str(), event_ref, webhook],
                ),
                // The audit entry, in the same transaction, when there was something to redeliver.
                Stmt::new(
                    "INSERT INTO audit_log (tenant_id, actor, action, target, details, at) \
                     SELECT $1, $2, $3, $4, $5, CAST($6 AS BIGINT) \
                     WHERE EXISTS (SELECT 1 FROM events WHERE tenant_id = $1 AND event_ref = $7)",
                    params![a.tenant_id.as_str(), &a.actor, &a.action, &a.target, a.details.to_string(), a.at, event_ref],
                ),
            ])
            .await?;
        if r[0].affected == 0 {
            return Ok(None);
        }
        r[1].rows.first().map(|row| row.int(0)).transpose()
    }

    async fn get_event(&self, tenant: &TenantId, event_ref: &str) -> Result<Option<EventRecord>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT id, event_ref, event_type, ordering_key, data, created_at FROM events \
                 WHERE tenant_id = $1 AND event_ref = $2",
                params![tenant.as_str(), event_ref],
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let id = row.uuid(0)?;
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
                    seq: d.int(0)?,
                    webhook_id: d.uuid(1)?,
                    state: d.text(2)?,
                    attempts: d.int(3)? as u32,
                    next_attempt_at: d.int(4)?,
                    last_status: d.opt_int(5)?.map(|s| s as u16),
                    last_error: d.opt_text(6)?,
                    updated_at: d.int(7)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(EventRecord {
            id,
            event_ref: row.text(1)?,
            event_type: row.text(2)?,
            ordering_key: row.opt_text(3)?,
            data: row.bytes(4)?,
            created_at: row.int(5)?,
            deliveries,
        }))
    }

    async fn list_attempts(
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
                "SELECT COUNT(*) FROM attempts WHERE tenant_id = $1 AND webhook_id = $2 \
                 AND (CAST($3 AS BIGINT) = -1 OR success = $3)",
                params![tenant.as_str(), webhook, filter],
            )
            .await?;
        Ok((rows.iter().map(attempt_from_row).collect::<Result<_, _>>()?, count(&total)?))
    }

    async fn recent_attempts(&self, tenant: &TenantId, limit: u32) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = self
            .db
            .query(
                attempt_select!("WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"),
                params![tenant.as_str(), limit as i64],
            )
            .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn get_attempt(
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

    async fn webhook_stats(&self, tenant: &TenantId, webhook: Uuid, since: i64) -> Result<WebhookStats, StoreError> {
        let p = params![tenant.as_str(), webhook, since];
        let rows = self
            .db
            .query(
                "SELECT COUNT(*), CAST(COALESCE(SUM(success), 0) AS BIGINT), \
                 MAX(CASE WHEN success = 1 THEN created_at END), MAX(CASE WHEN success = 0 THEN created_at END) \
                 FROM attempts WHERE tenant_id = $1 AND webhook_id = $2 AND created_at >= $3",
                p.clone(),
            )
            .await?;
        let row = rows.first().ok_or_else(|| corrupt("stats", "no row"))?;
        let attempts = row.int(0)? as u64;
        let successes = row.int(1)? as u64;
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
            p50 = self.db.query(SQL, percentile(0.5)).await?.first().map(|r| r.int(0)).transpose()?;
            p95 = self.db.query(SQL, percentile(0.95)).await?.first().map(|r| r.int(0)).transpose()?;
        }
        Ok(WebhookStats {
            attempts,
            successes,
            failures: attempts - successes,
            p50_ms: p50,
            p95_ms: p95,
            last_success_at: row.opt_int(2)?,
            last_failure_at: row.opt_int(3)?,
        })
    }

    async fn prune(&self, before: i64) -> Result<u64, StoreError> {
        let r = self
            .db
            .write(vec![
                Stmt::new("DELETE FROM attempts WHERE created_at < $1", params![before]),
                Stmt::new(
                    "DELETE FROM deliveries WHERE state IN ('succeeded', 'failed') AND updated_at < $1",
                    params![before],
                ),
                Stmt::new(
                    "DELETE FROM events WHERE created_at < $1 AND NOT EXISTS \
                     (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
                    params![before],
                ),
            ])
            .await?;
        Ok(r[0].affected)
    }

    async fn attempt_histogram(
        &self,
        tenant: &TenantId,
        webhook: Uuid,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, u64, u64, i64)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT CAST(created_at / $4 AS BIGINT), COUNT(*), CAST(COALESCE(SUM(success), 0) AS BIGINT), \
                 CAST(COALESCE(AVG(response_ms), 0) AS BIGINT) FROM attempts \
                 WHERE tenant_id = $1 AND webhook_id = $2 AND created_at >= $3 \
                 GROUP BY CAST(created_at / $4 AS BIGINT) ORDER BY 1",
                params![tenant.as_str(), webhook, since, bucket_ms],
            )
            .await?;
        rows.iter().map(|r| Ok((r.int(0)? * bucket_ms, r.int(1)? as u64, r.int(2)? as u64, r.int(3)?))).collect()
    }

    async fn create_session(
        &self,
        digest: [u8; 32],
        token_id: Uuid,
        csrf: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .write(vec![
                Stmt::new("DELETE FROM ui_sessions WHERE expires_at < $1", params![now_ms()]),
                Stmt::new(
                    "INSERT INTO ui_sessions (digest, token_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    params![&digest[..], token_id, csrf, now_ms(), expires_at],
                ),
            ])
            .await
            .map(|_| ())
    }

    async fn find_session(&self, digest: [u8; 32], now: i64) -> Result<Option<(TokenRecord, String)>, StoreError> {
        let rows = self
            .db
            .query(
                "SELECT t.id, t.tenant_id, t.role, t.name, t.prefix, t.created_at, t.revoked_at, s.csrf \
                 FROM ui_sessions s JOIN api_tokens t ON t.id = s.token_id \
                 WHERE s.digest = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
                params![&digest[..], now],
            )
            .await?;
        rows.first().map(|r| Ok((token_from_row(r)?, r.text(7)?))).transpose()
    }

    async fn delete_session(&self, digest: [u8; 32]) -> Result<(), StoreError> {
        self.db
            .write(vec![Stmt::new("DELETE FROM ui_sessions WHERE digest = $1", params![&digest[..]])])
            .await
            .map(|_| ())
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
