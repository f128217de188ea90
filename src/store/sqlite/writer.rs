//! The threads behind the SQLite backend: the single writer (group commit), the syncer (makes
//! synced commits durable) and the checkpointer (copies the WAL into the database file).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{exec_cached, migrate, rollback, run_all, write_heads};
use crate::crypto::Cipher;
use crate::store::backend::Durability;
use crate::store::chain::Heads;
use crate::store::sql::{Stmt, StmtResult};
use crate::store::StoreError;

/// Most writes folded into one transaction.
const MAX_GROUP: usize = 512;
/// How long a group of background writes waits for more writes before it commits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// ... in slices of this length, and no longer once a slice brought none (see [`gather`]).
const GATHER_GAP: std::time::Duration = std::time::Duration::from_micros(250);
/// Groups of background writes at least this large commit at once.
const GATHER_UP_TO: usize = 64;
pub(super) type Reply = oneshot::Sender<Result<Vec<StmtResult>, StoreError>>;

/// A caller whose write is committed, waiting for the WAL to be synced past the commit: called
/// with the sync's outcome.
pub(super) type AwaitingSync = Box<dyn FnOnce(Result<(), String>) + Send>;

pub(super) enum Job {
    Write(Vec<Stmt>, Durability, Reply),
    Migrate(&'static [(i64, &'static str)], oneshot::Sender<Result<Vec<i64>, StoreError>>),
}

impl Job {
    fn is_background(&self) -> bool {
        matches!(self, Job::Write(_, Durability::Background, _))
    }
}

/// Synced writes of at most this many statements in one round of the writer (a few
/// single-event publishes) are synced by the writer itself; larger ones by the syncer.
///
/// Why: the sync of a small commit is short (it writes tens of KiB), and doing it here saves a
/// hand-off to another thread and back, and lets the publishes that arrive meanwhile gather
/// into the next group. Products publishing one event per request delivered ~25% more a second
/// (scenario (f16), docs/performance.md s25). The sync of a batch publish's commit (megabytes,
/// 0.5–8 ms) would stall the claims behind it: it stays with the syncer.
const SYNC_HERE_UP_TO: usize = 64;

