//! Block sync bookkeeping: which peers claim to be ahead, the one request
//! in flight, and which responses are wanted.
//!
//! A response is accepted only from the peer asked, and only once; anything
//! else is unsolicited and dropped before any check costs us a pairing. A
//! peer that claims a height it then does not serve (a false announcement)
//! loses its claim and is reported, so the next request goes elsewhere. A
//! request unanswered for [`REQUEST_TIMEOUT_MS`] is given up the same way.
//!
//! Requests go round-robin (in peer order, from the one after the peer
//! asked last) over the peers that claim more than we have and whose
//! answers cost at most [`SPREAD`] times the cheapest's (`sync_pace.rs`:
//! milliseconds per full answer; a peer never asked takes its turn).
//! Asking the highest claim every time let one peer set the pace of a
//! node catching up: claiming the tip like everyone and answering each
//! request of [`SYNC_BATCH`] blocks with one block just inside the timeout
//! (an honest peer may send fewer than asked: its frame is bounded), it held that
//! node at 0.2 blocks/s, behind any live chain for good. Round-robin alone
//! (session 47) still gave it one request in as many as there are able
//! peers; measured, it is asked once and then passed over while a faster
//! peer can serve (session 48).
//!
//! A peer may prune old blocks (`storage.keep_blocks` of a node). Its
//! answer says the lowest height it still stores (`lowest_height`); an
//! empty answer to a request below that is no false announcement: the
//! peer is not reported, and it is not asked again while what we need
//! next lies below its floor ([`SyncState::poll`] skips it), so a node far
//! behind syncs from peers that keep its heights and charges nobody.
//!
//! Bounds: one claimed height per connected peer; one request in flight;
//! the queue of blocks taken from responses holds at most
//! [`MAX_QUEUED_BLOCKS`], three responses of [`SYNC_BATCH`] (each one
//! 4 MiB frame at most: 12 MiB). The next range is asked for while up to
//! two responses are still queued (pipelining, [`REQUEST_BELOW`]), from
//! the last queued height on: the answer travels, and its certificates
//! are checked off the loop, while the queue is applied.

pub mod serve;

use super::sync_pace::SyncPace;
use crate::certificate::CommitCertificate;
use crate::crypto::Hash;
use crate::types::Height;
use agora_proto::v1 as pb;
use std::collections::{BTreeMap, VecDeque};

/// Blocks asked for per request. Applying a block costs a few milliseconds
/// (certificate check, execution, one fsync), so a batch is about a second
/// of work per round trip.
pub const SYNC_BATCH: u32 = 256;
/// A request unanswered this long is given up (ms).
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Requests go round-robin over the able peers whose answers cost at most
/// this many times the cheapest's (`sync_pace.rs`): spread over the honest
/// ones, whose costs are alike (each peer's serving budget then sees a
/// share of the catch-up, not all of it), never to one that is orders of
/// magnitude slower while they can serve.
pub const SPREAD: u64 = 2;
/// Blocks queued from responses, at most.
pub const MAX_QUEUED_BLOCKS: usize = 3 * SYNC_BATCH as usize;
/// The next range is asked for once the queue holds this many blocks or
/// fewer, so that a whole answer always finds room.
pub const REQUEST_BELOW: usize = MAX_QUEUED_BLOCKS - SYNC_BATCH as usize;

/// A request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<P> {
    /// The peer asked.
    pub peer: P,
    /// First height asked for.
    pub from: Height,
    /// How many.
    pub count: u32,
    /// When it was sent (host clock, ms).
    pub sent_ms: u64,
    /// The height the peer claimed when it was asked.
    pub claimed: Height,
}

/// A queued synced block and the peer that served it.
#[derive(Debug, Clone)]
pub struct Queued<P> {
    /// The peer that served it.
    pub peer: P,
    /// The block and its certificate, as received.
    pub block: pb::CertifiedBlock,
    /// Its certificate, decoded and verified ahead in a batch
    /// (`sync_batch.rs`), or None.
    pub checked: Option<Checked>,
}

