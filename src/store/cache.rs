//! Short-lived in-memory copies of what every publish reads besides the token: the tenant's
//! event types and webhooks. Each read was a trip to the store's reader pool (a blocking-pool
//! hop); with these copies a single publish makes one (the token's) instead of three.
//!
//! Freshness: this process's own changes go through the store, which drops the affected copies
//! once its write is done, so they are seen at once. Changes made by another server on the same
//! PostgreSQL database are seen within [`FRESH_FOR`]. Tokens are not cached: a revocation, from
//! any process, takes effect on the next request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a copy is served before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Copies kept at most; beyond this the expired ones go, then all (a bound, not a policy).
const CAPACITY: usize = 4096;

/// A map of copies that expire after [`FRESH_FOR`], dropped wholesale on a change.
pub struct ReadCache<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, (Instant, V)>,
    /// Bumped by every change: a read that began before a change must not store what it read.
    generation: u64,
}

/// Taken before reading the store; [`ReadCache::put`] keeps the value only if no change
/// happened since.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

impl<K: Eq + Hash, V: Clone> ReadCache<K, V> {
    pub fn new() -> Self {
        Self { inner: Mutex::new(Inner { entries: HashMap::new(), generation: 0 }) }
    }

    /// The fresh copy of `key`, or a ticket to store one read now.
    pub fn get(&self, key: &K) -> Result<V, Ticket> {
        let Ok(inner) = self.inner.lock() else { return Err(Ticket(u64::MAX)) };
        match inner.entries.get(key) {
            Some((at, v)) if at.elapsed() < FRESH_FOR => Ok(v.clone()),
            _ => Err(Ticket(inner.generation)),
        }
    }

    /// Keeps `value` for `key` unless something changed since `ticket` was taken.
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.generation != ticket.0 {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
            if inner.entries.len() >= CAPACITY {
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, (Instant::now(), value));
    }

    /// The fresh copy of `key`, else what `load` reads (kept unless a change raced it).
    pub async fn get_or_load<E, F>(&self, key: K, load: F) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        let ticket = match self.get(&key) {
            Ok(value) => return Ok(value),
            Err(ticket) => ticket,
        };
        let value = load.await?;
        self.put(ticket, key, value.clone());
        Ok(value)
    }

    /// Drops every copy: called by each change to what is cached, before it returns.
    pub fn invalidate(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation += 1;
            inner.entries.clear();
        }
    }
}

impl<K: Eq + Hash, V: Clone> Default for ReadCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_a_copy_until_a_change() {
        let cache: ReadCache<&str, u32> = ReadCache::new();
        let ticket = cache.get(&"a").unwrap_err();
        cache.put(ticket, "a", 1);
        assert_eq!(cache.get(&"a").ok(), Some(1));
        cache.invalidate();
        assert!(cache.get(&"a").is_err());
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache: ReadCache<&str, u32> = ReadCache::new();
        let ticket = cache.get(&"a").unwrap_err();
        // The store is read (old value) while another task changes it and invalidates.
        cache.invalidate();
        cache.put(ticket, "a", 1);
        assert!(cache.get(&"a").is_err(), "a value read before the change must not be served");
    }

    #[tokio::test]
    async fn loads_once_until_a_change() {
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        let cache: ReadCache<&str, u32> = ReadCache::new();
        let loads = AtomicU32::new(0);
        let load = || async {
            loads.fetch_add(1, SeqCst);
            Ok::<_, ()>(7)
        };
        assert_eq!(cache.get_or_load("a", load()).await, Ok(7));
        assert_eq!(cache.get_or_load("a", load()).await, Ok(7));
        assert_eq!(loads.load(SeqCst), 1, "the second read is served from memory");
        cache.invalidate();
        assert_eq!(cache.get_or_load("a", load()).await, Ok(7));
        assert_eq!(loads.load(SeqCst), 2, "a change makes the next read go to the store");
        let failed = cache.get_or_load("b", async { Err::<u32, ()>(()) }).await;
        assert!(failed.is_err() && cache.get(&"b").is_err(), "errors are not kept");
    }

    #[test]
    fn copies_expire() {
        let cache: ReadCache<&str, u32> = ReadCache::new();
        let ticket = cache.get(&"a").unwrap_err();
        cache.put(ticket, "a", 1);
        cache.inner.lock().unwrap().entries.get_mut("a").unwrap().0 -= FRESH_FOR;
        assert!(cache.get(&"a").is_err());
    }

    #[test]
    fn stays_bounded() {
        let cache: ReadCache<usize, usize> = ReadCache::new();
        for i in 0..CAPACITY * 2 {
            let t = cache.get(&i).unwrap_err();
            cache.put(t, i, i);
        }
        assert!(cache.inner.lock().unwrap().entries.len() <= CAPACITY);
    }
}
