//! How fast each peer served block sync, and so which able peer to ask
//! next: the one whose answers cost least.
//!
//! A peer's cost is the time one of its answers took, scaled up by the
//! share of the asked-for blocks it did not hold (milliseconds per full
//! answer), averaged with its previous cost; a request given up for its
//! timeout costs [`TIMED_OUT`]. Requests go round-robin over the peers
//! within [`super::sync::SPREAD`] of the cheapest (`sync.rs`). A peer not
//! measured yet is taken to cost what the cheapest able peer costs: it
//! gets its turn in the round, no more. Costs are kept when a peer
//! disconnects. Both close the same hole: if a new or returning peer came
//! first, a slow peer that reconnects after each answer would be asked at
//! every reconnection, and the one request in flight would wait on it
//! each time; now reconnecting changes nothing, and a fresh identity per
//! answer (each a new handshake) wins one request per round of the able
//! peers, as round-robin alone gave it.
//!
//! Why not round-robin alone: a peer that answers each request with one
//! block just inside the timeout was asked one request in every p (p the
//! able peers), and every one of its answers held the sync for up to
//! [`super::sync::REQUEST_TIMEOUT_MS`]: with three honest peers serving
//! 256 blocks in ~0.1 s, a node catching up went at ~145 blocks/s instead
//! of thousands. Now it is asked once, measured, and passed over while a
//! faster peer can serve (test `a_slow_peer_is_asked_once_then_passed_over`
//! in `sync.rs`).
//!
//! Bound: at most [`MAX_REMEMBERED`] costs; past it the entry of the
//! lowest peer id is forgotten (that peer is then unmeasured again): about
//! 80 KiB with the node's 32-byte peer ids.

use std::collections::BTreeMap;

use super::sync::{REQUEST_TIMEOUT_MS, SYNC_BATCH};

/// The cost of a request given up for its timeout (and the most any
/// answer costs): the timeout, as if one block of a full batch had come.
pub const TIMED_OUT: u64 = REQUEST_TIMEOUT_MS * SYNC_BATCH as u64;

/// Peers whose costs are remembered, at most (a few times the most peers
/// a node connects to).
pub const MAX_REMEMBERED: usize = 1024;

/// Per peer, milliseconds per full answer (see the module docs).
#[derive(Debug, Clone)]
pub struct SyncPace<P> {
    cost: BTreeMap<P, u64>,
}

impl<P> Default for SyncPace<P> {
    fn default() -> Self {
        Self {
            cost: BTreeMap::new(),
        }
    }
}

impl<P: Copy + Ord> SyncPace<P> {
    /// `peer` answered after `elapsed_ms` with `served` of the `expected`
    /// blocks (what it was asked for, within what it claimed).
    pub fn answered(&mut self, peer: P, elapsed_ms: u64, served: u64, expected: u64) {
        debug_assert!(expected > 0, "a request asks for at least one block");
        let sample = elapsed_ms
            .max(1)
            .saturating_mul(expected.max(1))
            .checked_div(served)
            .unwrap_or(TIMED_OUT)
            .min(TIMED_OUT);
        self.record(peer, sample);
    }

    /// A request to `peer` was given up for its timeout, or its answer
    /// served nothing it claimed.
    pub fn failed(&mut self, peer: P) {
        self.record(peer, TIMED_OUT);
    }

    fn record(&mut self, peer: P, sample: u64) {
        if self.cost.len() >= MAX_REMEMBERED && !self.cost.contains_key(&peer) {
            self.cost.pop_first();
        }
        let c = self.cost.entry(peer).or_insert(sample);
        *c = c.midpoint(sample);
        debug_assert!(self.cost.len() <= MAX_REMEMBERED);
    }

    /// What asking `peer` was measured to cost, if it was.
    pub fn cost(&self, peer: &P) -> Option<u64> {
        self.cost.get(peer).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_fast_answer_costs_its_time_and_a_thin_slow_one_far_more() {
        let mut p = SyncPace::<u16>::default();
        assert_eq!(p.cost(&1), None);
        p.answered(1, 100, 256, 256);
        assert_eq!(p.cost(&1), Some(100));
        p.answered(2, 4_900, 1, 256);
        assert_eq!(p.cost(&2), Some(4_900 * 256));
        // Near the tip fewer blocks exist: a full answer of what was
        // expected is not penalised.
        p.answered(3, 100, 10, 10);
        assert_eq!(p.cost(&3), Some(100));
        // Averaged: one bad answer does not exile an honest peer for good,
        // and one good answer does not clear a slow one.
        p.answered(1, 300, 256, 256);
        assert_eq!(p.cost(&1), Some(200));
        p.answered(2, 100, 256, 256);
        assert!(p.cost(&2) > Some(600_000));
        p.failed(3);
        assert_eq!(p.cost(&3), Some((100 + TIMED_OUT) / 2));
        p.answered(4, 10, 0, 256);
        assert_eq!(p.cost(&4), Some(TIMED_OUT), "nothing served");
        // Bounded: past MAX_REMEMBERED the lowest id is forgotten.
        for peer in 10..10 + MAX_REMEMBERED as u16 {
            p.answered(peer, 100, 256, 256);
        }
        assert_eq!(p.cost.len(), MAX_REMEMBERED);
        assert_eq!(p.cost(&1), None);
    }
}
