//! PostgreSQL through a pool of `tokio-postgres` connections (prepared statements cached per
//! connection), with writes group-committed and pipelined by a few writer tasks. Several `tocsin serve` processes may share one database: migrations take an
//! advisory lock, and deliveries are claimed with `FOR UPDATE SKIP LOCKED`.

pub mod batch;
mod pipeline;
pub mod tls;

use std::error::Error as StdError;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::backend::{Backend, Dialect, Durability};
use super::chain::{Chain, Head, Heads, GENESIS};
use super::sql::{Columns, Row, Stmt, StmtResult, Value};
use super::StoreError;
use pipeline::{run_committed, send_begin, Open};

const POOL_SIZE: usize = 16;
/// Arbitrary constant naming Tocsin's migration lock.
const MIGRATION_LOCK: i64 = 0x7f0c_5150;

type Reply = tokio::sync::oneshot::Sender<Result<Vec<StmtResult>, StoreError>>;
type Job = (Vec<Stmt>, Durability, Reply);

/// Makes the transaction's commit asynchronous (PostgreSQL's own deferred durability: the commit
/// does not wait for the WAL flush; a later synchronous commit flushes it in order).
static DEFER_COMMIT: Stmt = Stmt::constant("SELECT set_config('synchronous_commit', 'off', true)");

/// Keeps the statements between [`INDEX_PLANS`] and [`USUAL_PLANS`] off sequential scans, on one
/// generic plan each. A prepared statement's plan is made generic after five runs and kept until
/// its tables are next analyzed: made while a new database's `deliveries` held twenty rows, the
/// batched success update scanned the whole table on every run (1.9 ms for 15 rows at 4,700) long
/// after it had grown. Planning every run afresh (`force_custom_plan`) cured that but cost more
/// than the scans (database CPU per delivery 0.23 → 0.34 ms in scenario (f16)). These statements
/// find a few rows by key, so an index is always their right plan (the hot writes of `batch.rs`,
/// and the chains' write-back, which counts a chain's new entries: [`write_in`]), and the generic
/// plan made with sequential scans off is one: left to choose, PostgreSQL went on planning the
/// publishes' deliveries insert for one run in four (its arrays' lengths vary), which cost a
/// tenth of the database's CPU in (f16) with the chains' lock below (docs/performance.md s28).
/// Set back after them to what they were (an operator's own settings included), kept meanwhile
/// in `tocsin.*` placeholders: the transaction may carry other callers' writes. The settings are
/// the transaction's own (`set_config(…, true)`). `plan_cache_mode` needs PostgreSQL 12.
pub(super) static INDEX_PLANS: Stmt = Stmt::constant(
    "SELECT set_config('tocsin.enable_seqscan', current_setting('enable_seqscan'), true), \
     set_config('tocsin.plan_cache_mode', current_setting('plan_cache_mode'), true), \
     set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)",
);
pub(super) static USUAL_PLANS: Stmt = Stmt::constant(
    "SELECT set_config('enable_seqscan', current_setting('tocsin.enable_seqscan'), true), \
     set_config('plan_cache_mode', current_setting('tocsin.plan_cache_mode'), true)",
);

/// The chains' heads this process has seen (see [`begin_and_link`]).
type KnownHeads = std::sync::Mutex<std::collections::HashSet<(Chain, String)>>;

/// PostgreSQL 12 (`server_version_num`): the first with `plan_cache_mode`.
const MIN_VERSION: i32 = 120_000;

/// Why a server of this `server_version_num` cannot be used, if it cannot.
fn too_old(version: i32) -> Option<String> {
    // 10 and later number their releases major.minor (100023 is 10.23); before, 9.6.24 was 90624.
    let name = if version >= 100_000 {
        format!("{}.{}", version / 10_000, version % 10_000)
    } else {
        format!("{}.{}.{}", version / 10_000, version % 10_000 / 100, version % 100)
    };
    (version < MIN_VERSION).then(|| format!("PostgreSQL {name} is too old: Tocsin needs PostgreSQL 12 or later"))
}

/// Concurrent group-committing writers (each takes one pooled connection while it writes).
const WRITERS: usize = 4;
/// Most writes folded into one transaction.
const MAX_GROUP: usize = 256;

