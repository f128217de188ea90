//! PostgreSQL's fast paths: a publish in two statements whatever its size, small publishes of
//! concurrent callers combined into one, and records of successful attempts written together.
//! Every statement costs a PostgreSQL backend tens of µs; these paths are what keep that from
//! binding.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::{INDEX_PLANS, USUAL_PLANS};
use crate::params;
use crate::store::backend::{Backend, Durability};
use crate::store::chain::{self, Chain};
use crate::store::coalesce::{Coalescer, Hold};
use crate::store::events::{answer, deliveries_by_webhook, filtered_json, originals};
use crate::store::sql::{Stmt, StmtResult, Value};
use crate::store::{Completion, DeliveryStart, HealthChange, NewEvent, Published, Store, StoreError, Target};

/// `stmts` run with [`INDEX_PLANS`]; the results of the two settings are taken out again by
/// [`by_index_results`].
fn by_index(stmts: Vec<Stmt>) -> Vec<Stmt> {
    std::iter::once(INDEX_PLANS.clone()).chain(stmts).chain([USUAL_PLANS.clone()]).collect()
}

fn by_index_results(mut results: Vec<StmtResult>) -> Vec<StmtResult> {
    results.pop();
    results.remove(0);
    results
}

/// A publish on PostgreSQL in two statements instead of about three per event (each statement
/// costs PostgreSQL's backend tens of µs: it was the bottleneck): the events and their deliveries
/// each go as one array per column, unpacked by `unnest` (sent in binary; parsing the same rows
/// from JSON cost the database twice as much). The events may belong to several tenants
/// (publishes of several callers combined). Same outcome as per-event statements: a repeated
/// event_ref adds nothing, also when it is repeated within the batch.
///
/// An event published with a token this process kept ([`NewEvent::live_token`]) is inserted
/// only while that token is live (checked by the insert itself, once per statement, so no read
/// precedes it). Only for the events the insert left out, after the commit: whether their token
/// is still live ([`dead_tokens`]; one that is not is answered [`StoreError::TokenNotLive`]),
/// then the first publish of the others, the repeats ([`originals`]).
///
/// The outcome is per event: one caller's revoked token, or a failed read of what the insert
/// left out, fails only the events concerned, never the events committed beside them (those are
/// answered, and their deliveries handed over).
async fn publish(
    db: &dyn Backend,
    events: &[(NewEvent, Vec<Target>)],
) -> Result<Vec<Result<Published, StoreError>>, StoreError> {
    // One array per column of the events' rows (each event with its number of deliveries).
    let event_column = |f: &dyn Fn(&NewEvent, usize) -> Value| {
        Value::Array(events.iter().map(|(e, targets)| f(e, targets.len())).collect())
    };
    let rows = vec![
        event_column(&|e, _| e.id.into()),
        event_column(&|e, _| e.tenant_id.as_str().into()),
        event_column(&|e, _| e.event_ref.as_str().into()),
        event_column(&|e, _| e.event_type.as_str().into()),
        event_column(&|e, _| e.ordering_key.as_deref().map_or(Value::Null, Value::from)),
        event_column(&|e, _| Value::Bytes(e.data.to_vec())),
        event_column(&|_, n| (n as i64).into()),
        event_column(&|e, _| e.created_at.into()),
        event_column(&|e, _| filtered_json(e).map_or(Value::Null, Value::from)),
        event_column(&|e, _| e.live_token.map_or(Value::Null, Value::from)),
    ];
    // ... and of their deliveries' rows, in the order they are stored.
    let targets = deliveries_by_webhook(events);
    let delivery_column =
        |f: &dyn Fn(&NewEvent, &Target) -> Value| Value::Array(targets.iter().map(|(e, t)| f(e, t)).collect());
    let deliveries = vec![
        delivery_column(&|e, _| e.tenant_id.as_str().into()),
        delivery_column(&|e, _| e.id.into()),
        delivery_column(&|_, t| t.webhook_id.into()),
        delivery_column(&|e, _| e.ordering_key.as_deref().map_or(Value::Null, Value::from)),
        delivery_column(&|_, t| t.start.state().into()),
        delivery_column(&|_, t| t.start.lease().0.map_or(Value::Null, Value::from)),
        delivery_column(&|_, t| t.start.lease().1.map_or(Value::Null, Value::from)),
        delivery_column(&|e, _| e.created_at.into()),
    ];
    macro_rules! insert_deliveries {
        ($returning:literal) => {
            concat!(
                "INSERT INTO deliveries (tenant_id, event_id, webhook_id, ordering_key, state, attempts, \
                 next_attempt_at, lease_until, leased_by, created_at, updated_at) \
                 SELECT x.tenant_id, x.event_id, x.webhook_id, x.ordering_key, \
                        CASE WHEN w.is_active = 0 THEN 'held' WHEN x.state = 'held' THEN 'pending' \
                             ELSE x.state END, 0, x.at, \
                        CASE WHEN w.is_active = 1 THEN x.lease_until END, \
                        CASE WHEN w.is_active = 1 THEN x.leased_by END, x.at, x.at \
                 FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS TEXT[]), CAST($3 AS TEXT[]), CAST($4 AS TEXT[]), \
                      CAST($5 AS TEXT[]), CAST($6 AS BIGINT[]), CAST($7 AS TEXT[]), CAST($8 AS BIGINT[])) \
                      WITH ORDINALITY AS x(tenant_id, event_id, webhook_id, ordering_key, state, lease_until, \
                      leased_by, at, n) \
                 JOIN webhooks w ON w.id = x.webhook_id \
                 WHERE x.event_id = ANY(ARRAY(SELECT e.id FROM events e WHERE e.id = ANY(CAST($2 AS TEXT[])))) \
                 ORDER BY x.n",
                $returning
            )
        };
    }
    // The seqs of deliveries leased to the publisher are needed to hand them over; only then
    // are the inserted rows sent back.
    let any_leased = events.iter().any(|(_, ts)| ts.iter().any(|t| matches!(t.start, DeliveryStart::Leased { .. })));
    let insert_deliveries = if any_leased {
        insert_deliveries!(" RETURNING seq, event_id, webhook_id, state")
    } else {
        insert_deliveries!("")
    };
    let results = db
        .write(by_index(vec![
            // The ids of the events inserted come back: the others' event_refs were taken (the
            // repeats, looked up after the commit).
            Stmt::new(
                "INSERT INTO events (id, tenant_id, event_ref, event_type, ordering_key, data, delivery_count, \
                 created_at, filtered) \
                 SELECT x.id, x.tenant_id, x.event_ref, x.event_type, x.ordering_key, x.data, x.delivery_count, \
                        x.created_at, x.filtered \
                 FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS TEXT[]), CAST($3 AS TEXT[]), CAST($4 AS TEXT[]), \
                      CAST($5 AS TEXT[]), CAST($6 AS BYTEA[]), CAST($7 AS BIGINT[]), CAST($8 AS BIGINT[]), \
                      CAST($9 AS TEXT[]), CAST($10 AS TEXT[])) \
                      WITH ORDINALITY AS x(id, tenant_id, event_ref, event_type, ordering_key, data, \
                      delivery_count, created_at, filtered, live_token, n) \
                 WHERE x.live_token IS NULL OR x.live_token = ANY(ARRAY(SELECT t.id FROM api_tokens t \
                       WHERE t.id = ANY(CAST($10 AS TEXT[])) AND t.revoked_at IS NULL)) \
                 ORDER BY x.n ON CONFLICT (tenant_id, event_ref) DO NOTHING RETURNING id",
                rows,
            ),
            // Inserted only for events inserted above (a repeated event_ref adds nothing), in
            // publish order: seq orders the deliveries of an ordering key.
            Stmt::new(insert_deliveries, deliveries),
        ]))
        .await
        .map(by_index_results)?;
    let inserted: HashSet<Uuid> = results[0].rows.iter().map(|r| r.uuid("id")).collect::<Result<_, _>>()?;
    let mut leased: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
    for row in results[1].rows.iter().filter(|r| r.text("state").is_ok_and(|s| s == "leased")) {
        leased.entry(row.uuid("event_id")?).or_default().push((row.uuid("webhook_id")?, row.int("seq")?));
    }
    let left_out: Vec<&NewEvent> = events.iter().map(|(e, _)| e).filter(|e| !inserted.contains(&e.id)).collect();
    let looked_up = async {
        let dead = dead_tokens(db, left_out.iter().filter_map(|e| e.live_token)).await?;
        let refused = |e: &&NewEvent| e.live_token.is_some_and(|t| dead.contains(&t));
        let originals = originals(db, left_out.iter().copied().filter(|e| !refused(e))).await?;
        Ok::<_, StoreError>((dead, originals))
    }
    .await;
    Ok(events
        .iter()
        .map(|(e, targets)| {
            if inserted.contains(&e.id) {
                return answer(e, targets, &inserted, &mut leased, &HashMap::new());
            }
            let (dead, originals) = looked_up.as_ref().map_err(Clone::clone)?;
            if e.live_token.is_some_and(|t| dead.contains(&t)) {
                return Err(StoreError::TokenNotLive);
            }
            answer(e, targets, &inserted, &mut leased, originals)
        })
        .collect())
}

