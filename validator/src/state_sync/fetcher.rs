//! Which chunk to ask of which peer, and what to make of each answer: the
//! joiner's download of one snapshot, a rule of the engine's like
//! [`super::offers`]. A state machine without I/O or a clock, generic over
//! the peer id: the join ([`super::join`]) sends the requests
//! it returns, feeds it the answers and says what time it is, in
//! milliseconds since any fixed instant, so the hostile cases are tested
//! without a network and replay the same way every run (ordered maps only:
//! which chunk goes out first never depends on a hash seed).
//!
//! - Requests go round-robin to the peers that offered this snapshot, at
//!   most [`PER_PEER`] in flight each, so no one peer holds the download.
//! - An answer is taken only from the peer it was asked of, for a chunk in
//!   flight; anything else is ignored (a late answer to a request given up
//!   is not a fault).
//! - A chunk that does not hash to its root in the verified manifest is
//!   refused, its peer is dropped from the sources and reported for a
//!   charge, and the chunk is asked of another peer.
//! - A peer that says the snapshot is gone is dropped without a charge. A
//!   request silent past the timeout is asked again (of the next source in
//!   turn); a peer silent twice on the same chunk is dropped as a source,
//!   without a charge (silence proves nothing) but reported
//!   ([`ChunkFetcher::take_silenced`]) so the joiner sets its offer aside.
//!   Without that, a peer offering a snapshot nobody else offers (a height
//!   of its own choosing) that answers every chunk but one held the join
//!   for good: the one chunk went back to it at every timeout.
//!
//! Bound: leaves are kept only after their chunk verified, so what is held
//! is at most the authentic state; answers in flight are at most
//! `PER_PEER` frames per source; silences remembered at most one per chunk
//! and source.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use agora_proto::v1 as pb;

use crate::ledger::merkle::chunks::{ChunkError, verify_chunk};

/// Chunk requests in flight to one peer at once.
pub const PER_PEER: usize = 4;

/// What an answer was.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The chunk verified and is kept.
    Accepted,
    /// Not an answer to a request in flight to that peer: ignored.
    Ignored,
    /// The peer no longer holds the snapshot: dropped as a source.
    Gone,
    /// The chunk does not verify: the peer is dropped and to be charged.
    Bad(ChunkError),
}

/// The download of one snapshot (see the module docs).
#[derive(Debug)]
pub struct ChunkFetcher<P> {
    height: u64,
    manifest: pb::SnapshotManifest,
    timeout_ms: u64,
    sources: Vec<P>,
    next_source: usize,
    missing: VecDeque<u32>,
    /// Chunk → the peer asked and when (the host's milliseconds).
    in_flight: BTreeMap<u32, (P, u64)>,
    received: Vec<Option<Vec<pb::StateLeaf>>>,
    remaining: usize,
    /// (chunk, peer) pairs whose request went unanswered past the timeout.
    silences: BTreeSet<(u32, P)>,
    /// Peers dropped for silence, not yet taken by the joiner.
    silenced: Vec<P>,
    /// Off only in the simulator's negative control (feature
    /// `test-faults`): chunks are kept unverified.
    check_chunks: bool,
}

impl<P: Copy + Ord> ChunkFetcher<P> {
    /// A download of the snapshot of `height` whose `manifest` was verified
    /// against the certified app hash, from the peers that offered it; a
    /// request unanswered `timeout_ms` after it went out is given up.
    /// Chunks the manifest says are empty are done at once (an empty
    /// chunk's root is the placeholder, which the manifest check binds).
    pub fn new(
        height: u64,
        manifest: pb::SnapshotManifest,
        sources: Vec<P>,
        timeout_ms: u64,
    ) -> Self {
        let n = manifest.chunks.len();
        let mut received = vec![None; n];
        let mut missing = VecDeque::new();
        for (i, c) in manifest.chunks.iter().enumerate() {
            if c.leaves == 0 {
                received[i] = Some(Vec::new());
            } else {
                missing.push_back(i as u32);
            }
        }
        let remaining = missing.len();
        Self {
            height,
            manifest,
            timeout_ms,
            sources,
            next_source: 0,
            missing,
            in_flight: BTreeMap::new(),
            received,
            remaining,
            silences: BTreeSet::new(),
            silenced: Vec::new(),
            check_chunks: true,
        }
    }

    /// Keeps every chunk unverified: the negative control of the
    /// simulator's state-sync scenario, which must then catch the forged
    /// state.
    #[cfg(feature = "test-faults")]
    pub fn skip_chunk_checks(&mut self) {
        self.check_chunks = false;
    }

