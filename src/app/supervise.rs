//! Background tasks under supervision: a task that ends before the process is told to stop
//! (it returned, or it panicked) is a failure. It is logged, the process becomes unready
//! (`/readyz` answers 503), everything else is asked to stop, and the process exits non-zero so
//! that its service manager starts it again.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

use crate::service::Health;

/// A background task that stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
#[error("the {task} task {how}")]
pub struct TaskFailure {
    pub task: &'static str,
    pub how: String,
}

#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<&'static str>,
    names: HashMap<Id, &'static str>,
}

impl Supervisor {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(async move {
            task.await;
            name
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits for every task to end. `stopping` says whether they were asked to; a task ending
    /// while they were not is a failure: it marks `health`, sends `stop_all`, and is returned
    /// (the first one) once the others have ended.
    pub async fn wait(
        mut self,
        stopping: watch::Receiver<bool>,
        stop_all: &watch::Sender<bool>,
        health: &Health,
    ) -> Result<(), TaskFailure> {
        let mut first_failure = None;
        while let Some(ended) = self.tasks.join_next_with_id().await {
            let (task, how) = match ended {
                Ok((_, name)) => (name, "stopped".to_string()),
                Err(e) => {
                    let name = self.names.get(&e.id()).copied().unwrap_or("background");
                    let how = if e.is_panic() { "panicked" } else { "was cancelled" };
                    (name, how.to_string())
                }
            };
            if *stopping.borrow() || first_failure.is_some() {
                continue;
            }
            let failure = TaskFailure { task, how };
            tracing::error!(error = %failure, "a background task ended unexpectedly; shutting down");
            health.fail(failure.to_string());
            stop_all.send(true).ok();
            first_failure = Some(failure);
        }
        first_failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_fails_the_process_and_stops_the_others() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let health = Health::default();
        let mut tasks = Supervisor::default();
        let mut asked = stop_rx.clone();
        tasks.spawn("pruner", async move {
            asked.wait_for(|s| *s).await.ok();
        });
        tasks.spawn("delivery", async {});
        let err = tasks.wait(stop_rx, &stop_tx, &health).await.expect_err("the delivery task ended early");
        assert_eq!(err.task, "delivery");
        assert_eq!(health.failure().as_deref(), Some("the delivery task stopped"));
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_too() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let health = Health::default();
        let mut tasks = Supervisor::default();
        tasks.spawn("delivery", async { panic!("boom") });
        let err = tasks.wait(stop_rx, &stop_tx, &health).await.expect_err("it panicked");
        assert_eq!((err.task, err.how.as_str()), ("delivery", "panicked"));
        assert!(*stop_tx.borrow());
    }

    #[tokio::test]
    async fn tasks_that_end_when_asked_are_no_failure() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let health = Health::default();
        let mut tasks = Supervisor::default();
        let mut asked = stop_rx.clone();
        tasks.spawn("delivery", async move {
            asked.wait_for(|s| *s).await.ok();
        });
        stop_tx.send(true).ok();
        assert!(tasks.wait(stop_rx, &stop_tx, &health).await.is_ok());
        assert_eq!(health.failure(), None);
    }
}