/// The writer thread: group commit of queued writes. It commits without waiting for the disk
/// (`synchronous=NORMAL`) and answers deferred writes at once; synced writes (and migrations)
/// are answered once the WAL holding their commit is on disk: small ones after the writer's own
/// sync at the end of its round ([`SYNC_HERE_UP_TO`]), the others by the syncer. So a large
/// group that must be durable never stalls the claims and records behind it for the length of
/// its fsync, and syncs that overlap are made once.
pub(super) fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    catch_up: Arc<AtomicBool>,
    syncer: mpsc::Sender<AwaitingSync>,
    wal_path: std::path::PathBuf,
    signer: Arc<std::sync::OnceLock<Cipher>>,
) {
    let mut wal = None;
    while let Ok(first) = jobs.recv() {
        // The synced writes of this round, answered once the WAL is synced past their commit.
        let mut awaiting: Vec<AwaitingSync> = Vec::new();
        let mut synced_statements = 0;
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
                Ok(applied) => awaiting.push(Box::new(move |synced: Result<(), String>| {
                    reply.send(synced.map(|()| applied).map_err(StoreError::Unavailable)).ok();
                })),
                Err(e) => {
                    reply.send(Err(e)).ok();
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
            let mut group = group;
            let mut stmts: Vec<&mut [Stmt]> = group.iter_mut().map(|(s, _, _)| s.as_mut_slice()).collect();
            let started = std::time::Instant::now();
            let results = commit_group(&conn, &mut stmts, signer.get());
            crate::metrics::commit("sqlite", started.elapsed());
            for ((written, durability, reply), result) in group.into_iter().zip(results) {
                match result {
                    Ok(rows) if durability.is_synced() => {
                        synced_statements += written.len();
                        awaiting.push(Box::new(move |synced: Result<(), String>| {
                            reply.send(synced.map(|()| rows).map_err(StoreError::Unavailable)).ok();
                        }));
                    }
                    other => {
                        reply.send(other).ok();
                    }
                }
            }
        }
        if !awaiting.is_empty() && synced_statements <= SYNC_HERE_UP_TO {
            sync_and_answer(&wal_path, &mut wal, awaiting);
        } else {
            for answer in awaiting {
                if let Err(mpsc::SendError(answer)) = syncer.send(answer) {
                    answer(Err("the SQLite syncer thread has stopped".into()));
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
pub(super) fn syncer_loop(wal_path: std::path::PathBuf, waiting: mpsc::Receiver<AwaitingSync>) {
    let mut wal: Option<(std::fs::File, u64)> = None;
    while let Ok(first) = waiting.recv() {
        let mut done = vec![first];
        done.extend(waiting.try_iter());
        sync_and_answer(&wal_path, &mut wal, done);
    }
}

/// Syncs the WAL and answers the writes waiting for it with the outcome (one sync covers every
/// commit written before it).
fn sync_and_answer(wal_path: &Path, wal: &mut Option<(std::fs::File, u64)>, waiting: Vec<AwaitingSync>) {
    let synced = sync_wal(wal_path, wal).map_err(|e| format!("cannot sync {}: {e}", wal_path.display()));
    if let Err(e) = &synced {
        tracing::error!(error = %e, "commits could not be made durable; their callers are told");
    }
    for answer in waiting {
        answer(synced.clone());
    }
}

/// Syncs the WAL file's data, (re)opening it when it is not the file open last time (SQLite
/// deletes the WAL when its last connection closes, and creates it anew).
pub(super) fn sync_wal(path: &Path, wal: &mut Option<(std::fs::File, u64)>) -> std::io::Result<()> {
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
pub(super) fn checkpoint_loop(
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
fn commit_one(conn: &Connection, stmts: &mut [Stmt], signer: Option<&Cipher>) -> Result<Vec<StmtResult>, StoreError> {
    exec_cached(conn, "BEGIN IMMEDIATE")?;
    let mut heads = Heads::default();
    match run_all(conn, stmts, &mut heads).and_then(|r| write_heads(conn, &heads, signer).map(|()| r)) {
        Ok(r) => match exec_cached(conn, "COMMIT") {
            Ok(()) => Ok(r),
            Err(e) => {
                rollback(conn);
                Err(StoreError::Unavailable(format!("commit failed: {e}")))
            }
        },
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

/// Runs all queued writes in one transaction and commits once. Should one of them fail (rare:
/// writes are built not to), the group is rolled back and each write is run on its own, so a
/// bad write never takes the others down. No savepoints: their sub-journal costs on every write.
fn commit_group(
    conn: &Connection,
    writes: &mut [&mut [Stmt]],
    signer: Option<&Cipher>,
) -> Vec<Result<Vec<StmtResult>, StoreError>> {
    if writes.len() == 1 {
        return vec![commit_one(conn, writes[0], signer)];
    }
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        let msg = e.to_string();
        return writes.iter().map(|_| Err(StoreError::Unavailable(msg.clone()))).collect();
    }
    let mut results = Vec::with_capacity(writes.len());
    let mut heads = Heads::default();
    let mut failed = false;
    for stmts in writes.iter_mut() {
        match run_all(conn, stmts, &mut heads) {
            Ok(r) => results.push(Ok(r)),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if failed || write_heads(conn, &heads, signer).is_err() {
        rollback(conn);
        return writes.iter_mut().map(|w| commit_one(conn, w, signer)).collect();
    }
    if let Err(e) = exec_cached(conn, "COMMIT") {
        rollback(conn);
        let msg = format!("commit failed: {e}");
        return writes.iter().map(|_| Err(StoreError::Unavailable(msg.clone()))).collect();
    }
    results
}
