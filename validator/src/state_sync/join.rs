//! The course of a join by state sync: when offers are asked for and one
//! taken, what the anchor and the manifest decide, who is a source of the
//! chunks, who is charged and whose offers are set aside, and when the
//! download starts over. A state machine without I/O or a clock, generic
//! over the peer id, like the [`super::offers`] and [`super::fetcher`]
//! rules it runs: the host (`node/src/state_sync/join.rs`) reports
//! connections, offers, chunks and the verdict of its light client, says
//! what time it is (milliseconds since any fixed instant, never running
//! backwards) and carries out the [`Action`]s it gets back, in order.
//!
//! 1. *Gathering.* Every connected peer is asked for its newest snapshot,
//!    again every [`ASK_EVERY_MS`] while none is at or above the trusted
//!    height; [`GATHER_MS`] after the first usable offer the best is taken
//!    ([`super::offers::best`]).
//! 2. *Anchoring.* The host verifies header S + 1 from the checkpoint and
//!    the anchor of S with the offered seed. A seed that does not verify is
//!    the offering peer's fault (charged); an anchor no server can back is
//!    not provably anyone's, but the offer is set aside for
//!    [`SET_ASIDE_MS`], so a peer announcing a height that does not exist
//!    cannot hold the join on its offer.
//! 3. *Manifest.* Checked against the anchor's app hash: a peer whose
//!    manifest does not hash to it is charged. Every peer offering the same
//!    manifest at that height is a source; one offering another manifest
//!    for it is checked the same way and charged if it does not verify.
//! 4. *Downloading* ([`super::fetcher`]). A forged chunk is charged; a
//!    peer silent twice on one chunk has its offers set aside; with no
//!    source left, back to 1.
//! 5. *Installing.* Every chunk verified: the host rebuilds the state,
//!    compares its root once more and stores it.
//!
//! A peer charged is also set aside: the transport may keep its connection
//! (a charge closes one only past the ban threshold), and its next offer
//! must not be taken again.
//!
//! Bound: one offer kept per connected peer (each checked by
//! [`super::offers::check`] on arrival), at most [`MAX_SET_ASIDE`]
//! set-aside instants (forgotten once past), and the fetcher's own bounds.

use std::collections::{BTreeMap, BTreeSet};

use agora_proto::v1 as pb;

use super::fetcher::{ChunkFetcher, Verdict};
use super::offers::{self, OfferError};
use super::{Anchor, AnchorError};
use crate::crypto::Hash;
use crate::ledger::merkle::chunks::{ChunkError, verify_manifest};

/// How often offers are asked for again while none fits.
pub const ASK_EVERY_MS: u64 = 2_000;
/// How long to wait for more offers after the first usable one, so that
/// the offer most peers share can be seen to be shared.
pub const GATHER_MS: u64 = 500;
/// How long the offers of a peer are ignored after it served a snapshot
/// that does not verify, its snapshot header could not be verified, or it
/// left a chunk unanswered twice.
pub const SET_ASIDE_MS: u64 = 30_000;
/// Peers set aside at once; past it the one whose time ends first is
/// forgotten (each entry is a peer id and an instant).
pub const MAX_SET_ASIDE: usize = 4_096;

/// Why a peer is charged: it served a snapshot that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinFault {
    /// An offer no honest node sends.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// The offered seed is not the one the verified header commits to.
    #[error(transparent)]
    Seed(AnchorError),
    /// The offered manifest does not hash to the certified app hash.
    #[error(transparent)]
    Manifest(ChunkError),
    /// A chunk that does not hash to its root in the verified manifest.
    #[error("chunk {index}: {error}")]
    Chunk {
        /// The chunk's index.
        index: u32,
        /// What did not verify.
        error: ChunkError,
    },
}

/// Why the host's light client gave no anchor for the offer taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorFailure {
    /// The offered seed does not verify: the offering peer is at fault.
    Seed(AnchorError),
    /// No server served a verifiable header (perhaps they lag behind the
    /// peer): nobody's fault that can be shown.
    Unavailable,
}

/// Something the operator's log should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice<P> {
    /// Offers came, none at or above the trusted height (said once a pass).
    NoneHighEnough {
        /// The heights offered.
        offered: Vec<u64>,
    },
    /// The peer no longer holds the snapshot being fetched.
    Gone(P),
    /// The peer left a chunk unanswered twice: its offers are set aside.
    Silenced(P),
    /// Every source of the snapshot being fetched left: looking again.
    SourcesGone {
        /// The snapshot's height.
        height: u64,
    },
}