    /// The snapshot's height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Chunks in the manifest (empty ones included).
    pub fn chunks(&self) -> usize {
        self.manifest.chunks.len()
    }

    /// Chunks not yet verified.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether every chunk verified.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Whether any peer is left to ask.
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Gives back requests silent past the timeout (dropping a peer silent
    /// a second time on the same chunk), then the requests to send now,
    /// filling each source up to [`PER_PEER`] in flight. `now_ms` is the
    /// host's clock; it never runs backwards.
    pub fn requests(&mut self, now_ms: u64) -> Vec<(P, pb::ChunkRequest)> {
        let expired: Vec<(u32, P)> = self
            .in_flight
            .iter()
            .filter(|(_, (_, at))| now_ms.saturating_sub(*at) >= self.timeout_ms)
            .map(|(i, (p, _))| (*i, *p))
            .collect();
        for (i, peer) in expired {
            self.in_flight.remove(&i);
            self.missing.push_back(i);
            if !self.silences.insert((i, peer)) && self.sources.contains(&peer) {
                self.drop_source(peer);
                self.silenced.push(peer);
            }
        }
        let mut out = Vec::new();
        let mut load: BTreeMap<P, usize> = BTreeMap::new();
        for (p, _) in self.in_flight.values() {
            *load.entry(*p).or_default() += 1;
        }
        let mut full = BTreeSet::new();
        while !self.missing.is_empty() && full.len() < self.sources.len() {
            let peer = self.sources[self.next_source % self.sources.len()];
            self.next_source = self.next_source.wrapping_add(1);
            let n = load.entry(peer).or_default();
            if *n >= PER_PEER {
                full.insert(peer);
                continue;
            }
            let Some(index) = self.missing.pop_front() else {
                break;
            };
            *n += 1;
            self.in_flight.insert(index, (peer, now_ms));
            out.push((
                peer,
                pb::ChunkRequest {
                    height: self.height,
                    index,
                },
            ));
        }
        out
    }

    /// Takes `peer`'s answer.
    pub fn on_response(&mut self, peer: P, r: pb::ChunkResponse) -> Verdict {
        if r.height != self.height {
            return Verdict::Ignored;
        }
        match self.in_flight.get(&r.index) {
            Some((asked, _)) if *asked == peer => {}
            _ => return Verdict::Ignored,
        }
        self.in_flight.remove(&r.index);
        if r.unavailable {
            self.missing.push_front(r.index);
            self.drop_source(peer);
            return Verdict::Gone;
        }
        let checked = if self.check_chunks {
            verify_chunk(&self.manifest, r.index, &r.leaves)
        } else {
            Ok(())
        };
        if let Err(e) = checked {
            self.missing.push_front(r.index);
            self.drop_source(peer);
            return Verdict::Bad(e);
        }
        let slot = &mut self.received[r.index as usize];
        debug_assert!(slot.is_none(), "a chunk in flight was not received yet");
        *slot = Some(r.leaves);
        self.remaining -= 1;
        Verdict::Accepted
    }

    /// The peers dropped for silence since the last call.
    pub fn take_silenced(&mut self) -> Vec<P> {
        std::mem::take(&mut self.silenced)
    }

    /// Stops asking `peer` (gone, or it served a bad chunk); what was in
    /// flight to it is asked of others.
    pub fn drop_source(&mut self, peer: P) {
        self.sources.retain(|p| *p != peer);
        self.give_back(peer);
    }

    /// `peer` connected again (its connection was replaced by another, or
    /// it came back): what was in flight to it went out over a connection
    /// that is gone and may never be answered, so it is asked again now,
    /// not after the timeout. Seen on loopback: two nodes that dial each
    /// other at once settle on one connection, and requests sent over the
    /// other waited the whole timeout (10 s), by which time the snapshot
    /// was gone.
    pub fn reconnected(&mut self, peer: P) {
        self.give_back(peer);
    }

    /// Puts what is in flight to `peer` first in line again.
    fn give_back(&mut self, peer: P) {
        let theirs: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, (p, _))| *p == peer)
            .map(|(i, _)| *i)
            .collect();
        for i in theirs {
            self.in_flight.remove(&i);
            self.missing.push_front(i);
        }
    }

    /// Every leaf, once done (chunk by chunk, each in key-hash order).
    pub fn into_leaves(self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
        debug_assert!(self.is_done());
        self.received
            .into_iter()
            .flatten()
            .flatten()
            .map(|l| (l.key, l.value))
    }
}

#[cfg(test)]
mod tests;