/// Of the tokens of events the insert left out, those no longer live. Read after the commit:
/// a token dead at the insert is dead now (revocation is for good), so every event the insert
/// refused is found; one left out as a repeat whose token was revoked since is refused too (its
/// request raced the revocation). An event the insert took is never refused.
async fn dead_tokens(db: &dyn Backend, tokens: impl IntoIterator<Item = Uuid>) -> Result<HashSet<Uuid>, StoreError> {
    let tokens: HashSet<Uuid> = tokens.into_iter().collect();
    if tokens.is_empty() {
        return Ok(tokens);
    }
    let list = Value::Array(tokens.iter().map(|&t| Value::from(t)).collect());
    let rows = db
        .query("SELECT id FROM api_tokens WHERE id = ANY(CAST($1 AS TEXT[])) AND revoked_at IS NULL", vec![list])
        .await?;
    let live: HashSet<Uuid> = rows.iter().map(|r| r.uuid("id")).collect::<Result<_, _>>()?;
    Ok(tokens.difference(&live).copied().collect())
}

impl Store {
    /// PostgreSQL: a publish. One of a few events is combined with the publishes of other callers
    /// queued meanwhile (see [`PgWrites`]); a large batch is written on its own, its kept token
    /// read first: one read for many events costs less than the insert's check of every row
    /// (database CPU per delivery in (a) 0.043-0.044 → 0.047 ms with the check).
    pub(in crate::store) async fn publish_pg(
        &self,
        mut events: Vec<(NewEvent, Vec<Target>)>,
    ) -> Result<Vec<Published>, StoreError> {
        match &self.pg {
            Some(pg) if events.len() < COMBINE_BELOW => pg.publishes.submit(events).await,
            _ => {
                let kept: Vec<Uuid> = events.iter_mut().filter_map(|(e, _)| e.live_token.take()).collect();
                if !dead_tokens(&*self.db, kept).await?.is_empty() {
                    return Err(StoreError::TokenNotLive);
                }
                publish(&*self.db, &events).await?.into_iter().collect()
            }
        }
    }

