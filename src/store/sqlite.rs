//! Embedded SQLite in WAL mode.
//!
//! All writes go through ONE writer thread that drains whatever writes are queued into a single
//! `BEGIN IMMEDIATE` transaction (group commit); a failing write is retried alone so it does not
//! undo the others. The writer commits without waiting for the disk; a synced write (see
//! [`Durability`]) is answered only once a second thread, the syncer, has synced the WAL past its
//! commit, while the writer goes on with the next group. Reads use a small pool of connections
//! on the blocking thread pool.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::backend::{Backend, Dialect, Durability};
use super::sql::{Row, Stmt, StmtResult, Value};
use super::StoreError;

/// Most writes folded into one transaction.
const MAX_GROUP: usize = 512;
const READ_POOL: usize = 8;
/// How long a group of background writes waits for more writes before it commits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// ... in slices of this length, and no longer once a slice brought none (see [`gather`]).
const GATHER_GAP: std::time::Duration = std::time::Duration::from_micros(250);
/// Groups of background writes at least this large commit at once.
const GATHER_UP_TO: usize = 64;
/// The WAL size past which the writer helps the checkpointer catch up, so that the WAL starts
/// again from its beginning (see [`checkpoint_loop`]).
const WAL_CATCH_UP_BYTES: i64 = 32 << 20;
/// The page size of a new database file (a file keeps the size it was made with). SQLite's
/// default is 4 KiB; events (1 KiB payloads) and attempt records (half a KiB of headers) fill a
/// 4 KiB page with three or four rows, so every few inserts split a page, and each group commit
/// writes the page headers, and the last, partly filled page, of every table and index it
/// touched. With 16 KiB pages the checkpointer copies a third less, and the writer spends less
/// on page splits (see docs/performance.md).
const PAGE_SIZE: u32 = 16384;

type Reply = oneshot::Sender<Result<Vec<StmtResult>, StoreError>>;

/// A caller whose write is committed, waiting for the WAL to be synced past the commit: called
/// with the sync's outcome.
type AwaitingSync = Box<dyn FnOnce(Result<(), String>) + Send>;

enum Job {
    Write(Vec<Stmt>, Durability, Reply),
    Migrate(&'static [(i64, &'static str)], oneshot::Sender<Result<Vec<i64>, StoreError>>),
}

impl Job {
    fn is_background(&self) -> bool {
        matches!(self, Job::Write(_, Durability::Background, _))
    }
}

pub struct SqliteBackend {
    writer: Mutex<mpsc::Sender<Job>>,
    /// Dropped with the backend: ends the checkpoint thread.
    _stop_checkpoints: Mutex<mpsc::Sender<()>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// At most READ_POOL reads at once, each on a kept connection (opening one per read would
    /// parse the schema every time).
    reading: Arc<tokio::sync::Semaphore>,
    path: std::path::PathBuf,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(e.to_string())
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    // Only takes effect on a file not yet written (and before it is put in WAL mode).
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}")).map_err(db_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;
         PRAGMA journal_size_limit = 134217728;",
    )
    .map_err(db_err)?;
    // Plans must not depend on bound values: otherwise a statement whose planner looked at one
    // (`LIMIT $5` of the claim) is compiled again whenever that value changes.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        })
    }
}

fn to_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// Per statement text (by address and length: texts are `&'static str`), the `n` of the `$n` at
/// each parameter index.
type ParamOrders = std::collections::HashMap<(usize, usize), std::rc::Rc<[usize]>>;

thread_local! {
    static PARAM_ORDER: std::cell::RefCell<ParamOrders> = Default::default();
}

