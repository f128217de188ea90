//! SQLite's publish: one statement per event (its payload bound as it is), then the deliveries
//! of all of them in multi-row statements.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::params;
use crate::store::events::{answer, deliveries_by_webhook, filtered_json, originals};
use crate::store::sql::{Stmt, Value};
use crate::store::{NewEvent, Published, Store, StoreError, Target};

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
    fn statement(&self, rows: Vec<Vec<Value>>) -> Stmt {
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
    fn chunks(rows: Vec<Vec<Value>>) -> Vec<Vec<Vec<Value>>> {
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
/// lease_until, leased_by)`. A delivery of an event that was not inserted (a repeat) is skipped,
/// and so is one to a webhook deleted meanwhile. The webhook's row decides between held and not:
/// one disabled since the publisher read it is held, never leased; one enabled since is pending.
macro_rules! sqlite_insert_deliveries {
    ($returning:literal) => {
        MultiRow::new(
            concat!(
                "INSERT INTO deliveries (tenant_id, event_id, webhook_id, ordering_key, state, attempts, \
                 next_attempt_at, lease_until, leased_by, created_at, updated_at) \
                 SELECT v.column1, v.column2, v.column3, v.column4, \
                 CASE WHEN w.is_active = 0 THEN 'held' WHEN v.column5 = 'held' THEN 'pending' ELSE v.column5 END, \
                 0, v.column6, \
                 CASE WHEN w.is_active = 1 THEN v.column7 END, CASE WHEN w.is_active = 1 THEN v.column8 END, \
                 v.column6, v.column6 FROM {values} AS v JOIN webhooks w ON w.id = v.column3 \
                 WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = v.column2)",
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

impl Store {
    pub(in crate::store) async fn publish_sqlite(
        &self,
        events: Vec<(NewEvent, Vec<Target>)>,
    ) -> Result<Vec<Published>, StoreError> {
        // SQLite: one statement per event (its payload bound as it is), then the deliveries of all
        // of them in multi-row statements (see `MultiRow`).
        let mut stmts = Vec::with_capacity(events.len() + 2);
        for (e, targets) in &events {
            // A repeated event_ref adds nothing (and changes no row).
            stmts.push(Stmt::new(
                "INSERT INTO events (id, tenant_id, event_ref, event_type, ordering_key, data, delivery_count, \
                 created_at, filtered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (tenant_id, event_ref) DO NOTHING",
                params![
                    e.id,
                    e.tenant_id.as_str(),
                    &e.event_ref,
                    &e.event_type,
                    e.ordering_key.clone(),
                    e.data.to_vec(),
                    targets.len() as i64,
                    e.created_at,
                    filtered_json(e)
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
            let leased = chunk.iter().any(|r| r[7] != Value::Null);
            let sql = if leased { &SQLITE_INSERT_DELIVERIES_RETURNING } else { &SQLITE_INSERT_DELIVERIES };
            stmts.push(sql.statement(chunk));
        }
        let results = self.db.write(stmts).await?;
        // The seqs of the deliveries leased to the publisher, to hand them over.
        let mut leased: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
        let rows = results[events.len()..].iter().flat_map(|r| &r.rows);
        for row in rows.filter(|r| r.text("state").is_ok_and(|s| s == "leased")) {
            leased.entry(row.uuid("event_id")?).or_default().push((row.uuid("webhook_id")?, row.int("seq")?));
        }
        let inserted: HashSet<Uuid> =
            events.iter().zip(&results).filter(|(_, r)| r.affected > 0).map(|((e, _), _)| e.id).collect();
        let repeats = events.iter().map(|(e, _)| e).filter(|e| !inserted.contains(&e.id));
        let originals = originals(&*self.db, repeats).await?;
        events.iter().map(|(e, targets)| answer(e, targets, &inserted, &mut leased, &originals)).collect()
    }
}
