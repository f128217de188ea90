//! Whether this process can do its work: a background task that stopped unexpectedly (the
//! delivery engine above all) makes it unready, so `/readyz` says so while it shuts down.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Health {
    failure: Mutex<Option<String>>,
}

impl Health {
    /// Records why the process can no longer work (the first reason is kept).
    pub fn fail(&self, why: impl Into<String>) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert_with(|| why.into());
        }
    }

    /// Why the process can no longer work, if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().map_or_else(|_| Some("health state poisoned".into()), |f| f.clone())
    }
}