/// What the host must do, in order.
#[derive(Debug)]
pub enum Action<P> {
    /// Ask the peer for its newest snapshot.
    AskOffer(P),
    /// Verify header `height + 1` from the checkpoint and the anchor of
    /// `height` with `seed`, then call [`Join::anchor_verified`].
    VerifyAnchor {
        /// The peer whose offer it is.
        peer: P,
        /// The offered snapshot's height (S).
        height: u64,
        /// The offered seed after S.
        seed: Hash,
    },
    /// Send the chunk request to the peer (if it cannot be sent, call
    /// [`Join::unreachable`]).
    RequestChunk(P, pb::ChunkRequest),
    /// Charge the peer: it served a snapshot that does not verify.
    Charge(P, JoinFault),
    /// Every chunk verified against the anchor: rebuild the state from the
    /// leaves and store it. The join is over.
    Install {
        /// The verified anchor of the snapshot.
        anchor: Box<Anchor>,
        /// Every leaf, chunk by chunk.
        leaves: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// For the log.
    Notice(Notice<P>),
}

/// Where the join is.
#[derive(Debug)]
enum Phase<P> {
    Gathering {
        next_ask_ms: u64,
        decide_at_ms: Option<u64>,
        warned: bool,
    },
    Anchoring {
        peer: P,
        offer: pb::SnapshotOffer,
    },
    Downloading {
        fetcher: ChunkFetcher<P>,
        anchor: Box<Anchor>,
    },
    Done,
}

/// A join by state sync (see the module docs).
#[derive(Debug)]
pub struct Join<P> {
    /// The lowest snapshot height taken: one below the trusted height (the
    /// header verified is S + 1), and at least 1.
    min_height: u64,
    chunk_timeout_ms: u64,
    peers: BTreeSet<P>,
    offers: BTreeMap<P, pb::SnapshotOffer>,
    /// Peers whose offers are ignored until the instant given.
    set_aside: BTreeMap<P, u64>,
    phase: Phase<P>,
    /// Off only in the simulator's negative control (feature `test-faults`).
    #[cfg_attr(not(feature = "test-faults"), allow(dead_code))]
    check_chunks: bool,
}

impl<P: Copy + Ord> Join<P> {
    /// A join trusting a header at `trust_height`, with `peers` connected;
    /// a chunk request unanswered `chunk_timeout_ms` after it went out is
    /// given up. Returns the first actions (every peer asked for offers).
    pub fn start(
        trust_height: u64,
        chunk_timeout_ms: u64,
        peers: impl IntoIterator<Item = P>,
        now_ms: u64,
    ) -> (Self, Vec<Action<P>>) {
        let mut join = Self {
            min_height: trust_height.saturating_sub(1).max(1),
            chunk_timeout_ms,
            peers: peers.into_iter().collect(),
            offers: BTreeMap::new(),
            set_aside: BTreeMap::new(),
            phase: Phase::Done,
            check_chunks: true,
        };
        let mut out = Vec::new();
        join.gather(now_ms, true, &mut out);
        (join, out)
    }

    /// Takes chunks unverified from now on: the negative control of the
    /// simulator's state-sync scenario ([`ChunkFetcher::skip_chunk_checks`]).
    #[cfg(feature = "test-faults")]
    pub fn skip_chunk_checks(&mut self) {
        self.check_chunks = false;
    }

    /// Whether the join is over (the install action was given).
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The snapshot being fetched: its height, chunks verified and chunks
    /// in all (None outside the download).
    pub fn progress(&self) -> Option<(u64, usize, usize)> {
        match &self.phase {
            Phase::Downloading { fetcher, .. } => {
                let total = fetcher.chunks();
                Some((fetcher.height(), total - fetcher.remaining(), total))
            }
            _ => None,
        }
    }

    /// `peer` connected (or connected again).
    pub fn connected(&mut self, peer: P) -> Vec<Action<P>> {
        self.peers.insert(peer);
        if let Phase::Downloading { fetcher, .. } = &mut self.phase {
            fetcher.reconnected(peer);
        }
        vec![Action::AskOffer(peer)]
    }

    /// `peer`'s connection went: its offer is forgotten and it is no longer
    /// a source.
    pub fn disconnected(&mut self, peer: P) {
        self.peers.remove(&peer);
        self.offers.remove(&peer);
        self.unreachable(peer);
    }

    /// A request could not be sent to `peer`: it is no longer a source.
    pub fn unreachable(&mut self, peer: P) {
        if let Phase::Downloading { fetcher, .. } = &mut self.phase {
            fetcher.drop_source(peer);
        }
    }

