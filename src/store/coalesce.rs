//! Writes (and reads) of many concurrent callers combined into one: each caller queues its item
//! and waits; a drain task takes everything queued and writes (or reads) it with one set of
//! statements. PostgreSQL's publishes, records of attempts and token lookups go through it.
//!
//! Why: on PostgreSQL every statement costs a backend tens of µs and a round trip, whatever its
//! row count. Sixteen single-event publishes written as one three-statement publish cost the
//! database a fraction of sixteen. Callers that wait do not wait on purpose: a lone caller is
//! written at once; callers that arrive while a write is in flight are written together by the
//! next one. Writes nobody waits on (the records of successful attempts) may be held back for
//! more to join them ([`Hold`]).
//!
//! The write runs in a task of its own, not in a caller's future: a caller that goes away (a
//! client that hangs up) cannot cancel a write that carries other callers' items.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::StoreError;

/// Writes a batch of items: one result per item, in order.
pub(super) type WriteBatch<T, R> =
    Box<dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = Vec<Result<R, StoreError>>> + Send>> + Send + Sync>;

type Queued<T, R> = (T, oneshot::Sender<Result<R, StoreError>>);

/// Items of type `T` queued to be written together, each answered with its `R`.
pub(super) struct Coalescer<T, R> {
    inner: Arc<Inner<T, R>>,
}

struct Inner<T, R> {
    queue: Mutex<Vec<Queued<T, R>>>,
    /// Writes in flight at once.
    lanes: Arc<Semaphore>,
    /// Most items one write takes.
    max_batch: usize,
    write: WriteBatch<T, R>,
    hold: Option<Hold>,
}

/// A drain that finds fewer than `fewer_than` items queued waits for more to join, in slices of
/// `gap`, up to `wait` in all, and no longer once a slice brought none: for writes whose callers
/// do not wait on them, where a transaction saved is worth more than the delay. The gap lets a
/// quiet process (or one whose callers are all waiting already) write at once after one slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hold {
    pub fewer_than: usize,
    pub wait: std::time::Duration,
    pub gap: std::time::Duration,
}

impl<T: Send + 'static, R: Send + 'static> Coalescer<T, R> {
    pub(super) fn new(lanes: usize, max_batch: usize, write: WriteBatch<T, R>) -> Self {
        Self::holding(lanes, max_batch, None, write)
    }

    /// A coalescer whose small batches are held back (see [`Hold`]).
    pub(super) fn holding(lanes: usize, max_batch: usize, hold: Option<Hold>, write: WriteBatch<T, R>) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(Vec::new()),
                lanes: Arc::new(Semaphore::new(lanes)),
                max_batch,
                write,
                hold,
            }),
        }
    }

    /// Queues `item` and waits for the write that carries it.
    pub(super) async fn submit(&self, item: T) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner.lock()?.push((item, tx));
        Inner::start_drain(&self.inner);
        rx.await.map_err(|_| StoreError::Unavailable("a combined write was dropped".into()))?
    }
}

impl<T: Send + 'static, R: Send + 'static> Inner<T, R> {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<Queued<T, R>>>, StoreError> {
        self.queue.lock().map_err(|_| StoreError::Unavailable("a write queue's lock is poisoned".into()))
    }

    /// Starts a drain task when a lane is free; otherwise a running drain takes the queue.
    fn start_drain(inner: &Arc<Self>) {
        if let Ok(lane) = inner.lanes.clone().try_acquire_owned() {
            tokio::spawn(inner.clone().drain(lane));
        }
    }

    /// Waits while a small batch keeps growing (see [`Hold`]).
    async fn gather(&self, hold: Hold) {
        let queued = || self.lock().map_or(0, |q| q.len());
        let until = tokio::time::Instant::now() + hold.wait;
        let mut seen = queued();
        while seen > 0 && seen < hold.fewer_than {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(hold.gap)).await;
            let now = queued();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// Writes what is queued, batch after batch, until the queue is empty.
    async fn drain(self: Arc<Self>, lane: OwnedSemaphorePermit) {
        let mut lane = Some(lane);
        while lane.is_some() {
            if let Some(hold) = self.hold {
                self.gather(hold).await;
            }
            let batch: Vec<Queued<T, R>> = match self.lock() {
                Ok(mut queue) => {
                    let n = queue.len().min(self.max_batch);
                    queue.drain(..n).collect()
                }
                // Poisoned: the callers queued are answered by their dropped senders.
                Err(_) => return,
            };
            if batch.is_empty() {
                // Free the lane, then look again: an item queued between the look above and the
                // release found no free lane and counts on this task.
                lane = None;
                if self.lock().is_ok_and(|q| !q.is_empty()) {
                    lane = self.lanes.clone().try_acquire_owned().ok();
                }
                continue;
            }
            let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            let results = (self.write)(items).await;
            for (reply, result) in replies.into_iter().zip(results) {
                reply.send(result).ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Concurrent callers are written in fewer batches than callers, each answered with its own
    /// result, and none is left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_items_share_writes_and_each_gets_its_answer() {
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let coalescer: Arc<Coalescer<u32, u32>> = Arc::new(Coalescer::new(
            1,
            64,
            Box::new(move |items: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    items
                        .into_iter()
                        .map(|i| if i % 7 == 0 { Err(StoreError::Conflict(i.to_string())) } else { Ok(i * 2) })
                        .collect()
                })
            }),
        ));
        let calls = (0..200u32).map(|i| {
            let c = coalescer.clone();
            tokio::spawn(async move { (i, c.submit(i).await) })
        });
        for call in futures_util::future::join_all(calls).await {
            let (i, answer) = call.expect("the caller ran");
            match answer {
                Ok(v) => assert_eq!(v, i * 2),
                Err(e) => assert!(i % 7 == 0 && e.to_string().contains(&i.to_string()), "{i}: {e}"),
            }
        }
        let n = writes.load(Ordering::SeqCst);
        assert!(n < 200, "200 callers made {n} writes");
    }

