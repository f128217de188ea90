//! Embedded SQLite in WAL mode.
//!
//! All writes go through ONE writer thread that drains whatever writes are queued into a single
//! `BEGIN IMMEDIATE` transaction (group commit); a failing write is retried alone so it does not
//! undo the others. The writer commits without waiting for the disk; a synced write (see
//! [`Durability`]) is answered only once a second thread, the syncer, has synced the WAL past its
//! commit, while the writer goes on with the next group. Reads use a small pool of connections
//! on the blocking thread pool.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

mod backup;
pub mod export;
mod publish;
mod writer;

use super::backend::{Backend, Dialect, Durability};
use super::chain::{check_written, Chain, Head, Heads};
use super::sql::{Columns, Row, Stmt, StmtResult, Value};
use super::StoreError;
use crate::crypto::Cipher;
pub use backup::backup;
use writer::{checkpoint_loop, syncer_loop, writer_loop, Job};

const READ_POOL: usize = 8;
/// The WAL size past which the writer helps the checkpointer catch up, so that the WAL starts
/// again from its beginning (see [`checkpoint_loop`]).
const WAL_CATCH_UP_BYTES: i64 = 32 << 20;
/// The page size of a new database file (a file keeps the size it was made with). Every commit
/// writes each page it touched to the WAL whole: a single-event publish touches a dozen (the
/// tables' last leaves and their indexes), so the page size sets what a small commit costs, and
/// small commits are what products publishing one event per request make. SQLite's default,
/// 4 KiB, made batches dearer (an event or attempt row fills a page every three or four
/// inserts: more page splits, more for the checkpointer to copy); 16 KiB made every small
/// commit write ~50 KiB of WAL per event. 8 KiB costs batches no more than 16 and halves what
/// single events write (docs/performance.md, s25).
const PAGE_SIZE: u32 = 8192;

pub struct SqliteBackend {
    writer: Mutex<mpsc::Sender<Job>>,
    /// Signs the chains' heads the writer moves, once the master key is loaded.
    signer: Arc<std::sync::OnceLock<Cipher>>,
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
            Value::Array(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure("SQLite takes no array parameters".into()))
            }
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

/// What is read once per statement text (by address and length: texts are `&'static str`) and
/// thread: the `n` of the `$n` at each parameter index, and the names of the result's columns.
type Shapes = std::collections::HashMap<(usize, usize), (std::rc::Rc<[usize]>, Columns)>;

thread_local! {
    static SHAPES: std::cell::RefCell<Shapes> = Default::default();
}

/// Runs one statement: binds `$n` parameters and collects any rows.
fn run(conn: &Connection, stmt: &Stmt) -> Result<StmtResult, StoreError> {
    let mut prepared = conn.prepare_cached(stmt.sql).map_err(db_err)?;
    // SQLite numbers `$n` parameters in their order of first use, not by n: which value goes to
    // which index is read from the statement once per text and thread (each name lookup walks the
    // statement's list of names: per call, a multi-row statement's thousands of parameters would
    // cost their square).
    let (order, columns) = SHAPES.with(|cache| -> Result<(std::rc::Rc<[usize]>, Columns), StoreError> {
        let key = (stmt.sql.as_ptr() as usize, stmt.sql.len());
        if let Some(shape) = cache.borrow().get(&key) {
            return Ok(shape.clone());
        }
        let order: std::rc::Rc<[usize]> = (1..=prepared.parameter_count())
            .map(|idx| {
                prepared
                    .parameter_name(idx)
                    .and_then(|name| name.strip_prefix('$')?.parse::<usize>().ok())
                    .ok_or_else(|| StoreError::Database(format!("statement parameter {idx} is not $n: {}", stmt.sql)))
            })
            .collect::<Result<_, _>>()?;
        let columns: Columns = prepared.column_names().into_iter().map(Box::from).collect();
        cache.borrow_mut().insert(key, (order.clone(), columns.clone()));
        Ok((order, columns))
    })?;
    for (idx, n) in order.iter().enumerate() {
        let value = stmt
            .params
            .get(n.wrapping_sub(1))
            .ok_or_else(|| StoreError::Database(format!("statement parameter ${n} has no value: {}", stmt.sql)))?;
        prepared.raw_bind_parameter(idx + 1, value).map_err(db_err)?;
    }
    let mut out = StmtResult::default();
    let mut rows = prepared.raw_query();
    while let Some(row) = rows.next().map_err(db_err)? {
        let mut values = Vec::with_capacity(columns.len());
        for c in 0..columns.len() {
            values.push(to_value(row.get_ref(c).map_err(db_err)?));
        }
        out.rows.push(Row::new(columns.clone(), values));
    }
    drop(rows);
    out.affected = conn.changes();
    Ok(out)
}

/// Ends a failed transaction. Should even that fail, the connection has no transaction open
/// either (SQLite ends it), so the failure is only logged.
pub(super) fn rollback(conn: &Connection) {
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "rollback failed");
    }
}

/// Creates the database file readable by its owner only (0600), when it does not exist yet:
/// it holds sealed secrets, token digests and every event. SQLite gives its `-wal` and `-shm`
/// files the database file's permissions.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))),
    }
}

