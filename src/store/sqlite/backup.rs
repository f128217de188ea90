//! `tocsin backup`: a consistent copy of a live SQLite store, by SQLite's online backup API.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{create_private, db_err};
use crate::store::StoreError;

/// Copies the database at `source` into the new file `to` while servers keep writing to it.
/// The copy is made in one step of the online backup API, inside one read transaction: in WAL
/// mode that waits for no writer and no writer waits for it, and the copy is the database as of
/// one commit. It is written beside `to` and linked there when complete, so an interrupted
/// backup leaves no half file under that name, and a file there is never replaced. Returns the
/// pages copied.
pub fn backup(source: &Path, to: &Path) -> Result<u64, StoreError> {
    if to.exists() {
        return Err(StoreError::Conflict(format!("{} exists: back up to a new file", to.display())));
    }
    let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", source.display())))?;
    src.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
    let partial = to.with_file_name(format!(
        ".{}.partial",
        to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into())
    ));
    std::fs::remove_file(&partial).ok();
    create_private(&partial)?;
    let copied = copy(&src, &partial);
    if copied.is_err() {
        std::fs::remove_file(&partial).ok();
    }
    let pages = copied?;
    // A link fails if `to` exists by now (made since the check above): no file is replaced.
    let linked = std::fs::hard_link(&partial, to);
    std::fs::remove_file(&partial).ok();
    linked.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            StoreError::Conflict(format!("{} exists: back up to a new file", to.display()))
        }
        _ => StoreError::Unavailable(format!("cannot move the backup to {}: {e}", to.display())),
    })?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    Ok(pages)
}

fn copy(src: &Connection, partial: &Path) -> Result<u64, StoreError> {
    let mut dst = Connection::open(partial).map_err(db_err)?;
    let pages = {
        let backup = Backup::new(src, &mut dst).map_err(db_err)?;
        let mut tries = 0;
        loop {
            match backup.step(-1).map_err(db_err)? {
                StepResult::Done => break,
                // A writer held a lock the read needs for a moment (a checkpoint's end): again.
                StepResult::Busy | StepResult::Locked | StepResult::More if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => {
                    return Err(StoreError::Unavailable(format!("the backup did not complete: {other:?}")));
                }
            }
        }
        backup.progress().pagecount as u64
    };
    // The copy is a database of its own: its journal back in the file before it is closed.
    dst.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(db_err)?;
    drop(dst);
    std::fs::File::open(partial).and_then(|f| f.sync_all()).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(pages)
}