pub struct PgBackend {
    pool: Pool,
    /// Signs the chains' heads the writers move, once the master key is loaded.
    signer: std::sync::Arc<std::sync::OnceLock<crate::crypto::Cipher>>,
    /// Writes queue here; the writer tasks commit them in groups (one commit, one fsync, for many
    /// callers), each caller answered after the commit that made its write durable.
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

/// Runs the writes in one transaction and commits; returns the results of their statements.
/// Chained inserts are linked in place (a retry links them again).
async fn commit(
    pool: &Pool,
    writes: &mut [&mut [Stmt]],
    durability: Durability,
    signer: Option<&crate::crypto::Cipher>,
    known: &KnownHeads,
) -> Result<Vec<StmtResult>, StoreError> {
    let started = std::time::Instant::now();
    let mut open = Open::new(pool.get().await.map_err(pool_err)?);
    let result = write_in(open.client(), writes, durability, signer, known).await;
    open.end(&result).await;
    crate::metrics::commit("postgres", started.elapsed());
    result
}

/// The body of [`commit`]. Writes without chained inserts take one round trip
/// ([`run_committed`]); with chained inserts, two: `BEGIN` with the heads' lock, then the
/// statements with `COMMIT` (the heads' write-back checks in the same statement that every
/// chained insert wrote all its rows, [`crate::store::chain::Heads::write_back_checked`]).
async fn write_in(
    client: &ClientWrapper,
    writes: &mut [&mut [Stmt]],
    durability: Durability,
    signer: Option<&crate::crypto::Cipher>,
    known: &KnownHeads,
) -> Result<Vec<StmtResult>, StoreError> {
    let deferred = !durability.is_synced();
    let chained = writes.iter().flat_map(|w| w.iter()).any(|s| s.chain.is_some());
    let heads = if chained { begin_and_link(client, writes, signer, known).await? } else { Vec::new() };
    let given: Vec<&Stmt> = writes.iter().flat_map(|s| s.iter()).collect();
    let mut all: Vec<&Stmt> = deferred.then_some(&DEFER_COMMIT).into_iter().collect();
    all.extend(&given);
    // The write-back counts the chain's entries by index (see [`INDEX_PLANS`]).
    let back: Vec<&Stmt> = if heads.is_empty() {
        Vec::new()
    } else {
        std::iter::once(&INDEX_PLANS).chain(&heads).chain([&USUAL_PLANS]).collect()
    };
    all.extend(&back);
    let mut results = run_committed(client, &all, !chained).await?;
    results.truncate(results.len() - back.len());
    if deferred {
        results.remove(0);
    }
    Ok(results)
}

/// Begins the transaction and links the chained inserts among the writes ([`crate::store::chain`])
/// in place: locks the
/// heads of their chains (in one order, so that two transactions cannot wait on each other),
/// reads them, links, and returns the heads to write back. Several servers may append to one
/// chain: the lock makes them take turns.
///
/// A chain's head row is created by the first transaction that appends to it, and is never
/// deleted: once this process has seen a head, it only locks it. Creating it when it exists
/// (`INSERT … ON CONFLICT DO NOTHING`) cost the database ~35 µs per transaction of attempt
/// records (scenario (f16), docs/performance.md s26).
async fn begin_and_link(
    client: &ClientWrapper,
    writes: &mut [&mut [Stmt]],
    signer: Option<&crate::crypto::Cipher>,
    known: &KnownHeads,
) -> Result<Vec<Stmt>, StoreError> {
    let mut keys: Vec<(Chain, String)> = Vec::new();
    for s in writes.iter().flat_map(|w| w.iter()) {
        if let Some(c) = &s.chain {
            keys.extend(c.keys(s).map(|(c, t)| (c, t.to_string())));
        }
    }
    keys.sort();
    keys.dedup();
    let all_known = known.lock().is_ok_and(|k| keys.iter().all(|key| k.contains(key)));
    let wanted = keys.len();
    // The keys as two arrays: chains and tenants.
    let (chains, tenants): (Vec<&str>, Vec<&str>) = keys.iter().map(|(c, t)| (c.as_str(), t.as_str())).unzip();
    // `BEGIN` travels with the lock.
    let begin = send_begin(client).await;
    // One head (a transaction of one tenant's records: the usual case) is locked by a statement
    // of its own. PostgreSQL planned the arrays' statement afresh on every run (a plan for an
    // array of unknown length costs more than one for the array at hand), which cost it more
    // than running it (docs/performance.md s28).
    let lock = client
        .prepare_cached(if wanted == 1 {
            "SELECT h.chain, h.tenant_id, h.seq, h.hash FROM chain_heads h \
             WHERE h.chain = $1 AND h.tenant_id = $2 FOR UPDATE OF h"
        } else {
            "SELECT h.chain, h.tenant_id, h.seq, h.hash FROM chain_heads h \
             JOIN unnest(CAST($1 AS TEXT[]), CAST($2 AS TEXT[])) AS k(chain, tenant_id) \
             ON h.chain = k.chain AND h.tenant_id = k.tenant_id ORDER BY h.chain, h.tenant_id FOR UPDATE OF h"
        })
        .await
        .map_err(pg_err)?;
    let (chain, tenant) = (chains.first().copied().unwrap_or_default(), tenants.first().copied().unwrap_or_default());
    let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
        if wanted == 1 { [&chain, &tenant] } else { [&chains, &tenants] };
    let mut rows = Vec::new();
    if all_known {
        let lock = async { client.query(&lock, &lock_params).await.map_err(pg_err) };
        rows = futures_util::future::try_join(begin, lock).await?.1;
    } else {
        begin.await?;
    }
    // A head not seen yet (or, should one have been removed by hand, missing): created first.
    if rows.len() != wanted {
        rows = create_and_lock(client, &chains, &tenants, (&lock, &lock_params)).await?;
        if let Ok(mut k) = known.lock() {
            k.extend(keys);
        }
    }
    let mut heads = Heads::default();
    for row in rows {
        let chain: String = row.try_get(0).map_err(pg_err)?;
        let chain = Chain::parse(&chain).ok_or_else(|| StoreError::Corrupt(format!("chain_heads: chain {chain}")))?;
        let tenant: String = row.try_get(1).map_err(pg_err)?;
        heads.load(
            chain,
            &tenant,
            Head { seq: row.try_get(2).map_err(pg_err)?, hash: row.try_get(3).map_err(pg_err)? },
        );
    }
    for s in writes.iter_mut().flat_map(|w| w.iter_mut()) {
        heads.link(s)?;
    }
    Ok(heads.write_back_checked(signer))
}

/// Creates the heads among `keys` (chains, tenants) that do not exist yet, then locks and reads
/// them all (`lock` run with its parameters).
async fn create_and_lock(
    client: &ClientWrapper,
    chains: &[&str],
    tenants: &[&str],
    (lock, lock_params): (&tokio_postgres::Statement, &[&(dyn tokio_postgres::types::ToSql + Sync)]),
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let create = client
        .prepare_cached(
            "INSERT INTO chain_heads (chain, tenant_id, seq, hash) SELECT k.chain, k.tenant_id, 0, $3 \
             FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS TEXT[])) AS k(chain, tenant_id) \
             ORDER BY k.chain, k.tenant_id ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg_err)?;
    let genesis = GENESIS.to_string();
    let (_, rows) = futures_util::future::try_join(
        client.execute(&create, &[&chains, &tenants, &genesis]),
        client.query(lock, lock_params),
    )
    .await
    .map_err(pg_err)?;
    Ok(rows)
}

/// Commits a group of writes in one transaction; if any fails, each is retried on its own so a
/// bad write cannot take the others down.
async fn write_group(pool: &Pool, mut group: Vec<Job>, signer: Option<&crate::crypto::Cipher>, known: &KnownHeads) {
    if group.len() == 1 {
        let (mut stmts, durability, reply) = group.into_iter().next().expect("one write");
        reply.send(commit(pool, &mut [&mut stmts], durability, signer, known).await).ok();
        return;
    }
    // One synced write makes the group's commit synced.
    let durability =
        if group.iter().any(|(_, d, _)| d.is_synced()) { Durability::Synced } else { Durability::Deferred };
    let mut writes: Vec<&mut [Stmt]> = group.iter_mut().map(|(s, _, _)| s.as_mut_slice()).collect();
    match commit(pool, &mut writes, durability, signer, known).await {
        Ok(results) => {
            let mut results = results.into_iter();
            for (stmts, _, reply) in group {
                reply.send(Ok(results.by_ref().take(stmts.len()).collect())).ok();
            }
        }
        // Rows that did not read back (a bug, not data): the group may have committed, so its
        // writes are not run again.
        Err(e @ StoreError::Corrupt(_)) => {
            for (_, _, reply) in group {
                reply.send(Err(e.clone())).ok();
            }
        }
        Err(_) => {
            for (mut stmts, durability, reply) in group {
                reply.send(commit(pool, &mut [&mut stmts], durability, signer, known).await).ok();
            }
        }
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code.starts_with("23") {
            return StoreError::Conflict(db.message().to_string());
        }
        // Not the statement's fault, and over when the server is back: the server shutting down
        // or starting (57P01-57P03), connections lost or refused (08), out of resources such as
        // connections (53), a serialization failure or deadlock (40001, 40P01).
        if ["57", "08", "53"].iter().any(|class| code.starts_with(class)) || matches!(code, "40001" | "40P01") {
            return StoreError::Unavailable(format!("{code}: {}", db.message()));
        }
        return StoreError::Database(format!("{code}: {}", db.message()));
    }
    StoreError::Unavailable(crate::domain::text::error_chain(&e))
}

/// A connection that could not be had: PostgreSQL's own reason (a wrong password, a database
/// that does not exist) rather than the pool's "error creating a new object: db error".
fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => match pg_err(e) {
            StoreError::Database(why) | StoreError::Unavailable(why) if why.contains("invalid peer certificate") => {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL: its TLS certificate is not trusted ({why}); give its CA with \
                     TOCSIN_DATABASE_CA_FILE (or sslrootcert= in the URL)"
                ))
            }
            StoreError::Database(why) | StoreError::Unavailable(why) => {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL: {why}"))
            }
            other => other,
        },
        other => StoreError::Unavailable(format!("PostgreSQL pool: {}", crate::domain::text::error_chain(&other))),
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(v) => v.to_sql(ty, out),
            Value::Bytes(v) => v.to_sql(ty, out),
            // Each element encoded as its own value, with the array's element type.
            Value::Array(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Rows of one result, sharing its column names.
fn to_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else { return Ok(Vec::new()) };
    let columns: Columns = first.columns().iter().map(|c| Box::from(c.name())).collect();
    rows.iter().map(|r| to_row(r, &columns)).collect()
}