/// Runs one statement: binds `$n` parameters and collects any rows.
fn run(conn: &Connection, stmt: &Stmt) -> Result<StmtResult, StoreError> {
    let mut prepared = conn.prepare_cached(stmt.sql).map_err(db_err)?;
    // SQLite numbers `$n` parameters in their order of first use, not by n: which value goes to
    // which index is read from the statement once per text and thread (each name lookup walks the
    // statement's list of names: per call, a multi-row statement's thousands of parameters would
    // cost their square).
    let order = PARAM_ORDER.with(|cache| -> Result<std::rc::Rc<[usize]>, StoreError> {
        let key = (stmt.sql.as_ptr() as usize, stmt.sql.len());
        if let Some(order) = cache.borrow().get(&key) {
            return Ok(order.clone());
        }
        let order: std::rc::Rc<[usize]> = (1..=prepared.parameter_count())
            .map(|idx| {
                prepared
                    .parameter_name(idx)
                    .and_then(|name| name.strip_prefix('$')?.parse::<usize>().ok())
                    .ok_or_else(|| StoreError::Database(format!("statement parameter {idx} is not $n: {}", stmt.sql)))
            })
            .collect::<Result<_, _>>()?;
        cache.borrow_mut().insert(key, order.clone());
        Ok(order)
    })?;
    for (idx, n) in order.iter().enumerate() {
        let value = stmt
            .params
            .get(n.wrapping_sub(1))
            .ok_or_else(|| StoreError::Database(format!("statement parameter ${n} has no value: {}", stmt.sql)))?;
        prepared.raw_bind_parameter(idx + 1, value).map_err(db_err)?;
    }
    let columns = prepared.column_count();
    let mut out = StmtResult::default();
    let mut rows = prepared.raw_query();
    while let Some(row) = rows.next().map_err(db_err)? {
        let mut values = Vec::with_capacity(columns);
        for c in 0..columns {
            values.push(to_value(row.get_ref(c).map_err(db_err)?));
        }
        out.rows.push(Row(values));
    }
    drop(rows);
    out.affected = conn.changes();
    Ok(out)
}

fn run_all(conn: &Connection, stmts: &[Stmt]) -> Result<Vec<StmtResult>, StoreError> {
    stmts.iter().map(|s| run(conn, s)).collect()
}

/// The writer thread: group commit of queued writes. It commits without waiting for the disk
/// (`synchronous=NORMAL`) and answers deferred writes at once; synced writes (and migrations)
/// are handed to the syncer, which answers them once the WAL holding their commit is on disk.
/// So a group that must be durable never stalls the claims and records behind it for the
/// length of an fsync, and syncs that overlap are made once.
fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    catch_up: Arc<AtomicBool>,
    syncer: mpsc::Sender<AwaitingSync>,
) {
    let after_sync = |job: AwaitingSync| {
        if let Err(mpsc::SendError(job)) = syncer.send(job) {
            job(Err("the SQLite syncer thread has stopped".into()));
        }
    };
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A small group of background writes alone waits a moment for company: each commit
        // writes every page it touched to the WAL, so larger groups write fewer pages per record.
        // It stops waiting as soon as the writes stop coming (a gap), so a quiet server does not
        // hold its records back.
        gather(&jobs, &mut batch);
        let mut writes = Vec::new();
        let mut migrations = Vec::new();
        for job in batch {
            match job {
                Job::Write(stmts, durability, reply) => writes.push((stmts, durability, reply)),
                Job::Migrate(list, reply) => migrations.push((list, reply)),
            }
        }
        for (list, reply) in migrations {
            match migrate(&conn, list) {
                Ok(applied) => after_sync(Box::new(move |synced: Result<(), String>| {
                    let _ = reply.send(synced.map(|()| applied).map_err(StoreError::Unavailable));
                })),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        // Deferred writes (claims, releases: someone waits on them, and none needs a sync)
        // commit ahead of the others, in a transaction of their own: a batch publish's thousands
        // of inserts would otherwise hold up the claim that keeps a webhook's queue from running
        // dry. Nothing in one batch waits on another write of it, so any order is one the
        // callers could have seen; the attempt records keep the order they came in (the
        // breaker counts consecutive failures).
        let (awaited, rest): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, d, _)| *d == Durability::Deferred);
        for group in [awaited, rest].into_iter().filter(|g| !g.is_empty()) {
            let stmts: Vec<&[Stmt]> = group.iter().map(|(s, _, _)| s.as_slice()).collect();
            let results = commit_group(&conn, &stmts);
            for ((_, durability, reply), result) in group.into_iter().zip(results) {
                match result {
                    Ok(rows) if durability.is_synced() => after_sync(Box::new(move |synced: Result<(), String>| {
                        let _ = reply.send(synced.map(|()| rows).map_err(StoreError::Unavailable));
                    })),
                    other => {
                        let _ = reply.send(other);
                    }
                }
            }
        }
        if catch_up.swap(false, Ordering::Relaxed) {
            // Between two groups no write is open, so this checkpoint can copy the WAL's last
            // frames too (the background one did the rest); the next write then restarts it.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }
}

/// Adds to a group of background writes what arrives within [`GATHER`], in slices of
/// [`GATHER_GAP`], until a slice brings nothing, the group has [`GATHER_UP_TO`] writes, or a
/// write that is not background arrives (someone waits on it: it commits at once).
///
/// The thread sleeps through each slice and then takes what came, instead of waiting on the
/// channel: a waiting receiver is woken by every send (a futex wake for the sender, a context
/// switch for this thread), one per attempt record under load; a sleeping one by its timer only.
/// The cost is a write that is not background arriving during a slice, which waits for the
/// slice's end (at most `GATHER_GAP`).
fn gather(jobs: &mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    let until = std::time::Instant::now() + GATHER;
    let mut background_only = batch.iter().all(Job::is_background);
    while background_only && batch.len() < GATHER_UP_TO {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(GATHER_GAP));
        let before = batch.len();
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => {
                    background_only &= job.is_background();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        if batch.len() == before {
            return;
        }
    }
}

/// The syncer thread: makes committed writes durable and answers them. One `fdatasync` of the
/// WAL covers every commit written before it, so all the writes waiting when it starts are
/// answered by it.
///
/// Why syncing the WAL file from here is enough: commits are appended to the WAL in order and
/// recovery keeps the longest valid prefix of it, so once the file is synced past a commit, that
/// commit survives a power loss. The WAL is only overwritten from its start after a checkpoint
/// copied all of it into the database file, and such a checkpoint syncs the WAL before it copies
/// and the database file after (SQLite does so at `synchronous=NORMAL`): a commit whose frames
/// were overwritten before this thread got to them is already durable in the database file.
fn syncer_loop(wal_path: std::path::PathBuf, waiting: mpsc::Receiver<AwaitingSync>) {
    let mut wal: Option<(std::fs::File, u64)> = None;
    while let Ok(first) = waiting.recv() {
        let mut done = vec![first];
        done.extend(waiting.try_iter());
        let synced = sync_wal(&wal_path, &mut wal).map_err(|e| format!("cannot sync {}: {e}", wal_path.display()));
        if let Err(e) = &synced {
            tracing::error!(error = %e, "commits could not be made durable; their callers are told");
        }
        for answer in done {
            answer(synced.clone());
        }
    }
}

/// Syncs the WAL file's data, (re)opening it when it is not the file open last time (SQLite
/// deletes the WAL when its last connection closes, and creates it anew).
fn sync_wal(path: &Path, wal: &mut Option<(std::fs::File, u64)>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path)?.ino();
    let file = match wal.take() {
        Some((file, open)) if open == inode => file,
        _ => std::fs::File::open(path)?,
    };
    let synced = file.sync_data();
    *wal = Some((file, inode));
    synced
}

