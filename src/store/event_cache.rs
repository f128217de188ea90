//! Events read by one webhook's claim, kept for the other webhooks' claims of the same events.
//!
//! With fan-out to n webhooks every event is claimed n times, once per webhook, and each claim
//! read it from the store again: a tenth of the server's CPU in a fan-out to ten. Events never
//! change once stored (only their delivery count, which is not kept here), so a copy is always
//! right. An entry goes once it has served as many claims as the event has other deliveries, and
//! the whole cache is bounded by bytes (oldest entries first), so events whose other deliveries
//! are not claimed soon (a paused webhook, retries) do not stay.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What a claim needs of an event besides its id.
#[derive(Debug)]
pub struct EventBody {
    pub event_ref: String,
    pub event_type: String,
    pub data: bytes::Bytes,
    pub created_at: i64,
}

impl EventBody {
    fn size(&self) -> usize {
        self.event_ref.len() + self.event_type.len() + self.data.len() + 64
    }
}

/// The bound on the bytes of events kept.
const MAX_BYTES: usize = 8 << 20;

pub struct EventCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Event id → (the event, claims it may still serve, its insertion number).
    entries: HashMap<String, (Arc<EventBody>, u32, u64)>,
    /// Insertion order, for eviction by bytes; may hold ids already gone (skipped).
    order: VecDeque<(String, u64)>,
    bytes: usize,
    inserted: u64,
}

impl EventCache {
    pub fn new() -> Self {
        Self::with_max_bytes(MAX_BYTES)
    }

    fn with_max_bytes(max_bytes: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), max_bytes }
    }

    /// The event `id` if kept, counting one claim served (the last one takes it out).
    pub fn take(&self, id: &str) -> Option<Arc<EventBody>> {
        let mut inner = self.inner.lock().ok()?;
        let (event, uses, _) = inner.entries.get_mut(id)?;
        let event = event.clone();
        *uses -= 1;
        if *uses == 0 {
            inner.entries.remove(id);
            inner.bytes -= event.size();
        }
        Some(event)
    }

    /// Keeps `event` for `uses` more claims (nothing when 0).
    pub fn keep(&self, id: String, event: Arc<EventBody>, uses: u32) {
        if uses == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else { return };
        let size = event.size();
        if size > self.max_bytes {
            return;
        }
        inner.inserted += 1;
        let n = inner.inserted;
        if let Some((old, _, _)) = inner.entries.insert(id.clone(), (event, uses, n)) {
            inner.bytes -= old.size();
        }
        inner.bytes += size;
        inner.order.push_back((id, n));
        while inner.bytes > self.max_bytes {
            let Some((oldest, n)) = inner.order.pop_front() else { break };
            if inner.entries.get(&oldest).is_some_and(|(_, _, at)| *at == n) {
                if let Some((gone, _, _)) = inner.entries.remove(&oldest) {
                    inner.bytes -= gone.size();
                }
            }
        }
        // Entries that served all their claims leave their place in `order` behind: drop those
        // places once they outnumber the entries.
        if inner.order.len() > 2 * inner.entries.len() + 1024 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(id, n)| entries.get(id).is_some_and(|(_, _, at)| at == n));
        }
    }
}

impl Default for EventCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data_len: usize) -> Arc<EventBody> {
        Arc::new(EventBody {
            event_ref: "r".into(),
            event_type: "alert.created".into(),
            data: vec![b'x'; data_len].into(),
            created_at: 1,
        })
    }

    #[test]
    fn serves_as_many_claims_as_it_was_kept_for() {
        let cache = EventCache::new();
        cache.keep("e1".into(), event(10), 2);
        assert!(cache.take("e1").is_some());
        assert!(cache.take("e1").is_some());
        assert!(cache.take("e1").is_none(), "the last claim took it out");
        assert_eq!(cache.inner.lock().unwrap().bytes, 0);
        cache.keep("e2".into(), event(10), 0);
        assert!(cache.take("e2").is_none(), "an event with no other delivery is not kept");
    }

    #[test]
    fn stays_within_its_bytes_oldest_out_first() {
        let one = event(1000).size();
        let cache = EventCache::with_max_bytes(one * 3);
        for i in 0..10 {
            cache.keep(format!("e{i}"), event(1000), 5);
        }
        let inner = cache.inner.lock().unwrap();
        assert!(inner.bytes <= one * 3);
        assert_eq!(inner.entries.len(), 3);
        assert!(inner.entries.contains_key("e9") && !inner.entries.contains_key("e6"));
    }

    #[test]
    fn places_of_served_entries_do_not_pile_up() {
        let cache = EventCache::new();
        for i in 0..10_000 {
            let id = format!("e{i}");
            cache.keep(id.clone(), event(10), 1);
            assert!(cache.take(&id).is_some());
        }
        let inner = cache.inner.lock().unwrap();
        assert!(inner.entries.is_empty() && inner.bytes == 0);
        assert!(inner.order.len() <= 1024 + 1, "{}", inner.order.len());
    }
}