/// Runs a write's statements inside the open transaction; chained inserts are linked to the
/// heads in `heads` (read here on first use: the writer holds the database's write lock, so no
/// other process moves them meanwhile).
pub(super) fn run_all(conn: &Connection, stmts: &mut [Stmt], heads: &mut Heads) -> Result<Vec<StmtResult>, StoreError> {
    stmts
        .iter_mut()
        .map(|s| {
            let Some(chained) = &s.chain else { return run(conn, s) };
            let keys: Vec<(Chain, String)> = chained.keys(s).map(|(c, t)| (c, t.to_string())).collect();
            for (chain, tenant) in keys {
                if !heads.contains(chain, &tenant) {
                    let read = run(
                        conn,
                        &Stmt::new(
                            "SELECT seq, hash FROM chain_heads WHERE chain = $1 AND tenant_id = $2",
                            crate::params![chain.as_str(), tenant.as_str()],
                        ),
                    )?;
                    let head = match read.rows.first() {
                        Some(row) => Head { seq: row.int("seq")?, hash: row.text("hash")? },
                        None => Head::genesis(),
                    };
                    heads.load(chain, &tenant, head);
                }
            }
            heads.link(s)?;
            let result = run(conn, s)?;
            check_written(s, result.affected)?;
            Ok(result)
        })
        .collect()
}

/// Writes back the heads the transaction's chained inserts moved (just before its commit).
pub(super) fn write_heads(conn: &Connection, heads: &Heads, signer: Option<&Cipher>) -> Result<(), StoreError> {
    heads.write_back(signer).iter().try_for_each(|s| run(conn, s).map(|_| ()))
}

/// Runs a statement without parameters from the statement cache (no parsing per call).
pub(super) fn exec_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ()).map_err(db_err)
}

pub(super) fn migrate(conn: &Connection, list: &[(i64, &str)]) -> Result<Vec<i64>, StoreError> {
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
                rollback(conn);
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
        create_private(path)?;
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
        let wal_path: std::path::PathBuf = wal_path.into();
        let syncer_wal = wal_path.clone();
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || syncer_loop(syncer_wal, waiting))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let signer = Arc::new(std::sync::OnceLock::new());
        let writer_signer = signer.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, catch_up, to_syncer, wal_path, writer_signer))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            writer: Mutex::new(tx),
            signer,
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

    fn sign_heads_with(&self, cipher: Cipher) {
        self.signer.set(cipher).ok();
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
            let result = run(&conn, &Stmt::new(sql, params)).map(|r| r.rows);
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

    /// A reader connection that is free is used on this thread (a read of an indexed row in
    /// WAL mode takes microseconds and waits for no writer); with none free, as `query`.
    async fn point_query(&self, sql: &'static str, params: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        let Ok(permit) = self.reading.clone().try_acquire_owned() else { return self.query(sql, params).await };
        let Some(conn) = self.readers.lock().ok().and_then(|mut r| r.pop()) else {
            drop(permit);
            return self.query(sql, params).await;
        };
        let result = run(&conn, &Stmt::new(sql, params)).map(|r| r.rows);
        if let Ok(mut r) = self.readers.lock() {
            r.push(conn);
        }
        drop(permit);
        result
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
    use super::writer::sync_wal;
    use super::*;
    use crate::params;
    use std::sync::atomic::Ordering;

    /// SQLite deletes the WAL when its last connection closes and creates it anew: the syncer
    /// must sync the file that is there now, not the one it opened first.
    #[test]
    fn a_new_database_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _db = SqliteBackend::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }

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
        let rows = db.query("SELECT kind, COUNT(*) AS n FROM t GROUP BY kind ORDER BY kind", vec![]).await.unwrap();
        let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.text("kind").unwrap(), r.int("n").unwrap())).collect();
        assert_eq!(counts, [("background".into(), 66), ("deferred".into(), 67), ("synced".into(), 67)]);
    }

    /// Array parameters are PostgreSQL's: given to SQLite, a write is refused with an error (and
    /// the writes beside it still commit), never a panic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_array_parameter_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(SqliteBackend::open(&dir.path().join("a.db")).unwrap());
        db.write(vec![Stmt::new("CREATE TABLE t (id INTEGER PRIMARY KEY)", vec![])]).await.unwrap();
        let bad = Stmt::new("INSERT INTO t (id) VALUES ($1)", vec![Value::Array(vec![Value::Int(1)])]);
        let good = Stmt::new("INSERT INTO t (id) VALUES ($1)", params![2i64]);
        let (bad, good) = tokio::join!(db.write(vec![bad]), db.write(vec![good]));
        let err = bad.expect_err("SQLite takes no arrays").to_string();
        assert!(err.contains("array"), "{err}");
        assert_eq!(good.unwrap()[0].affected, 1);
        let rows = db.query("SELECT id FROM t", vec![]).await.unwrap();
        assert_eq!(rows.len(), 1);
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
        // The sizes are read together while the writes go on; the writes still in flight when
        // the loop stops may each add a page to the WAL's end, so they are not counted.
        let (written, wal) = loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let (written, wal) = (total.load(Ordering::Relaxed), wal_size());
            let enough = written > TARGET && started.elapsed().as_millis() >= 1500 && wal < written / 2;
            if enough || written > BOUND || started.elapsed().as_secs() >= 60 {
                stop.store(true, Ordering::Relaxed);
                break (written, wal);
            }
        };
        for w in writers {
            w.await.unwrap();
        }
        assert!(written > TARGET, "too few writes to tell ({written} bytes)");
        assert!(wal < written / 2, "the WAL grew to {wal} bytes for {written} bytes written");
        assert!(wal_restarts(&wal_path) > 0, "the WAL never started again from its beginning");
    }

    /// How many times the WAL started again from its beginning: its header's checkpoint
    /// sequence number (bytes 12..16, big-endian), which SQLite raises at each restart.
    fn wal_restarts(wal: &std::path::Path) -> u32 {
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(wal).unwrap().read_exact(&mut header).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }
}