fn to_row(row: &tokio_postgres::Row, columns: &Columns) -> Result<Row, StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let bad = |e: tokio_postgres::Error| StoreError::Corrupt(format!("column {}: {e}", col.name()));
        let v = match *col.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Value::Int),
            Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(bad)?.map(|v| Value::Int(v.into())),
            Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(bad)?.map(|v| Value::Int(v.into())),
            Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(bad)?.map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(bad)?.map(|v| Value::Int(v as i64)),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map_err(bad)?.map(Value::Bytes),
            _ => row.try_get::<_, Option<String>>(i).map_err(bad)?.map(Value::Text),
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row::new(columns.clone(), values))
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl PgBackend {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = tls::parse(url).map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let tls = tls::client_config(&options).map_err(StoreError::Unavailable)?;
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match tls {
            None => Manager::from_config(options.config, NoTls, recycling),
            Some(tls) => {
                Manager::from_config(options.config, tokio_postgres_rustls::MakeRustlsConnect::new(tls), recycling)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // Fail fast on a wrong address or password, or a server too old for the hot writes'
        // settings (`plan_cache_mode`, [`INDEX_PLANS`]), rather than at the first publish.
        let client = pool.get().await.map_err(pool_err)?;
        let version: i32 = client
            .query_one("SELECT CAST(current_setting('server_version_num') AS INTEGER)", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        if let Some(refusal) = too_old(version) {
            return Err(StoreError::Database(refusal));
        }
        drop(client);
        let (jobs, rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let signer = std::sync::Arc::new(std::sync::OnceLock::new());
        let known = std::sync::Arc::new(KnownHeads::default());
        for _ in 0..WRITERS {
            let (pool, rx, signer, known) = (pool.clone(), rx.clone(), signer.clone(), known.clone());
            tokio::spawn(async move {
                loop {
                    let group = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut group = vec![first];
                        while group.len() < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(job) => group.push(job),
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    write_group(&pool, group, signer.get(), &known).await;
                }
            });
        }
        Ok(Self { pool, signer, jobs })
    }
}

#[async_trait]
impl Backend for PgBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn sign_heads_with(&self, cipher: crate::crypto::Cipher) {
        self.signer.set(cipher).ok();
    }

    async fn query(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        let rows = client.query(&stmt, &refs(&params)).await.map_err(pg_err)?;
        to_rows(&rows)
    }

    /// The statement in a transaction of its own with [`INDEX_PLANS`], in one round trip: a
    /// generic plan made while the table was tiny scanned it whole once it had grown
    /// (`tests/api/plans.rs`, with ordered deliveries, which are claimed).
    async fn query_by_key(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let mut open = Open::new(self.pool.get().await.map_err(pool_err)?);
        let read = Stmt::new(sql, params);
        let result = run_committed(open.client(), &[&INDEX_PLANS, &read], true).await;
        open.end(&result).await;
        Ok(result?.pop().map(|r| r.rows).unwrap_or_default())
    }

    async fn write_with(&self, stmts: Vec<Stmt>, durability: Durability) -> Result<Vec<StmtResult>, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send((stmts, durability, tx))
            .map_err(|_| StoreError::Unavailable("the PostgreSQL writers have stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the PostgreSQL writers have stopped".into()))?
    }

    async fn migrate(&self, migrations: &'static [(i64, &'static str)]) -> Result<Vec<i64>, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let mut applied = Vec::new();
        for (version, sql) in migrations {
            let tx = client.transaction().await.map_err(pg_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_err)?;
            // Without the setting, every start (and every CLI command) logs PostgreSQL's notice
            // that the table already exists.
            tx.batch_execute(
                "SET LOCAL client_min_messages = warning; \
                 CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await
            .map_err(pg_err)?;
            let done = tx
                .query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])
                .await
                .map_err(pg_err)?
                .is_some();
            if !done {
                tx.batch_execute(sql)
                    .await
                    .map_err(|e| StoreError::Database(format!("migration {version} failed: {e}")))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &crate::domain::time::now_ms()],
                )
                .await
                .map_err(pg_err)?;
                applied.push(*version);
            }
            tx.commit().await.map_err(pg_err)?;
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server older than 12 is refused at start-up, named as its operator knows it.
    #[test]
    fn servers_older_than_12_are_refused_by_name() {
        assert_eq!(
            too_old(110_022).as_deref(),
            Some("PostgreSQL 11.22 is too old: Tocsin needs PostgreSQL 12 or later")
        );
        assert_eq!(
            too_old(90_624).as_deref(),
            Some("PostgreSQL 9.6.24 is too old: Tocsin needs PostgreSQL 12 or later")
        );
        assert_eq!(too_old(120_000), None);
        assert_eq!(too_old(150_004), None);
    }

    /// A connection ended by the server's administrator (57P01, as during PostgreSQL's shutdown)
    /// is an outage to retry (503), not an internal error.
    #[tokio::test]
    #[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
    async fn an_administrator_shutdown_is_an_outage() {
        let Ok(url) = std::env::var("TOCSIN_TEST_DATABASE_URL") else { return };
        let (victim, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
        let err = victim.query_one("SELECT 1", &[]).await.expect_err("the connection was terminated");
        assert!(matches!(pg_err(err), StoreError::Unavailable(_)));
    }

    /// A write sent in one round trip (`BEGIN`, statements, `COMMIT`) is all or nothing: a
    /// statement PostgreSQL refuses, or one whose parameters cannot even be encoded (then
    /// `COMMIT` is never sent), leaves nothing behind, and no pooled connection is left in a
    /// transaction (every later write, on each of the pool's connections, commits).
    #[tokio::test]
    #[cfg_attr(not(pg_tests), ignore = "PostgreSQL: set TOCSIN_TEST_DATABASE_URL")]
    async fn a_write_in_one_round_trip_is_all_or_nothing() {
        let Ok(url) = std::env::var("TOCSIN_TEST_DATABASE_URL") else { return };
        let db = PgBackend::connect(&url).await.unwrap();
        db.write(vec![
            Stmt::constant("DROP TABLE IF EXISTS one_trip_test"),
            Stmt::constant("CREATE TABLE one_trip_test (id INT PRIMARY KEY)"),
        ])
        .await
        .unwrap();
        let insert = |id: i64| Stmt::new("INSERT INTO one_trip_test (id) VALUES ($1)", vec![Value::Int(id)]);
        let count = || async {
            db.query("SELECT COUNT(*) AS n FROM one_trip_test", Vec::new()).await.unwrap()[0].int("n").unwrap()
        };
        // Refused by PostgreSQL: the second insert repeats the key.
        assert!(db.write(vec![insert(1), insert(1)]).await.is_err());
        // Not encodable: a value beyond INT's range.
        assert!(db.write(vec![insert(2), insert(i64::MAX), insert(3)]).await.is_err());
        assert_eq!(count().await, 0);
        let writes = (10..10 + 2 * POOL_SIZE as i64).map(|id| db.write(vec![insert(id)]));
        for result in futures_util::future::join_all(writes).await {
            result.unwrap();
        }
        assert_eq!(count().await, 2 * POOL_SIZE as i64);
        db.write(vec![Stmt::constant("DROP TABLE one_trip_test")]).await.unwrap();
    }
}
