//! Book-keeping shared by the transport's tasks: the bounded cache of gossip
//! already seen, and the penalties (and temporary bans) of misbehaving peers.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use agora_validator::Hash;

use super::PeerId;

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

/// What a peer has been penalised for.
#[derive(Debug, Clone)]
pub struct Penalty {
    /// How many times the peer was penalised since the node started.
    pub count: u32,
    /// The most recent reason.
    pub last_reason: String,
    /// Until when connections from or to the peer are refused.
    pub banned_until: Instant,
}

/// Penalties by peer. Bounded: when full, the entry whose ban ended longest
/// ago is forgotten.
#[derive(Debug, Default)]
pub struct Penalties {
    map: HashMap<PeerId, Penalty>,
}

/// At most this many penalised peers are remembered.
const MAX_PENALISED: usize = 4096;

impl Penalties {
    /// Records a penalty; the ban doubles with each repeat offence, capped at 64×.
    pub fn record(&mut self, peer: PeerId, reason: String, base_ban: Duration, now: Instant) {
        if self.map.len() >= MAX_PENALISED
            && !self.map.contains_key(&peer)
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, p)| p.banned_until)
                .map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
        let e = self.map.entry(peer).or_insert(Penalty {
            count: 0,
            last_reason: String::new(),
            banned_until: now,
        });
        e.count = e.count.saturating_add(1);
        e.last_reason = reason;
        let factor = 1u32 << e.count.saturating_sub(1).min(6);
        e.banned_until = now + base_ban * factor;
    }

    /// Whether the peer is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.map.get(peer).is_some_and(|p| p.banned_until > now)
    }

    /// The penalty record of a peer, if any.
    pub fn get(&self, peer: &PeerId) -> Option<&Penalty> {
        self.map.get(peer)
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

    #[test]
    fn bans_grow_and_expire() {
        let mut p = Penalties::default();
        let peer = PeerId([1; 32]);
        let t0 = Instant::now();
        p.record(peer, "x".into(), Duration::from_secs(1), t0);
        assert!(p.is_banned(&peer, t0));
        assert!(!p.is_banned(&peer, t0 + Duration::from_secs(2)));
        p.record(peer, "y".into(), Duration::from_secs(1), t0);
        assert!(p.is_banned(&peer, t0 + Duration::from_millis(1500)));
        assert_eq!(p.get(&peer).map(|x| x.count), Some(2));
    }
}