    /// PostgreSQL: records a successful attempt that changes nothing on its webhook, together with
    /// whatever other such records are queued (see [`PgWrites`]). A record written twice (a
    /// retry after a commit whose answer was lost) fails its batch, which is then written record
    /// by record; that record's conflict means it is stored, and is answered as done.
    pub(in crate::store) async fn complete_batched(&self, c: &Completion) -> Result<HealthChange, StoreError> {
        let Some(pg) = &self.pg else { return Err(StoreError::Database("combined records are PostgreSQL's".into())) };
        let a = &c.attempt;
        let row = crate::store::queue::attempt_row(a);
        // The entry's digest is made here, on the caller's thread: the one combined write
        // only links it.
        let digest = chain::digest_of(Chain::Attempts, &row);
        let delivery = params![a.delivery_seq, &c.claimer, a.created_at, a.http_status.map(i64::from), a.error.clone()];
        pg.records.submit(((a.tenant_id.clone(), digest, row), delivery)).await?;
        Ok(HealthChange::default())
    }
}

/// An attempt record to combine: its tenant, its entry's digest (see [`chain::digest_of`]) and
/// its row's values (as [`crate::store::queue::attempt_row`] gives them); then its delivery's
/// update: seq, claimer, time, status, error.
type AttemptRow = (String, String, Vec<Value>);
type DeliveryDone = Vec<Value>;

/// Publishes of fewer events than this are combined with other callers' (see [`PgWrites`]).
const COMBINE_BELOW: usize = 32;
/// Most publishes combined into one.
const MAX_COMBINED_PUBLISHES: usize = 64;
/// Most attempt records written together.
const MAX_COMBINED_RECORDS: usize = 1024;
/// Records of successful attempts wait up to 10 ms for others while fewer than 256 are queued.
/// Held 2 ms (s27): (f16) on one server 7,020 · 6,935 · 6,835 → 8,157 · 7,634 · 7,342
/// deliveries/s, the database's CPU per delivery 0.11 → 0.076–0.081 ms; 10 ms (s28): the
/// database's CPU per delivery about 15% lower again (docs/performance.md s28). Slices of 1 ms:
/// a hold ends at a slice that brought no record, so a quiet process, or one whose attempts are
/// all waiting on their records already, does not wait the whole 10 ms. A record whose delivery
/// has an ordering key is not held: the next delivery of its key waits for it (`Store::complete`).
const RECORDS_HOLD: Hold =
    Hold { fewer_than: 256, wait: std::time::Duration::from_millis(10), gap: std::time::Duration::from_millis(1) };

