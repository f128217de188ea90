//! Claims of a SQLite store, held in the memory of the one process that delivers from it.
//!
//! A claim used to mark each delivery leased in the database, and its completion to unmark it:
//! on SQLite's single writer that was a quarter of the b-tree changes a delivery costs (the row,
//! and its entry in the due index moved twice). Only one process delivers from a SQLite file
//! (it holds the file's delivery lock, see [`super::Store::start_delivering`]), so its claims
//! need not be shared: they are held here, and the rows stay pending until their completion.
//! A crash loses the leases with the process and leaves the rows pending: they are claimed again
//! at the next start (at least once, as before, and without a lease to wait out).
//!
//! Deliveries handed over by a publish, or created for an attempt made at once, are still leased
//! in the database: their rows are written then anyway. Only what claims took is held here.
//!
//! A claim must not take what another one holds: claims run one at a time (`claiming`), each
//! reads what is held, then queries, then holds what it found. A completion lets go only after
//! its write committed; so a claim either saw the seq held, or its query (which starts later)
//! sees the completed row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// One claim's lease: its id and when it ends (ms).
struct Lease {
    claimer: Arc<str>,
    until: i64,
}

#[derive(Default)]
pub struct MemoryLeases {
    claiming: tokio::sync::Mutex<()>,
    /// Webhook → delivery seq → its lease.
    held: Mutex<HashMap<Uuid, HashMap<i64, Lease>>>,
}

impl MemoryLeases {
    pub fn new() -> Self {
        Self::default()
    }

    /// Taken by a claim from before it reads what is held until it holds what it found.
    pub async fn claiming(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.claiming.lock().await
    }

    /// The seqs of `webhook`'s held deliveries, forgetting those whose lease ended before `now`
    /// (as an expired lease in the database would be: the delivery may be claimed again).
    pub fn held(&self, webhook: Uuid, now: i64) -> Vec<i64> {
        let Ok(mut held) = self.held.lock() else { return Vec::new() };
        let Some(seqs) = held.get_mut(&webhook) else { return Vec::new() };
        seqs.retain(|_, lease| lease.until >= now);
        seqs.keys().copied().collect()
    }

    /// Holds `seqs` of `webhook` for `claimer` until `until`.
    pub fn hold(&self, webhook: Uuid, seqs: impl IntoIterator<Item = i64>, claimer: &str, until: i64) {
        let claimer: Arc<str> = Arc::from(claimer);
        if let Ok(mut held) = self.held.lock() {
            let of_webhook = held.entry(webhook).or_default();
            for seq in seqs {
                of_webhook.insert(seq, Lease { claimer: claimer.clone(), until });
            }
        }
    }

    /// Whether `claimer` holds delivery `seq` of `webhook`.
    pub fn holds(&self, webhook: Uuid, seq: i64, claimer: &str) -> bool {
        let Ok(held) = self.held.lock() else { return false };
        held.get(&webhook).and_then(|s| s.get(&seq)).is_some_and(|lease| &*lease.claimer == claimer)
    }

    /// Lets go of delivery `seq` if `claimer` holds it (of `webhook`, or of any when not known);
    /// true if it did.
    pub fn let_go(&self, webhook: Option<Uuid>, seq: i64, claimer: &str) -> bool {
        let Ok(mut held) = self.held.lock() else { return false };
        let matches = |seqs: &HashMap<i64, Lease>| seqs.get(&seq).is_some_and(|l| &*l.claimer == claimer);
        let of_webhook = match webhook {
            Some(id) => held.get_mut(&id).filter(|s| matches(s)),
            None => held.values_mut().find(|s| matches(s)),
        };
        of_webhook.is_some_and(|seqs| seqs.remove(&seq).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_by_its_claimer_until_let_go_or_expired() {
        let leases = MemoryLeases::new();
        let (w1, w2) = (Uuid::now_v7(), Uuid::now_v7());
        leases.hold(w1, [1, 2], "c1", 100);
        leases.hold(w2, [3], "c2", 200);
        assert_eq!(sorted(leases.held(w1, 50)), vec![1, 2]);
        assert!(leases.holds(w1, 1, "c1"));
        assert!(!leases.holds(w1, 1, "c2"), "another claimer's lease");
        assert!(!leases.holds(w2, 1, "c1"), "another webhook");
        assert!(!leases.let_go(Some(w1), 1, "c2"), "only the claimer lets go");
        assert!(leases.let_go(Some(w1), 1, "c1"));
        assert!(!leases.let_go(Some(w1), 1, "c1"), "once");
        assert!(leases.let_go(None, 3, "c2"), "found without its webhook");
        assert_eq!(leases.held(w2, 50), Vec::<i64>::new());
        // Past its end, a lease is forgotten (the delivery may be claimed again).
        assert_eq!(leases.held(w1, 101), Vec::<i64>::new());
        assert!(!leases.holds(w1, 2, "c1"));
    }

    fn sorted(mut v: Vec<i64>) -> Vec<i64> {
        v.sort();
        v
    }
}