/// A certificate decoded and verified ahead of its block's turn.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The decoded certificate (not decoded again).
    pub cert: CommitCertificate,
    /// The hash of the validator set its signature verified under.
    pub set_hash: Hash,
}

/// Peers' claimed heights and the request in flight.
#[derive(Debug, Clone)]
pub struct SyncState<P> {
    claims: BTreeMap<P, Height>,
    /// The lowest height each peer said it stores (only peers that prune;
    /// one entry per connected peer at most, forgotten with its claim).
    floors: BTreeMap<P, Height>,
    in_flight: Option<Request<P>>,
    /// The peer asked last: among able peers within [`SPREAD`] of the
    /// cheapest, the next request goes to the first after it (see the
    /// module docs).
    last_asked: Option<P>,
    /// What each peer's answers cost.
    pace: SyncPace<P>,
    /// The last request given up for its timeout: a slow honest peer's
    /// answer to it is dropped, not charged.
    timed_out: Option<P>,
    queue: VecDeque<Queued<P>>,
    /// The last height a batched certificate check looked at: a block up
    /// to it that is still unchecked failed there and is verified alone,
    /// never batched again.
    pub(super) batched_through: Height,
    /// The heights of the certificate job out on another thread, whose
    /// blocks wait for its verdict (`sync_batch.rs`).
    pub(super) job: Option<std::ops::RangeInclusive<Height>>,
    /// No job is taken before the tip is two heights below this one: a
    /// job's certificate failed its cheap checks against the guessed set
    /// there (see `sync_batch.rs`).
    pub(super) job_not_before: Height,
}

impl<P> Default for SyncState<P> {
    fn default() -> Self {
        Self {
            claims: BTreeMap::new(),
            floors: BTreeMap::new(),
            in_flight: None,
            last_asked: None,
            pace: SyncPace::default(),
            timed_out: None,
            queue: VecDeque::new(),
            batched_through: 0,
            job: None,
            job_not_before: 0,
        }
    }
}

/// What became of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// It answers our request: its blocks are queued.
    Accepted {
        /// Blocks queued.
        queued: usize,
    },
    /// Nobody asked this peer: dropped unverified.
    Unsolicited,
    /// The answer to a request we gave up on: dropped, not charged.
    Late,
    /// The peer claimed to be ahead and served nothing usable.
    FalseHeight,
    /// The peer served nothing because it pruned what was asked (its
    /// answer's `lowest_height` is above the first height asked): not a
    /// fault, and it is not asked again below that height.
    Pruned {
        /// The lowest height the peer stores.
        lowest: Height,
    },
}

impl<P: Copy + Ord> SyncState<P> {
    /// Records the height a peer says it has committed.
    pub fn note_height(&mut self, peer: P, height: Height) {
        let h = self.claims.entry(peer).or_default();
        *h = (*h).max(height);
    }

    /// Forgets a disconnected peer's claim (and a request to it); its pace
    /// is kept (`sync_pace.rs`).
    pub fn remove(&mut self, peer: &P) {
        self.claims.remove(peer);
        self.floors.remove(peer);
        if self.in_flight.is_some_and(|r| r.peer == *peer) {
            self.in_flight = None;
        }
    }

    /// The peer connected again while still connected (its connection was
    /// replaced: a duplicate dial settled, or it restarted). A request in
    /// flight to it may have gone with the old connection, and so may its
    /// answer; waiting for it charged an honest peer a false height after
    /// [`REQUEST_TIMEOUT_MS`] (seen in `block_pruning_net`). It is given
    /// up without a charge; an answer that still comes is late (dropped,
    /// not charged), and the peer keeps its claim, so it is asked again.
    pub fn reconnected(&mut self, peer: &P) {
        if self.in_flight.is_some_and(|r| r.peer == *peer) {
            self.in_flight = None;
            self.timed_out = Some(*peer);
        }
    }