/// Runs a statement without parameters from the statement cache (no parsing per call).
fn exec_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(db_err)
}

/// Copies the WAL into the database file in the background (PASSIVE: never blocks a writer);
/// ends when the store is dropped.
///
/// The WAL starts again from its beginning only when a write begins after a checkpoint copied
/// all of it. Under a steady stream of writes this one never does (the writer appends while it
/// copies), so the file would grow without bound, and every new page of it costs the kernel an
/// allocation. When it is past [`WAL_CATCH_UP_BYTES`], the writer is asked to finish the copy
/// between two groups (`catch_up`).
///
/// A checkpoint that copies the WAL to its end syncs the database file, and that sync writes out
/// every page this thread copied since the last one (tens of MiB under load: 20-40 ms, during
/// which the writer would stall and no claim or record could commit). So before asking, this
/// thread syncs the file itself and copies what was appended meanwhile, and the writer's sync
/// finds only those pages and its own.
fn checkpoint_loop(
    conn: Connection,
    db_file: Option<std::fs::File>,
    stop: mpsc::Receiver<()>,
    wal_limit: i64,
    catch_up: Arc<AtomicBool>,
) {
    loop {
        match stop.recv_timeout(std::time::Duration::from_millis(250)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Its row: busy, frames in the WAL, frames copied.
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) if frames > wal_limit => {
                        if let Some(Err(e)) = db_file.as_ref().map(std::fs::File::sync_data) {
                            tracing::warn!(error = %e, "cannot sync the database file ahead of a checkpoint");
                        }
                        // What the writer appended during that sync is copied here too, so the
                        // writer's own checkpoint has only a few frames left to copy and sync.
                        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                        }
                        catch_up.store(true, Ordering::Relaxed)
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
                }
            }
            _ => return,
        }
    }
}

/// Runs one write in a transaction of its own.
fn commit_one(conn: &Connection, stmts: &[Stmt]) -> Result<Vec<StmtResult>, StoreError> {
    exec_cached(conn, "BEGIN IMMEDIATE")?;
    match run_all(conn, stmts) {
        Ok(r) => match exec_cached(conn, "COMMIT") {
            Ok(()) => Ok(r),
            Err(e) => {
                let _ = exec_cached(conn, "ROLLBACK");
                Err(StoreError::Unavailable(format!("commit failed: {e}")))
            }
        },
        Err(e) => {
            let _ = exec_cached(conn, "ROLLBACK");
            Err(e)
        }
    }
}