/// PostgreSQL's writes of many callers combined into one statement set (see
/// [`crate::store::coalesce`]): small publishes (one event per request is how products publish),
/// and the records of successful attempts (an attempt row and its delivery's update each).
pub(in crate::store) struct PgWrites {
    publishes: Coalescer<Vec<(NewEvent, Vec<Target>)>, Vec<Published>>,
    /// ((the attempt's tenant, its entry's digest, its row's values), the delivery's update)
    records: Coalescer<(AttemptRow, DeliveryDone), ()>,
}

impl PgWrites {
    pub(in crate::store) fn new(db: Arc<dyn Backend>) -> Self {
        let for_records = db.clone();
        Self {
            // One in flight: the next gathers while it waits for its commit. Two in flight made
            // smaller batches and cost more (f16, alternating runs: 3,639 and 3,938 deliveries/s
            // against 4,443 and 4,097 with one; database CPU 0.26/0.24 against 0.19/0.21 ms).
            publishes: Coalescer::new(
                1,
                MAX_COMBINED_PUBLISHES,
                Box::new(move |batch| {
                    let db = db.clone();
                    Box::pin(async move { publish_combined(&*db, batch).await })
                }),
            ),
            // Held back while few are queued: no caller waits on these records (the attempt's
            // slot is free already; records of deliveries with an ordering key, which the next
            // of their key waits for, do not come here), and every transaction costs PostgreSQL
            // more than its rows (SQLite's writer holds its background writes back alike).
            records: Coalescer::holding(
                1,
                MAX_COMBINED_RECORDS,
                Some(RECORDS_HOLD),
                Box::new(move |batch| {
                    let db = for_records.clone();
                    Box::pin(async move {
                        match write_records(&*db, &batch).await {
                            // A record that cannot be written (one already written by a try
                            // whose answer was lost) must not take the others down: each alone.
                            Err(StoreError::Database(_) | StoreError::Conflict(_)) if batch.len() > 1 => {
                                let mut out = Vec::with_capacity(batch.len());
                                for record in batch.chunks(1) {
                                    out.push(match write_records(&*db, record).await {
                                        // Its id is taken: the record was written by the try
                                        // whose answer was lost.
                                        Err(StoreError::Conflict(_)) => Ok(()),
                                        other => other,
                                    });
                                }
                                out
                            }
                            result => batch.iter().map(|_| result.clone()).collect(),
                        }
                    })
                }),
            ),
        }
    }
}

/// Writes the publishes of several callers as one; should that fail for a reason of the data
/// (not an outage), each is written on its own, so one bad publish cannot fail the others.
async fn publish_combined(
    db: &dyn Backend,
    batch: Vec<Vec<(NewEvent, Vec<Target>)>>,
) -> Vec<Result<Vec<Published>, StoreError>> {
    let sizes: Vec<usize> = batch.iter().map(Vec::len).collect();
    let all: Vec<(NewEvent, Vec<Target>)> = batch.into_iter().flatten().collect();
    match publish(db, &all).await {
        Ok(published) => per_caller(&sizes, published),
        Err(e @ StoreError::Unavailable(_)) => sizes.iter().map(|_| Err(e.clone())).collect(),
        Err(e) if sizes.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut out = Vec::with_capacity(sizes.len());
            let mut start = 0;
            for n in sizes {
                out.push(publish(db, &all[start..start + n]).await.and_then(|p| p.into_iter().collect()));
                start += n;
            }
            out
        }
    }
}

/// Splits a combined publish's per-event outcomes among its callers, in order (`sizes`: each
/// caller's number of events): a caller with a refused event is refused; the others get their
/// events' answers. Each caller takes exactly its own events, whatever they hold.
fn per_caller<P>(sizes: &[usize], outcomes: Vec<Result<P, StoreError>>) -> Vec<Result<Vec<P>, StoreError>> {
    let mut outcomes = outcomes.into_iter();
    sizes.iter().map(|&n| outcomes.by_ref().take(n).collect::<Vec<_>>().into_iter().collect()).collect()
}