    /// `peer`'s snapshot offer (height 0: it holds none).
    pub fn offer(&mut self, peer: P, o: pb::SnapshotOffer, now_ms: u64) -> Vec<Action<P>> {
        if o.height == 0 {
            return Vec::new();
        }
        if let Err(e) = offers::check(&o) {
            return vec![self.refuse(peer, e.into(), now_ms)];
        }
        self.set_aside.retain(|_, until| *until > now_ms);
        if !self.set_aside.contains_key(&peer) {
            self.offers.insert(peer, o);
        }
        Vec::new()
    }

    /// `peer`'s answer to a chunk request.
    pub fn chunk(&mut self, peer: P, r: pb::ChunkResponse, now_ms: u64) -> Vec<Action<P>> {
        let Phase::Downloading { fetcher, .. } = &mut self.phase else {
            return Vec::new();
        };
        let index = r.index;
        let mut out = Vec::new();
        match fetcher.on_response(peer, r) {
            Verdict::Accepted => {
                if fetcher.is_done() {
                    self.finish(&mut out);
                }
            }
            Verdict::Ignored => {}
            Verdict::Gone => {
                self.offers.remove(&peer);
                out.push(Action::Notice(Notice::Gone(peer)));
            }
            Verdict::Bad(error) => {
                out.push(self.refuse(peer, JoinFault::Chunk { index, error }, now_ms));
            }
        }
        out
    }

    /// The host's light client on the offer taken ([`Action::VerifyAnchor`]).
    pub fn anchor_verified(
        &mut self,
        verdict: Result<Anchor, AnchorFailure>,
        now_ms: u64,
    ) -> Vec<Action<P>> {
        let Phase::Anchoring { peer, offer } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            debug_assert!(false, "an anchor verdict outside the anchoring phase");
            return Vec::new();
        };
        let mut out = Vec::new();
        match verdict {
            Ok(anchor) => self.download(peer, offer, anchor, now_ms, &mut out),
            Err(AnchorFailure::Seed(e)) => {
                out.push(self.refuse(peer, JoinFault::Seed(e), now_ms));
                self.gather(now_ms, true, &mut out);
            }
            Err(AnchorFailure::Unavailable) => {
                self.offers.remove(&peer);
                self.set_aside_until(peer, now_ms + SET_ASIDE_MS);
                // With no other offer, the next ask waits its interval
                // rather than hammering servers that may only lag.
                let ask_now = !self.offers.is_empty();
                self.gather(now_ms, ask_now, &mut out);
            }
        }
        out
    }