/// Runs all queued writes in one transaction and commits once. Should one of them fail (rare:
/// writes are built not to), the group is rolled back and each write is run on its own, so a
/// bad write never takes the others down. No savepoints: their sub-journal costs on every write.
fn commit_group(conn: &Connection, writes: &[&[Stmt]]) -> Vec<Result<Vec<StmtResult>, StoreError>> {
    if writes.len() == 1 {
        return vec![commit_one(conn, writes[0])];
    }
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        let msg = e.to_string();
        return writes.iter().map(|_| Err(StoreError::Unavailable(msg.clone()))).collect();
    }
    let mut results = Vec::with_capacity(writes.len());
    for stmts in writes {
        match run_all(conn, stmts) {
            Ok(r) => results.push(Ok(r)),
            Err(_) => {
                let _ = exec_cached(conn, "ROLLBACK");
                return writes.iter().map(|w| commit_one(conn, w)).collect();
            }
        }
    }
    if let Err(e) = exec_cached(conn, "COMMIT") {
        let _ = exec_cached(conn, "ROLLBACK");
        let msg = format!("commit failed: {e}");
        return writes.iter().map(|_| Err(StoreError::Unavailable(msg.clone()))).collect();
    }
    results
}

fn migrate(conn: &Connection, list: &[(i64, &str)]) -> Result<Vec<i64>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .map_err(db_err)?;
    let mut applied = Vec::new();
    for (version, sql) in list {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let done: bool = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations WHERE version = ?1", [version], |r| r.get::<_, i64>(0))
            .map_err(db_err)?
            > 0;
        if done {
            conn.execute_batch("COMMIT").map_err(db_err)?;
            continue;
        }
        let result = conn.execute_batch(sql).and_then(|_| {
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                [*version, crate::domain::time::now_ms()],
            )
        });
        match result {
            Ok(_) => conn.execute_batch("COMMIT").map_err(db_err)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Database(format!("migration {version} failed: {e}")));
            }
        }
        applied.push(*version);
    }
    Ok(applied)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_wal_limit(path, WAL_CATCH_UP_BYTES)
    }

    /// [`open`](Self::open), with the WAL size (in bytes) past which the writer helps the
    /// checkpointer catch up.
    fn open_with_wal_limit(path: &Path, wal_limit_bytes: i64) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = open_connection(path)?;
        // The writer never checkpoints (a checkpoint would stall every write behind it); a
        // thread of its own does, without blocking writers, a few times a second. Nor does it
        // sync its commits: the syncer does, for the writes that must wait for the disk.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL").map_err(db_err)?;
        // The checkpointer counts the WAL in frames, one page each.
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(db_err)?;
        let wal_limit = wal_limit_bytes / page_size.max(512);
        let (tx, rx) = mpsc::channel::<Job>();
        let checkpointer = open_connection(path)?;
        let (stop_checkpoints, stop) = mpsc::channel();
        let catch_up = Arc::new(AtomicBool::new(false));
        let asked = catch_up.clone();
        // Only synced, never written through: SQLite's own connections do the writing.
        let db_file = std::fs::File::open(path)
            .map_err(|e| tracing::warn!(error = %e, "cannot open the database file to sync it ahead of checkpoints"))
            .ok();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, db_file, stop, wal_limit, asked))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (to_syncer, waiting) = mpsc::channel();
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || syncer_loop(wal_path.into(), waiting))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, catch_up, to_syncer))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            writer: Mutex::new(tx),
            _stop_checkpoints: Mutex::new(stop_checkpoints),
            readers: Arc::new(Mutex::new(Vec::new())),
            reading: Arc::new(tokio::sync::Semaphore::new(READ_POOL)),
            path: path.to_path_buf(),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Unavailable("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped".into()))
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let permit = self.reading.clone().acquire_owned().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match readers.lock().ok().and_then(|mut r| r.pop()) {
                Some(c) => c,
                None => open_connection(&path)?,
            };
            let result = run(&conn, &Stmt { sql, params }).map(|r| r.rows);
            if let Ok(mut r) = readers.lock() {
                if r.len() < READ_POOL {
                    r.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    async fn write_with(&self, stmts: Vec<Stmt>, durability: Durability) -> Result<Vec<StmtResult>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Write(stmts, durability, tx))?;
        rx.await.map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped".into()))?
    }

    async fn migrate(&self, migrations: &'static [(i64, &'static str)]) -> Result<Vec<i64>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Migrate(migrations, tx))?;
        rx.await.map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;

    /// SQLite deletes the WAL when its last connection closes and creates it anew: the syncer
    /// must sync the file that is there now, not the one it opened first.
    #[test]
    fn the_syncer_follows_a_wal_file_made_anew() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db-wal");
        let mut wal = None;
        let missing = sync_wal(&path, &mut wal).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        std::fs::write(&path, b"first").unwrap();
        sync_wal(&path, &mut wal).unwrap();
        let first = wal.as_ref().map(|(_, inode)| *inode).unwrap();
        // A second file exists while the first is removed, so the new one cannot reuse its inode.
        std::fs::write(dir.path().join("other"), b"other").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"second").unwrap();
        sync_wal(&path, &mut wal).unwrap();
        let (file, inode) = wal.as_ref().unwrap();
        assert_ne!(*inode, first);
        assert_eq!(file.metadata().unwrap().ino(), std::fs::metadata(&path).unwrap().ino());
    }

    /// Synced writes are answered by the syncer, deferred ones by the writer: every write of a
    /// mixed stream is answered, and committed once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn synced_and_deferred_writes_are_all_answered_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(SqliteBackend::open(&dir.path().join("s.db")).unwrap());
        db.write(vec![Stmt::new("CREATE TABLE t (id INTEGER PRIMARY KEY, kind TEXT NOT NULL)", vec![])]).await.unwrap();
        let writes = (0..200).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let (kind, durability) = match i % 3 {
                    0 => ("synced", Durability::Synced),
                    1 => ("deferred", Durability::Deferred),
                    _ => ("background", Durability::Background),
                };
                let stmt = Stmt::new("INSERT INTO t (id, kind) VALUES ($1, $2)", params![i as i64, kind]);
                db.write_with(vec![stmt], durability).await.unwrap()[0].affected
            })
        });
        for w in writes.collect::<Vec<_>>() {
            assert_eq!(w.await.unwrap(), 1);
        }
        let rows = db.query("SELECT kind, COUNT(*) FROM t GROUP BY kind ORDER BY kind", vec![]).await.unwrap();
        let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.text(0).unwrap(), r.int(1).unwrap())).collect();
        assert_eq!(counts, [("background".into(), 66), ("deferred".into(), 67), ("synced".into(), 67)]);
    }

    /// Under writes that never pause, the background checkpoint never copies the whole WAL, so
    /// without the writer's help the file grows by every byte written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_a_steady_stream_of_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        // Catch up past 1 MiB instead of 32 MiB, so that a short test shows it.
        let db = Arc::new(SqliteBackend::open_with_wal_limit(&path, 1 << 20).unwrap());
        db.write(vec![Stmt::new("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)", vec![])])
            .await
            .unwrap();
        // Writes for at least 1.5 s (several rounds of the background checkpoint) and at least
        // 48 MiB, then until the WAL is under half of what was written: on a busy machine (other
        // tests syncing their files) the checkpoint thread's first round may take seconds, and
        // the WAL keeps the size it reached by then. Without the writer's help it never gets
        // there, so the writes are bounded too: 1 GiB, a minute.
        const TARGET: usize = 48 << 20;
        const BOUND: usize = 1 << 30;
        let wal_path = dir.path().join("wal.db-wal");
        let wal_size = || std::fs::metadata(&wal_path).map(|m| m.len() as usize).unwrap_or(0);
        let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let started = std::time::Instant::now();
        let writers = (0..8).map(|_| {
            let (db, total, stop) = (db.clone(), total.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let rows =
                        (0..4).map(|_| Stmt::new("INSERT INTO blobs (data) VALUES ($1)", params![vec![7u8; 2000]]));
                    db.write_with(rows.collect(), Durability::Deferred).await.unwrap();
                    total.fetch_add(4 * 2000, Ordering::Relaxed);
                }
            })
        });
        let writers: Vec<_> = writers.collect();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let written = total.load(Ordering::Relaxed);
            let enough = written > TARGET && started.elapsed().as_millis() >= 1500 && wal_size() < written / 2;
            if enough || written > BOUND || started.elapsed().as_secs() >= 60 {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        for w in writers {
            w.await.unwrap();
        }
        let written = total.load(Ordering::Relaxed);
        let wal = wal_size();
        assert!(written > TARGET, "too few writes to tell ({written} bytes)");
        assert!(wal < written / 2, "the WAL grew to {wal} bytes for {written} bytes written");
    }
}