    /// Gives up the request in flight if it has been unanswered for
    /// [`REQUEST_TIMEOUT_MS`]: its peer loses its claim and is returned, to
    /// be reported like a false announcement (it claimed a height and did
    /// not serve it). Without this, a peer that re-announces a false height
    /// after every timeout would be asked again and again, and a node that
    /// is behind would never catch up.
    pub fn expire(&mut self, now_ms: u64) -> Option<P> {
        let r = self.in_flight?;
        if now_ms.saturating_sub(r.sent_ms) < REQUEST_TIMEOUT_MS {
            return None;
        }
        self.in_flight = None;
        self.claims.remove(&r.peer);
        self.pace.failed(r.peer);
        // Its answer may still come: dropped then, not charged twice.
        self.timed_out = Some(r.peer);
        Some(r.peer)
    }

    /// A request to make, if a peer claims more than `slack` heights above
    /// what we have (`committed`, or the last queued block) and none is in
    /// flight (a timed-out one is given up and its peer's claim dropped);
    /// to the first such peer after the one asked last whose answers cost
    /// at most [`SPREAD`] times the cheapest's.
    /// Pipelined: the next range is asked for while the queue still holds
    /// up to [`REQUEST_BELOW`] blocks, so it travels while the queued
    /// blocks are applied. A peer that said it pruned the next height we
    /// need is not asked (see the module docs).
    pub fn poll(&mut self, now_ms: u64, committed: Height, slack: u64) -> Option<Request<P>> {
        if let Some(r) = self.in_flight {
            if now_ms.saturating_sub(r.sent_ms) < REQUEST_TIMEOUT_MS {
                return None;
            }
            self.claims.insert(r.peer, committed);
            self.pace.failed(r.peer);
            self.in_flight = None;
            self.timed_out = Some(r.peer);
        }
        if self.queue.len() > REQUEST_BELOW {
            return None;
        }
        let have = self.last_queued().unwrap_or(committed).max(committed);
        let floors = &self.floors;
        let serves = |(p, h): &(&P, &Height)| {
            **h > have + slack && floors.get(*p).is_none_or(|f| *f <= have + 1)
        };
        // The able peers from the one after the peer asked last, round
        // the ring; the first whose cost is within `SPREAD` of the
        // cheapest's.
        let last = self.last_asked;
        let after = self
            .claims
            .iter()
            .filter(|(p, _)| last.is_none_or(|l| **p > l));
        let before = self
            .claims
            .iter()
            .filter(|(p, _)| last.is_some_and(|l| **p <= l));
        let able: Vec<(P, Height)> = after
            .chain(before)
            .filter(serves)
            .map(|(p, h)| (*p, *h))
            .collect();
        // Unmeasured peers cost what the cheapest measured one does (all
        // of them nothing when none is measured: plain round-robin).
        let cheapest = able
            .iter()
            .filter_map(|(p, _)| self.pace.cost(p))
            .min()
            .unwrap_or(0);
        let (peer, claimed) = *able.iter().find(|(p, _)| {
            self.pace.cost(p).unwrap_or(cheapest) <= cheapest.saturating_mul(SPREAD)
        })?;
        let r = Request {
            peer,
            from: have + 1,
            count: SYNC_BATCH,
            sent_ms: now_ms,
            claimed,
        };
        self.in_flight = Some(r);
        self.last_asked = Some(r.peer);
        Some(r)
    }

    /// The height of the last queued block.
    fn last_queued(&self) -> Option<Height> {
        self.queue.back().and_then(|q| block_height(&q.block))
    }

