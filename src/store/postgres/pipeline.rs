//! One PostgreSQL transaction in as few round trips as it can take: `BEGIN`, the statements and
//! `COMMIT` pipelined on one connection (tokio-postgres writes a request when its future is first
//! polled, so requests go out in the order they are first polled). Every round trip wakes a
//! PostgreSQL backend and this process's connection task; on two cores that, more than the
//! statements, was what PostgreSQL's CPU went to (docs/performance.md s27).

use deadpool_postgres::ClientWrapper;

use super::{pg_err, refs, to_rows};
use crate::store::sql::{Stmt, StmtResult};
use crate::store::StoreError;

/// A statement's run: its rows, or what it changed.
type Run<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<StmtResult, StoreError>> + Send + 'a>>;

/// Prepares `stmts` (cached per connection) and makes their runs; nothing is sent until a run is
/// first polled (tokio-postgres writes a request when its future is first polled).
async fn runs<'a>(client: &'a ClientWrapper, stmts: &'a [&'a Stmt]) -> Result<Vec<Run<'a>>, StoreError> {
    let mut runs: Vec<Run<'a>> = Vec::with_capacity(stmts.len());
    for s in stmts {
        let p = client.prepare_cached(s.sql).await.map_err(pg_err)?;
        runs.push(Box::pin(async move {
            let params = refs(&s.params);
            if p.columns().is_empty() {
                let affected = client.execute(&p, &params).await.map_err(pg_err)?;
                Ok(StmtResult { rows: Vec::new(), affected })
            } else {
                let rows = client.query(&p, &params).await.map_err(pg_err)?;
                let rows = to_rows(&rows)?;
                Ok(StmtResult { affected: rows.len() as u64, rows })
            }
        }));
    }
    Ok(runs)
}

/// Runs statements as one transaction in a single round trip: `BEGIN` (unless `begin` is false:
/// the transaction was begun already), the statements and `COMMIT` are sent together. Each round
/// trip wakes a PostgreSQL backend and this process's connection task; a transaction of one
/// combined publish made three. `COMMIT` is sent only once every request before it is on its way:
/// a statement whose parameters could not be encoded fails at once, unsent, and then the
/// transaction is rolled back instead. A statement that fails in PostgreSQL aborts the
/// transaction, and the `COMMIT` behind it rolls back. (Rows that do not read back as their
/// columns' types, a bug rather than data, are reported after the commit.)
pub(super) async fn run_committed(
    client: &ClientWrapper,
    stmts: &[&Stmt],
    begin: bool,
) -> Result<Vec<StmtResult>, StoreError> {
    use std::task::Poll;
    let mut pending: Vec<Run<'_>> = Vec::with_capacity(stmts.len() + 2);
    if begin {
        pending.push(send_begin(client).await);
    }
    pending.extend(runs(client, stmts).await?);
    let mut done: Vec<Option<Result<StmtResult, StoreError>>> = pending.iter().map(|_| None).collect();
    // One poll of each, in order, sends them.
    std::future::poll_fn(|cx| {
        for (run, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Poll::Ready(r) = run.as_mut().poll(cx) {
                *out = Some(r);
            }
        }
        Poll::Ready(())
    })
    .await;
    if !done.iter().any(|d| matches!(d, Some(Err(_)))) {
        pending.push(Box::pin(async { begin_or_end(client, "COMMIT").await }));
        done.push(None);
    }
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (run, out) in pending.iter_mut().zip(done.iter_mut()).filter(|(_, out)| out.is_none()) {
            match run.as_mut().poll(cx) {
                Poll::Ready(r) => *out = Some(r),
                Poll::Pending => waiting = true,
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    let committed = done.len() == stmts.len() + usize::from(begin) + 1;
    let mut results = Vec::with_capacity(stmts.len());
    for d in done.into_iter().flatten() {
        results.push(d?);
    }
    if !committed {
        return Err(StoreError::Database("a statement could not be sent; the transaction was rolled back".into()));
    }
    // BEGIN's and COMMIT's results are not the statements'.
    results.pop();
    if begin {
        results.remove(0);
    }
    Ok(results)
}

/// Sends `BEGIN` now and gives its answer to await. Statements still to be prepared on this
/// connection are then prepared inside the transaction: prepared before it, each would be a
/// transaction of its own (an idle server's commits doubled, scenario (g)).
pub(super) async fn send_begin(client: &ClientWrapper) -> Run<'_> {
    let mut begin: Run<'_> = Box::pin(begin_or_end(client, "BEGIN"));
    match std::future::poll_fn(|cx| std::task::Poll::Ready(begin.as_mut().poll(cx))).await {
        std::task::Poll::Ready(answer) => Box::pin(std::future::ready(answer)),
        std::task::Poll::Pending => begin,
    }
}

async fn begin_or_end(client: &ClientWrapper, command: &'static str) -> Result<StmtResult, StoreError> {
    client.batch_execute(command).await.map_err(pg_err)?;
    Ok(StmtResult { rows: Vec::new(), affected: 0 })
}

/// A pooled connection in a transaction that was begun without tokio-postgres' `Transaction`
/// (so that `BEGIN` could travel with the statements): rolled back on an error, and, should the
/// write be abandoned half way (its future dropped), the connection is closed rather than
/// returned to the pool with the transaction open (PostgreSQL then rolls it back).
pub(super) struct Open {
    client: Option<deadpool_postgres::Object>,
    done: bool,
}

impl Open {
    pub(super) fn new(client: deadpool_postgres::Object) -> Self {
        Self { client: Some(client), done: false }
    }

    pub(super) fn client(&self) -> &ClientWrapper {
        self.client.as_ref().expect("the connection is held until the transaction ends")
    }

    /// Ends the transaction after `result`: committed, the connection goes back to the pool; else
    /// whatever may still be open (after `COMMIT` rolled back, or if it was never sent) is rolled
    /// back first.
    pub(super) async fn end<T>(&mut self, result: &Result<T, StoreError>) {
        self.done = result.is_ok() || self.client().batch_execute("ROLLBACK").await.is_ok();
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if !self.done {
            if let Some(client) = self.client.take() {
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
}
