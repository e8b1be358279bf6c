//! Book-keeping shared by the transport's tasks: the bounded cache of gossip
//! already seen (scores and bans are in [`super::score`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use agora_validator::Hash;

/// A copy of a message first seen longer ago than this is delivered again.
/// Relayed copies arriving together are still dropped, but the runner's
/// re-gossip (every second) reaches a node that received a message and had to
/// drop it, for instance because it was then too many heights behind; a
/// cache that never forgot would keep such a node stalled once it caught up.
pub const REDELIVER_AFTER: Duration = Duration::from_millis(1_000);

/// A bounded set of message hashes, forgetting the oldest first. Used to
/// deliver each gossiped message to the node once however many peers relay
/// it (within [`REDELIVER_AFTER`]).
#[derive(Debug)]
pub struct SeenCache {
    seen_at: HashMap<Hash, Instant>,
    order: VecDeque<Hash>,
    capacity: usize,
}

impl SeenCache {
    /// A cache remembering at most `capacity` hashes (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            seen_at: HashMap::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// Records `h` as seen now; returns true if it should be delivered: not
    /// seen before, or seen more than [`REDELIVER_AFTER`] ago.
    pub fn insert(&mut self, h: Hash) -> bool {
        self.insert_at(h, Instant::now())
    }

    /// [`Self::insert`] at a given time.
    pub fn insert_at(&mut self, h: Hash, now: Instant) -> bool {
        if let Some(at) = self.seen_at.get_mut(&h) {
            if now.saturating_duration_since(*at) < REDELIVER_AFTER {
                return false;
            }
            *at = now;
            return true;
        }
        self.seen_at.insert(h, now);
        self.order.push_back(h);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen_at.remove(&old);
        }
        true
    }

    /// Number of hashes remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_cache_is_bounded_and_forgets_oldest() {
        let mut c = SeenCache::new(3);
        for i in 0..5u8 {
            assert!(c.insert([i; 32]));
        }
        assert_eq!(c.len(), 3);
        assert!(!c.insert([4; 32]));
        assert!(c.insert([0; 32]), "oldest must have been forgotten");
    }

    #[test]
    fn seen_cache_delivers_a_copy_again_after_the_redelivery_window() {
        let mut c = SeenCache::new(10);
        let t0 = Instant::now();
        assert!(c.insert_at([1; 32], t0));
        assert!(!c.insert_at([1; 32], t0 + REDELIVER_AFTER / 2));
        assert!(c.insert_at([1; 32], t0 + REDELIVER_AFTER));
        // The window restarts from the redelivery.
        assert!(!c.insert_at([1; 32], t0 + REDELIVER_AFTER + REDELIVER_AFTER / 2));
        assert_eq!(c.len(), 1);
    }
}
