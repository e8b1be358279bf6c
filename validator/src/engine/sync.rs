//! Block sync bookkeeping: which peers claim to be ahead, the one request
//! in flight, and which responses are wanted.
//!
//! A response is accepted only from the peer asked, and only once; anything
//! else is unsolicited and dropped before any check costs us a pairing. A
//! peer that claims a height it then does not serve (a false announcement)
//! loses its claim and is reported, so the next request goes elsewhere. A
//! request unanswered for [`REQUEST_TIMEOUT_MS`] is given up the same way.
//!
//! Bounds: one claimed height per connected peer; one request in flight;
//! the queue of blocks taken from a response holds at most
//! [`MAX_QUEUED_BLOCKS`] (the serving side caps a response at 512 blocks
//! and one 4 MiB frame).

use crate::types::Height;
use agora_proto::v1 as pb;
use std::collections::{BTreeMap, VecDeque};

/// Blocks asked for per request. Applying a block costs a few milliseconds
/// (certificate check, execution, one fsync), so a batch is about a second
/// of work per round trip.
pub const SYNC_BATCH: u32 = 256;
/// A request unanswered this long is given up (ms).
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Blocks kept from one response, at most.
pub const MAX_QUEUED_BLOCKS: usize = 512;

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
}

/// Peers' claimed heights and the request in flight.
#[derive(Debug, Clone)]
pub struct SyncState<P> {
    claims: BTreeMap<P, Height>,
    in_flight: Option<Request<P>>,
    /// The claim the request in flight was made on (a later announcement
    /// may overtake the answer: the answer is judged against this one).
    asked_claim: Height,
    queue: VecDeque<(P, pb::CertifiedBlock)>,
}

impl<P> Default for SyncState<P> {
    fn default() -> Self {
        Self {
            claims: BTreeMap::new(),
            in_flight: None,
            asked_claim: 0,
            queue: VecDeque::new(),
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
    /// The peer claimed to be ahead and served nothing usable.
    FalseHeight,
}

impl<P: Copy + Ord> SyncState<P> {
    /// Records the height a peer says it has committed.
    pub fn note_height(&mut self, peer: P, height: Height) {
        let h = self.claims.entry(peer).or_default();
        *h = (*h).max(height);
    }

    /// Forgets a disconnected peer (and a request to it).
    pub fn remove(&mut self, peer: &P) {
        self.claims.remove(peer);
        if self.in_flight.is_some_and(|r| r.peer == *peer) {
            self.in_flight = None;
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
        Some(r.peer)
    }

    /// A request to make, if a peer claims more than `slack` heights above
    /// `committed` and none is in flight (a timed-out one is given up and
    /// its peer's claim dropped).
    pub fn poll(&mut self, now_ms: u64, committed: Height, slack: u64) -> Option<Request<P>> {
        if let Some(r) = self.in_flight {
            if now_ms.saturating_sub(r.sent_ms) < REQUEST_TIMEOUT_MS {
                return None;
            }
            self.claims.insert(r.peer, committed);
            self.in_flight = None;
        }
        if !self.queue.is_empty() {
            return None;
        }
        let (peer, claim) = self
            .claims
            .iter()
            .filter(|(_, h)| **h > committed + slack)
            .max_by_key(|(p, h)| (**h, std::cmp::Reverse(**p)))?;
        self.asked_claim = *claim;
        let r = Request {
            peer: *peer,
            from: committed + 1,
            count: SYNC_BATCH,
            sent_ms: now_ms,
        };
        self.in_flight = Some(r);
        Some(r)
    }

    /// Takes a response from `peer`: queued if it answers our request.
    pub fn on_response(
        &mut self,
        peer: P,
        resp: pb::BlockResponse,
        committed: Height,
    ) -> ResponseVerdict {
        if self.in_flight.is_none_or(|r| r.peer != peer) {
            return ResponseVerdict::Unsolicited;
        }
        self.in_flight = None;
        // The claim we asked on: a newer announcement may have overtaken
        // this answer (and we may have committed what we asked for
        // meanwhile), which makes no liar.
        let claimed = self.asked_claim;
        let usable: Vec<pb::CertifiedBlock> = resp
            .blocks
            .into_iter()
            .filter(|b| block_height(b).is_some_and(|h| h > committed))
            .take(MAX_QUEUED_BLOCKS)
            .collect();
        // What it says now replaces what it claimed before.
        self.claims.insert(peer, resp.latest_height);
        if usable.is_empty() {
            if claimed > committed {
                self.claims.insert(peer, committed);
                return ResponseVerdict::FalseHeight;
            }
            return ResponseVerdict::Accepted { queued: 0 };
        }
        let queued = usable.len();
        self.queue.extend(usable.into_iter().map(|b| (peer, b)));
        ResponseVerdict::Accepted { queued }
    }

    /// The next queued block and the peer that served it.
    pub fn next_block(&mut self) -> Option<(P, pb::CertifiedBlock)> {
        self.queue.pop_front()
    }

    /// Drops the rest of a response after one of its blocks was bad.
    pub fn drop_queue_from(&mut self, peer: &P) {
        self.queue.retain(|(p, _)| p != peer);
        self.claims.remove(peer);
    }

    /// Whether no block is queued.
    pub fn next_is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The request in flight.
    pub fn in_flight(&self) -> Option<Request<P>> {
        self.in_flight
    }
}

fn block_height(b: &pb::CertifiedBlock) -> Option<Height> {
    b.block.as_ref()?.header.as_ref().map(|h| h.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certified(h: Height) -> pb::CertifiedBlock {
        pb::CertifiedBlock {
            block: Some(pb::Block {
                header: Some(pb::Header {
                    height: h,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            certificate: None,
        }
    }

    /// Found by the simulator: we asked a peer that claimed height 1 while
    /// we had 0, committed block 1 ourselves meanwhile, and its next status
    /// (height 2) overtook its answer (block 1, latest 1). That answer has
    /// nothing for us, but the peer did not lie: it is judged against the
    /// claim we asked on, not the newer one.
    #[test]
    fn an_announcement_that_overtakes_the_answer_makes_no_liar() {
        let mut s = SyncState::<u8>::default();
        s.note_height(0, 1);
        let r = s.poll(0, 0, 0).expect("a request");
        assert_eq!((r.peer, r.from), (0, 1));
        s.note_height(0, 2);
        let answer = pb::BlockResponse {
            blocks: vec![certified(1)],
            latest_height: 1,
        };
        assert_eq!(
            s.on_response(0, answer, 1),
            ResponseVerdict::Accepted { queued: 0 }
        );
        // A peer that claims more than it serves still is a liar.
        s.note_height(1, 9);
        let r = s.poll(10, 1, 1).expect("a request");
        assert_eq!(r.peer, 1);
        let empty = pb::BlockResponse {
            blocks: Vec::new(),
            latest_height: 9,
        };
        assert_eq!(s.on_response(1, empty, 1), ResponseVerdict::FalseHeight);
    }
}