    /// What time brings: offers asked again or one taken, chunk requests
    /// sent or given up, silent peers set aside.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action<P>> {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Gathering { .. } => self.tick_gathering(now_ms, &mut out),
            Phase::Downloading { fetcher, .. } => {
                if !fetcher.has_sources() {
                    let height = fetcher.height();
                    out.push(Action::Notice(Notice::SourcesGone { height }));
                    self.offers.clear();
                    self.gather(now_ms, true, &mut out);
                    return out;
                }
                self.request_chunks(now_ms, &mut out);
            }
            Phase::Anchoring { .. } | Phase::Done => {}
        }
        out
    }

    /// Starts a pass over the offers: those below the minimum forgotten,
    /// every peer asked (now, or at the next interval).
    fn gather(&mut self, now_ms: u64, ask_now: bool, out: &mut Vec<Action<P>>) {
        let min = self.min_height;
        self.offers.retain(|_, o| o.height >= min);
        if ask_now {
            out.extend(self.peers.iter().map(|p| Action::AskOffer(*p)));
        }
        self.phase = Phase::Gathering {
            next_ask_ms: now_ms + ASK_EVERY_MS,
            decide_at_ms: None,
            warned: false,
        };
    }

    fn tick_gathering(&mut self, now_ms: u64, out: &mut Vec<Action<P>>) {
        let min = self.min_height;
        let usable = self.offers.values().any(|o| o.height >= min);
        let Phase::Gathering {
            next_ask_ms,
            decide_at_ms,
            warned,
        } = &mut self.phase
        else {
            return;
        };
        if usable && decide_at_ms.is_none() {
            *decide_at_ms = Some(now_ms + GATHER_MS);
        }
        if decide_at_ms.is_some_and(|t| now_ms >= t) {
            return self.take_best(now_ms, out);
        }
        if now_ms >= *next_ask_ms {
            if !*warned && !self.offers.is_empty() {
                let offered = self.offers.values().map(|o| o.height).collect();
                out.push(Action::Notice(Notice::NoneHighEnough { offered }));
                *warned = true;
            }
            out.extend(self.peers.iter().map(|p| Action::AskOffer(*p)));
            *next_ask_ms = now_ms + ASK_EVERY_MS;
        }
    }

    /// Takes the best offer to its anchor (a new pass if none is left).
    fn take_best(&mut self, now_ms: u64, out: &mut Vec<Action<P>>) {
        let Some((peer, offer)) = offers::best(&self.offers, self.min_height) else {
            return self.gather(now_ms, true, out);
        };
        // 32 bytes: offers::check kept the offer.
        let Ok(seed) = Hash::try_from(offer.seed.as_slice()) else {
            out.push(self.refuse(peer, OfferError::Seed.into(), now_ms));
            return self.gather(now_ms, true, out);
        };
        out.push(Action::VerifyAnchor {
            peer,
            height: offer.height,
            seed,
        });
        self.phase = Phase::Anchoring { peer, offer };
    }

    /// With the anchor verified: the manifest checked, the sources found,
    /// the download begun.
    fn download(
        &mut self,
        peer: P,
        offer: pb::SnapshotOffer,
        anchor: Anchor,
        now_ms: u64,
        out: &mut Vec<Action<P>>,
    ) {
        let manifest = offer.manifest.unwrap_or_default();
        if let Err(e) = verify_manifest(&manifest, &anchor.app_hash) {
            out.push(self.refuse(peer, JoinFault::Manifest(e), now_ms));
            return self.gather(now_ms, true, out);
        }
        // The offering peer is among them unless it left meanwhile (then,
        // with no source, the next tick starts over).
        let sources = self.sources(offer.height, &manifest, &anchor.app_hash, now_ms, out);
        #[allow(unused_mut)] // only the negative control changes it
        let mut fetcher =
            ChunkFetcher::new(anchor.height, manifest, sources, self.chunk_timeout_ms);
        #[cfg(feature = "test-faults")]
        if !self.check_chunks {
            fetcher.skip_chunk_checks();
        }
        let empty = fetcher.is_done();
        self.phase = Phase::Downloading {
            fetcher,
            anchor: Box::new(anchor),
        };
        if empty {
            return self.finish(out);
        }
        self.request_chunks(now_ms, out);
    }

    /// The peers offering `manifest` (verified) at `height`: the sources of
    /// its chunks. One offering another manifest for this height is
    /// checked the same way and charged if it does not verify.
    fn sources(
        &mut self,
        height: u64,
        manifest: &pb::SnapshotManifest,
        app_hash: &Hash,
        now_ms: u64,
        out: &mut Vec<Action<P>>,
    ) -> Vec<P> {
        let mut sources = Vec::new();
        let mut refused = Vec::new();
        for (p, o) in &self.offers {
            match &o.manifest {
                _ if o.height != height => {}
                Some(m) if m == manifest => sources.push(*p),
                Some(m) => {
                    if let Err(e) = verify_manifest(m, app_hash) {
                        refused.push((*p, e));
                    }
                }
                None => {}
            }
        }
        for (p, e) in refused {
            out.push(self.refuse(p, JoinFault::Manifest(e), now_ms));
        }
        sources
    }

    fn request_chunks(&mut self, now_ms: u64, out: &mut Vec<Action<P>>) {
        let Phase::Downloading { fetcher, .. } = &mut self.phase else {
            return;
        };
        let requests = fetcher.requests(now_ms);
        let silenced = fetcher.take_silenced();
        out.extend(
            requests
                .into_iter()
                .map(|(p, r)| Action::RequestChunk(p, r)),
        );
        for peer in silenced {
            self.offers.remove(&peer);
            self.set_aside_until(peer, now_ms + SET_ASIDE_MS);
            out.push(Action::Notice(Notice::Silenced(peer)));
        }
    }

    fn finish(&mut self, out: &mut Vec<Action<P>>) {
        let Phase::Downloading { fetcher, anchor } =
            std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        debug_assert!(fetcher.is_done());
        out.push(Action::Install {
            anchor,
            leaves: fetcher.into_leaves().collect(),
        });
    }

    /// Forgets `peer`'s offer, sets it aside and gives the charge to make.
    fn refuse(&mut self, peer: P, fault: JoinFault, now_ms: u64) -> Action<P> {
        self.offers.remove(&peer);
        self.set_aside_until(peer, now_ms + SET_ASIDE_MS);
        Action::Charge(peer, fault)
    }

    /// Ignores `peer`'s offers until `until_ms` (within [`MAX_SET_ASIDE`]).
    fn set_aside_until(&mut self, peer: P, until_ms: u64) {
        if self.set_aside.len() >= MAX_SET_ASIDE && !self.set_aside.contains_key(&peer) {
            let first_free = self
                .set_aside
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(p, _)| *p);
            if let Some(p) = first_free {
                self.set_aside.remove(&p);
            }
        }
        self.set_aside.insert(peer, until_ms);
        debug_assert!(self.set_aside.len() <= MAX_SET_ASIDE);
    }
}

#[cfg(test)]
mod tests;