/// One array per column of `rows` (all of the same width).
fn columns(rows: &[&[Value]]) -> Vec<Value> {
    let width = rows.first().map_or(0, |r| r.len());
    (0..width).map(|c| Value::Array(rows.iter().map(|r| r[c].clone()).collect())).collect()
}

/// Writes attempt records and their deliveries' updates, each column as an array; the attempts
/// are chained (the backend fills the links' arrays).
async fn write_records(db: &dyn Backend, batch: &[(AttemptRow, DeliveryDone)]) -> Result<(), StoreError> {
    let rows: Vec<&[Value]> = batch.iter().map(|((_, _, row), _)| row.as_slice()).collect();
    let mut attempts = columns(&rows);
    attempts.extend([Value::Null, Value::Null, Value::Null]);
    let entries = batch.iter().map(|((tenant, digest, _), _)| (tenant.clone(), digest.clone())).collect();
    let done: Vec<&[Value]> = batch.iter().map(|(_, d)| d.as_slice()).collect();
    db.write_with(
        by_index(vec![
            Stmt::chained_rows(
                "INSERT INTO attempts (id, delivery_seq, tenant_id, webhook_id, event_ref, event_type, \
                         attempt_no, success, http_status, error, response_ms, request_headers, dispatched_at, \
                         response_body, next_attempt_at, created_at, format, response_headers, chain_seq, prev_hash, \
                         hash) \
                         SELECT * FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), CAST($3 AS TEXT[]), \
                              CAST($4 AS TEXT[]), CAST($5 AS TEXT[]), CAST($6 AS TEXT[]), CAST($7 AS BIGINT[]), \
                              CAST($8 AS BIGINT[]), CAST($9 AS BIGINT[]), CAST($10 AS TEXT[]), CAST($11 AS BIGINT[]), \
                              CAST($12 AS TEXT[]), CAST($13 AS BIGINT[]), CAST($14 AS BYTEA[]), \
                              CAST($15 AS BIGINT[]), CAST($16 AS BIGINT[]), CAST($17 AS TEXT[]), CAST($18 AS TEXT[]), \
                              CAST($19 AS BIGINT[]), CAST($20 AS TEXT[]), CAST($21 AS TEXT[]))",
                attempts,
                Chain::Attempts,
                [18, 19, 20],
                entries,
            ),
            // The `ANY(ARRAY(…))` gives the planner an index condition on `seq`: joined
            // on the recordset alone it scanned all of a young `deliveries`.
            Stmt::new(
                "UPDATE deliveries d SET state = 'succeeded', attempts = d.attempts + 1, \
                         next_attempt_at = x.at, lease_until = NULL, leased_by = NULL, last_status = x.status, \
                         last_error = x.error, updated_at = x.at \
                         FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS TEXT[]), CAST($3 AS BIGINT[]), \
                              CAST($4 AS BIGINT[]), CAST($5 AS TEXT[])) AS x(seq, claimer, at, status, error) \
                         WHERE d.seq = x.seq AND d.leased_by = x.claimer AND d.seq = ANY(CAST($1 AS BIGINT[]))",
                columns(&done),
            ),
        ]),
        Durability::Background,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller refused (its token revoked) takes only its own events' outcomes: the callers
    /// after it get theirs, not its leftovers.
    #[test]
    fn each_caller_takes_its_own_outcomes() {
        let outcomes =
            vec![Err(StoreError::TokenNotLive), Err(StoreError::TokenNotLive), Ok("b"), Ok("c1"), Ok("c2"), Ok("d")];
        let split = per_caller(&[2, 1, 2, 1], outcomes);
        assert!(matches!(split[0], Err(StoreError::TokenNotLive)));
        assert_eq!(split[1].as_ref().unwrap(), &vec!["b"]);
        assert_eq!(split[2].as_ref().unwrap(), &vec!["c1", "c2"]);
        assert_eq!(split[3].as_ref().unwrap(), &vec!["d"]);
        // A refusal in the middle of a caller's events refuses that caller alone.
        let split = per_caller(&[1, 3, 1], vec![Ok(1), Ok(2), Err(StoreError::TokenNotLive), Ok(3), Ok(4)]);
        assert_eq!((split[0].as_ref().unwrap(), split[2].as_ref().unwrap()), (&vec![1], &vec![4]));
        assert!(split[1].is_err());
    }
}