    /// Takes a response from `peer`, arrived at `now_ms`: queued if it
    /// answers our request, and its time counted to the peer's pace.
    pub fn on_response(
        &mut self,
        peer: P,
        resp: pb::BlockResponse,
        committed: Height,
        now_ms: u64,
    ) -> ResponseVerdict {
        if self.in_flight.is_none_or(|r| r.peer != peer) {
            if self.timed_out == Some(peer) {
                self.timed_out = None;
                return ResponseVerdict::Late;
            }
            return ResponseVerdict::Unsolicited;
        }
        let Some(asked) = self.in_flight.take() else {
            return ResponseVerdict::Unsolicited;
        };
        // Judged against what was asked, not against where we are now:
        // consensus may have taken us past its blocks in the meantime.
        let in_range = resp
            .blocks
            .iter()
            .filter(|b| block_height(b).is_some_and(|h| h >= asked.from))
            .count() as u64;
        let served = in_range > 0;
        // Only what follows what we have, queued or committed.
        let have = self.last_queued().unwrap_or(committed).max(committed);
        if asked.from > have + 1 {
            // Asked to go on after blocks we have since dropped (one of
            // them was bad): the answer cannot follow what we have, and
            // its sender did nothing wrong. Asked again from `have + 1`.
            return ResponseVerdict::Late;
        }
        let room = MAX_QUEUED_BLOCKS.saturating_sub(self.queue.len());
        let usable: Vec<pb::CertifiedBlock> = resp
            .blocks
            .into_iter()
            .filter(|b| block_height(b).is_some_and(|h| h > have))
            .take(room)
            .collect();
        // What it says now replaces what it claimed before.
        self.claims.insert(peer, resp.latest_height);
        if resp.lowest_height > 1 {
            self.floors.insert(peer, resp.lowest_height);
        } else {
            self.floors.remove(&peer);
        }
        if !served && resp.lowest_height > asked.from {
            // Pruned there: its claim stands (it does hold the heights it
            // announced), but `poll` will not ask it for ours.
            return ResponseVerdict::Pruned {
                lowest: resp.lowest_height,
            };
        }
        if !served && asked.claimed >= asked.from {
            self.claims.insert(peer, committed);
            self.pace.failed(peer);
            return ResponseVerdict::FalseHeight;
        }
        // What it could serve: the blocks asked for, up to its claim then.
        let expected = u64::from(asked.count)
            .min(asked.claimed.saturating_sub(asked.from) + 1)
            .max(1);
        let elapsed = now_ms.saturating_sub(asked.sent_ms);
        self.pace
            .answered(peer, elapsed, in_range.min(expected), expected);
        if usable.is_empty() {
            return ResponseVerdict::Accepted { queued: 0 };
        }
        let queued = usable.len();
        self.queue.extend(usable.into_iter().map(|block| Queued {
            peer,
            block,
            checked: None,
        }));
        ResponseVerdict::Accepted { queued }
    }

    /// The next queued block and the peer that served it.
    pub fn next_block(&mut self) -> Option<Queued<P>> {
        self.queue.pop_front()
    }

    /// The queued blocks, in order, for the batched certificate check.
    pub(super) fn queued_mut(&mut self) -> impl Iterator<Item = &mut Queued<P>> {
        self.queue.iter_mut()
    }

    /// The queue position and height of the first queued block above `h`.
    pub(super) fn first_queued_above(&self, h: Height) -> Option<(usize, Height)> {
        self.queue
            .iter()
            .enumerate()
            .filter_map(|(i, q)| block_height(&q.block).map(|qh| (i, qh)))
            .find(|(_, qh)| *qh > h)
    }

    /// The height of the next queued block, if any.
    pub(super) fn front_height(&self) -> Option<Height> {
        self.queue.front().and_then(|q| block_height(&q.block))
    }

    /// After `peer`'s block at the front was bad: drops every queued block,
    /// not only that peer's. The queue is one ascending run, so what
    /// follows the bad block (the rest of its response, and the pipelined
    /// answer of another peer after it) can no longer follow what we have;
    /// kept, the other peer's blocks were refused as out of order and that
    /// honest peer charged (simulator seed 9012254). Only `peer` loses its
    /// claim.
    pub fn drop_queue_from(&mut self, peer: &P) {
        self.queue.clear();
        self.claims.remove(peer);
    }

    /// Whether no block is queued.
    pub fn next_is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue is low enough to ask for the next range (see [`Self::poll`]).
    pub fn wants_more(&self) -> bool {
        self.in_flight.is_none() && self.queue.len() <= REQUEST_BELOW
    }

    /// The request in flight.
    pub fn in_flight(&self) -> Option<Request<P>> {
        self.in_flight
    }
}

pub(super) fn block_height(b: &pb::CertifiedBlock) -> Option<Height> {
    b.block.as_ref()?.header.as_ref().map(|h| h.height)
}

#[cfg(test)]
mod tests;