    /// A caller that goes away does not cancel the write that carries it and others.
    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_cancel_the_write() {
        let written = Arc::new(AtomicUsize::new(0));
        let counted = written.clone();
        let coalescer = Arc::new(Coalescer::<u32, ()>::new(
            1,
            64,
            Box::new(move |items: Vec<u32>| {
                let counted = counted.clone();
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    counted.fetch_add(items.len(), Ordering::SeqCst);
                    items.into_iter().map(|_| Ok(())).collect()
                })
            }),
        ));
        let gives_up = tokio::time::timeout(std::time::Duration::from_millis(1), coalescer.submit(1)).await;
        assert!(gives_up.is_err(), "the first caller timed out before its write ended");
        coalescer.submit(2).await.expect("the second caller is written");
        assert_eq!(written.load(Ordering::SeqCst), 2, "both items were written");
    }

    /// The batches a test coalescer wrote, in order.
    type Written = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A holding coalescer's test double: records each batch it writes.
    fn holding(hold: Hold) -> (Arc<Coalescer<u32, ()>>, Written) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let coalescer = Arc::new(Coalescer::<u32, ()>::holding(
            1,
            64,
            Some(hold),
            Box::new(move |items: Vec<u32>| {
                seen.lock().unwrap().push(items.clone());
                Box::pin(async move { items.into_iter().map(|_| Ok(())).collect() })
            }),
        ));
        (coalescer, batches)
    }

    fn submit(c: &Arc<Coalescer<u32, ()>>, i: u32) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let c = c.clone();
        tokio::spawn(async move { c.submit(i).await })
    }

    /// A holding coalescer waits for more before a small write while more keep coming (a lone
    /// item waits one gap, then goes), and writes at once when enough are queued.
    #[tokio::test(start_paused = true)]
    async fn a_holding_coalescer_gathers_small_writes() {
        let ms = std::time::Duration::from_millis;
        let hold = Hold { fewer_than: 4, wait: ms(10), gap: ms(2) };
        let (coalescer, batches) = holding(hold);
        let started = tokio::time::Instant::now();
        submit(&coalescer, 1).await.unwrap().unwrap();
        let waited = started.elapsed();
        assert!(waited >= hold.gap && waited < 2 * hold.gap, "a lone item waits one gap: {waited:?}");
        // Two more, a millisecond apart (within a gap): written together once a gap brings none.
        let first = submit(&coalescer, 2);
        tokio::time::sleep(ms(1)).await;
        let second = submit(&coalescer, 3);
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        // Enough queued at once: no hold.
        let started = tokio::time::Instant::now();
        let calls: Vec<_> = (5..9).map(|i| submit(&coalescer, i)).collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert!(started.elapsed() < hold.gap, "{:?}", started.elapsed());
        assert_eq!(*batches.lock().unwrap(), vec![vec![1], vec![2, 3], vec![5, 6, 7, 8]]);
    }

    /// While items keep coming, a hold ends at its `wait`: the first batch is written then, with
    /// what came meanwhile, and the rest follow.
    #[tokio::test(start_paused = true)]
    async fn a_hold_ends_at_its_wait_while_items_keep_coming() {
        let ms = std::time::Duration::from_millis;
        let hold = Hold { fewer_than: 1000, wait: ms(10), gap: ms(2) };
        let (coalescer, batches) = holding(hold);
        let started = tokio::time::Instant::now();
        let mut calls = Vec::new();
        for i in 0..30 {
            calls.push(submit(&coalescer, i));
            tokio::time::sleep(ms(1)).await;
        }
        let first_done = calls.remove(0).await.unwrap();
        first_done.unwrap();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let batches = batches.lock().unwrap();
        assert!(batches.len() >= 3, "30 ms of items in batches of at most 10 ms: {batches:?}");
        assert!((9..=12).contains(&batches[0].len()), "the first batch held 10 ms: {:?}", batches[0]);
        let all: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(all, (0..30).collect::<Vec<_>>(), "every item once, in order");
        assert!(started.elapsed() >= ms(30));
    }
}
