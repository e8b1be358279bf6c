//! The engine's block-sync inputs: peers' heights, re-gossip ticks, block
//! responses and the synced blocks they carry (see [`super::sync`] for the
//! bookkeeping and what is charged to whom).

use super::actions::{Action, PeerFault};
use super::block_rules::{self, MempoolView, Provenance};
use super::drive::{Log, skip_sync_body_fault};
use super::sync::{Queued, ResponseVerdict};
use super::{Engine, EngineError, TICK_MS};
use crate::certificate::CommitCertificate;
use crate::consensus::Input;
use crate::types::{Address, Height};
use agora_proto::v1 as pb;

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// A peer's latest committed height: fetch blocks at once when two or
    /// more behind (one behind is normal gossip lag). A status may also
    /// open a fresh validator's signing gate in the middle of a step; the
    /// vote the core owes then is cast here (`resume_signing`), so no host
    /// has to remember to ask.
    pub fn on_status(
        &mut self,
        peer: P,
        height: Height,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Vec<Action<P>>, EngineError> {
        self.sync.note_height(peer, height);
        // A fresh validator with no signing state learns here whether the
        // chain is new (height 0) or was running without it.
        self.watch.gate.observe_chain_height(height);
        let mut out = self.poll_sync(now_ms, 1);
        self.resume_signing(now_ms, mempool, &mut out)?;
        Ok(out)
    }

    /// Casts the vote the core owes when the signing gate opened while
    /// this height was under way (the gate of a fresh validator opens on a
    /// peer's status, possibly after the core already passed a step it
    /// could not sign; see `Input::SigningResumed`); nothing when nothing
    /// is owed.
    fn resume_signing(
        &mut self,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), EngineError> {
        if self.started && self.watch.gate.may_sign() && self.core.owes_vote() {
            self.drive(Input::SigningResumed, Log::All, now_ms, mempool, out)?;
        }
        Ok(())
    }

    /// A peer connected. A validator of the current set is sent what this
    /// height has so far (its proposals and verified votes) instead of
    /// waiting up to a tick for the re-gossip: a reconnecting validator
    /// takes part in the round at once, and a second instance of a key,
    /// which replaces its twin's connections, meets the messages its twin
    /// signed (see `key_watch`). Others get nothing: an outsider's
    /// reconnections must not buy it copies of 4 MiB proposals.
    ///
    /// A peer that connects while connected had its connection replaced:
    /// a block request in flight to it is given up uncharged
    /// (`SyncState::reconnected`).
    pub fn on_peer_connected(&mut self, peer: P, validator: Option<&Address>) -> Vec<Action<P>> {
        self.sync.reconnected(&peer);
        let in_set = validator.is_some_and(|a| {
            self.ledger
                .validator_set(self.height())
                .is_some_and(|set| set.index_of(a).is_some())
        });
        if !in_set {
            return Vec::new();
        }
        let (proposals, votes) = self.core.gossip_messages();
        let proposals = proposals.into_iter().map(|p| Action::SendProposal {
            peer,
            proposal: Box::new(p),
        });
        let votes = votes
            .into_iter()
            .map(|vote| Action::SendVote { peer, vote });
        proposals.chain(votes).collect()
    }

    /// A peer disconnected.
    pub fn on_peer_gone(&mut self, peer: &P) {
        self.sync.remove(peer);
    }

    /// Every [`TICK_MS`]: re-gossip the current height's verified votes and
    /// the proposals that can still matter (`Consensus::regossip_messages`)
    /// and the pending evidence; fetch the block if still one height behind
    /// a whole tick after the height started (the others moved on and no
    /// longer send its messages).
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Action<P>> {
        let slack = if now_ms.saturating_sub(self.height_started_ms) >= TICK_MS {
            0
        } else {
            1
        };
        let mut out = self.poll_sync(now_ms, slack);
        let (proposals, votes) = self.core.regossip_messages();
        out.extend(
            proposals
                .into_iter()
                .map(|p| Action::BroadcastProposal(Box::new(p))),
        );
        out.extend(votes.into_iter().map(Action::BroadcastVote));
        out.extend(self.pool.all().cloned().map(Action::BroadcastEvidence));
        out
    }

    fn poll_sync(&mut self, now_ms: u64, slack: u64) -> Vec<Action<P>> {
        let mut out = Vec::new();
        if let Some(peer) = self.sync.expire(now_ms) {
            out.push(Action::Penalize {
                peer,
                fault: PeerFault::FalseHeight,
            });
        }
        out.extend(self.sync.poll(now_ms, self.tip_height(), slack).map(|r| {
            Action::RequestBlocks {
                peer: r.peer,
                from: r.from,
                count: r.count,
            }
        }));
        out
    }

    /// A block response from `peer`: queued if it answers our request, else
    /// dropped unverified and charged. The host then calls
    /// [`Engine::next_synced_block`] until it returns None. If the queue
    /// has room for another answer, the next range is asked for at once
    /// (pipelining: it travels while this one is checked and applied).
    pub fn on_block_response(
        &mut self,
        peer: P,
        resp: pb::BlockResponse,
        now_ms: u64,
    ) -> Vec<Action<P>> {
        match self.sync.on_response(peer, resp, self.tip_height(), now_ms) {
            ResponseVerdict::Accepted { queued } if queued > 0 && self.sync.wants_more() => {
                self.poll_sync(now_ms, 1)
            }
            // A peer that pruned what we asked is not at fault (see `sync`).
            ResponseVerdict::Accepted { .. }
            | ResponseVerdict::Late
            | ResponseVerdict::Pruned { .. } => Vec::new(),
            ResponseVerdict::Unsolicited => vec![Action::Penalize {
                peer,
                fault: PeerFault::Unsolicited,
            }],
            ResponseVerdict::FalseHeight => vec![Action::Penalize {
                peer,
                fault: PeerFault::FalseHeight,
            }],
        }
    }

    /// Applies the next queued synced block, if any (see [`sync`]); the
    /// certificates of the queued run from it are verified first, in one
    /// batch (see [`super::sync_batch`]).
    pub fn next_synced_block(
        &mut self,
        now_ms: u64,
        mempool: &dyn MempoolView,
    ) -> Result<Option<Vec<Action<P>>>, EngineError> {
        if !self.synced_block_ready() {
            return Ok(None); // nothing queued, or held for a job's verdict
        }
        self.check_queued_certificates();
        let Some(q) = self.sync.next_block() else {
            return Ok(None);
        };
        let peer = q.peer;
        let mut out = Vec::new();
        if let Err(fault) = self.apply_synced(q, now_ms, mempool, &mut out)? {
            self.sync.drop_queue_from(&peer);
            out.push(Action::Penalize { peer, fault });
        }
        Ok(Some(out))
    }

    /// The proposal held back while the height started for a synced block
    /// (`Engine::certified_in_hand`), made now that the block was refused:
    /// the height is still open and we are its proposer. The core drops it
    /// if its round has moved on meanwhile.
    fn propose_held_back(
        &mut self,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), EngineError> {
        let Some((height, round)) = self.proposal_held_back.take() else {
            return Ok(());
        };
        if height != self.height() || !self.started {
            return Ok(());
        }
        let block = self.propose(round, now_ms, mempool, out);
        let input = Input::ProposalContent {
            height,
            round,
            block,
        };
        self.drive(input, Log::All, now_ms, mempool, out)?;
        Ok(())
    }

    fn apply_synced(
        &mut self,
        q: Queued<P>,
        now_ms: u64,
        mempool: &dyn MempoolView,
        out: &mut Vec<Action<P>>,
    ) -> Result<Result<(), PeerFault>, EngineError> {
        let (Some(block), Some(cert)) = (q.block.block, q.block.certificate) else {
            return Ok(Err(PeerFault::Malformed("block or certificate missing")));
        };
        // Decoded once: by the batched check if it ran, else here.
        let (cert, verified_against) = match q.checked {
            Some(c) => (c.cert, Some(c.set_hash)),
            None => match CommitCertificate::from_proto(&cert) {
                Ok(c) => (c, None),
                Err(_) => return Ok(Err(PeerFault::Malformed("certificate"))),
            },
        };
        let h = block.header.as_ref().map_or(0, |hd| hd.height);
        if h <= self.tip_height() {
            if h == self.tip_height() {
                self.notice_certificate(&cert, out);
            }
            return Ok(Ok(()));
        }
        if h != self.height() || cert.height != h {
            return Ok(Err(PeerFault::Malformed("block out of order")));
        }
        self.certified_in_hand = Some(h);
        let started = self.start_into(now_ms, mempool, out);
        self.certified_in_hand = None;
        started?;
        // Starting the height feeds the core what it buffered for it, which
        // may have decided it: then this block is already committed.
        if h <= self.tip_height() {
            self.proposal_held_back = None;
            self.notice_certificate(&cert, out);
            return Ok(Ok(()));
        }
        if !skip_sync_body_fault(self.fault()) {
            let ctx = self.context();
            if let Err(e) = block_rules::check_block(&ctx, &block, Provenance::Certified) {
                self.propose_held_back(now_ms, mempool, out)?;
                return Ok(Err(PeerFault::BadBlock(e)));
            }
        }
        let rejected = self.drive(
            Input::SyncedBlock {
                block: Box::new(block),
                certificate: cert,
                verified_against,
            },
            Log::Answers,
            now_ms,
            mempool,
            out,
        )?;
        if let Some(r) = rejected.into_iter().next() {
            self.propose_held_back(now_ms, mempool, out)?;
            return Ok(Err(PeerFault::Consensus(r)));
        }
        self.proposal_held_back = None;
        // Pipelined: once the queue is down to half, the next range is asked
        // for (from the last queued height), and travels while the rest of
        // the queue is applied.
        if self.sync.wants_more() {
            out.extend(self.poll_sync(now_ms, 1));
        }
        Ok(Ok(()))
    }
}
