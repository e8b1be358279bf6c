//! What a node's host does with a message the network delivered: hands
//! proposals, votes, evidence and status to its engine, admits and relays
//! transactions, answers block requests from its store, and takes block
//! responses through certificate checking into the engine's sync. On the
//! way it records, for the checker, the validly signed proposals and votes
//! an honest core is given.

use super::Sim;
use super::actions::Origin;
use super::host::serve_blocks;
use super::wire::{SignedTag, Wire};
use agora_proto::v1 as pb;
use agora_validator::Height;
use agora_validator::consensus::PROPOSAL_ROUNDS_AHEAD;
use agora_validator::engine::{PeerFault, block_rules};
use prost::Message;

impl Sim {
    /// Node `to`'s host takes a message from `from` (`tag`: what the sender
    /// signed, if it signed genuinely).
    pub(super) fn receive(&mut self, from: usize, to: usize, wire: Wire, tag: Option<SignedTag>) {
        match wire {
            Wire::Proposal(p) => {
                if let Some(tag) = tag {
                    self.record_tag(to, tag, p.block.as_ref());
                }
                let r = self.with_engine(to, |e, m, now| e.on_proposal(from, *p, now, m));
                self.exec_result(to, r, Origin::Own);
            }
            Wire::Vote(v) => {
                if let Some(tag) = tag {
                    self.record_tag(to, tag, None);
                }
                let r = self.with_engine(to, |e, m, now| e.on_vote(from, v, now, m));
                self.exec_result(to, r, Origin::Own);
            }
            Wire::Raw(bytes) => match pb::Vote::decode(bytes.as_slice()) {
                Ok(v) => {
                    let r = self.with_engine(to, |e, m, now| e.on_vote(from, v, now, m));
                    self.exec_result(to, r, Origin::Own);
                }
                // The transport refuses what does not decode.
                Err(_) => self.penalize(to, from, PeerFault::Malformed("undecodable message")),
            },
            Wire::Evidence(ev) => {
                let actions = self.nodes[to]
                    .engine
                    .as_mut()
                    .map(|e| e.on_evidence(from, ev))
                    .unwrap_or_default();
                self.exec(to, actions, Origin::Relay);
            }
            Wire::Txs(txs) => self.admit_txs(to, txs),
            Wire::Status(h) => {
                let r = self.with_engine(to, |e, m, now| e.on_status(from, h, now, m));
                self.exec_result(to, r, Origin::Relay);
            }
            Wire::BlockRequest { from: fh, count } => self.answer_request(to, from, fh, count),
            Wire::BlockResponse(resp) => self.take_response(to, from, resp),
            Wire::SnapshotRequest => self.answer_snapshot_request(to, from),
            Wire::ChunkRequest(r) => self.answer_chunk_request(to, from, r),
            w @ (Wire::SnapshotOffer(_) | Wire::ChunkResponse(_)) => self.join_receive(to, from, w),
        }
    }

    /// An honest node admits gossiped transactions to its mempool and
    /// relays those it admitted, once, as the node's transaction gossip
    /// does (a Byzantine host ignores them).
    fn admit_txs(&mut self, to: usize, txs: Vec<pb::Transaction>) {
        if self.honest(to) {
            let n = &mut self.nodes[to];
            let admitted: Vec<pb::Transaction> = match n.engine.as_ref() {
                Some(e) => txs
                    .into_iter()
                    .filter(|t| n.mempool.add(&self.g.chain, t, e.ledger()))
                    .collect(),
                None => Vec::new(),
            };
            if !admitted.is_empty() {
                self.broadcast(to, Wire::Txs(admitted), None);
            }
        }
    }

    /// Node `to` answers `from`'s request for `count` blocks from height
    /// `fh`: as its Byzantine module says, if it says, else from its store.
    fn answer_request(&mut self, to: usize, from: usize, fh: Height, count: u32) {
        match self.with_byz(to, |b, cx| b.serve(cx, from, fh, count)) {
            Some(Some(outs)) => self.emit(to, outs),
            _ => {
                let resp = serve_blocks(&self.nodes[to].store, fh, count);
                self.send(to, from, Wire::BlockResponse(Box::new(resp)), None);
            }
        }
    }

    /// Node `to`'s engine takes a block response from `from`, then applies
    /// what it synced until nothing is ready or the engine fails.
    fn take_response(&mut self, to: usize, from: usize, resp: Box<pb::BlockResponse>) {
        let actions = self
            .with_engine(to, |e, _, now| e.on_block_response(from, *resp, now))
            .unwrap_or_default();
        self.exec(to, actions, Origin::Relay);
        loop {
            // As the node does: each unverified run is checked as a
            // job (here at once, on this thread) before it applies.
            if let Some(e) = self.nodes[to].engine.as_mut()
                && let Some(job) = e.take_certificate_job()
            {
                e.on_certificate_verdict(job.run());
            }
            match self.with_engine(to, |e, m, now| e.next_synced_block(now, m)) {
                Some(Ok(Some(actions))) => self.exec(to, actions, Origin::Sync),
                Some(Err(e)) => {
                    self.engine_failed(to, e.to_string());
                    break;
                }
                _ => break,
            }
        }
    }

    /// Records a validly signed proposal or vote that the receiver's core
    /// is actually given at its height, within its round window (narrower
    /// for proposals: `PROPOSAL_ROUNDS_AHEAD`), from a
    /// member of that height's set (a proposal only with a body that
    /// matches its header: the engine drops any other before its core):
    /// what the checker expects to become evidence when two contents share
    /// an infraction key.
    fn record_tag(&mut self, to: usize, tag: SignedTag, block: Option<&pb::Block>) {
        if !self.honest(to) {
            return;
        }
        let Some(e) = self.nodes[to].engine.as_ref() else {
            return;
        };
        let c = e.core();
        // The core keeps proposals (kind 0) fewer rounds ahead than votes.
        let rounds_ahead = if tag.key.kind == 0 {
            PROPOSAL_ROUNDS_AHEAD
        } else {
            c.config().max_rounds_ahead
        };
        let counts = !e.awaiting_start()
            && tag.key.height == e.height()
            && c.height() == e.height()
            && tag.key.round <= c.round().saturating_add(rounds_ahead)
            && e.ledger()
                .validator_set(tag.key.height)
                .is_some_and(|s| s.get(&tag.key.offender).is_some());
        if !counts {
            return;
        }
        if self.nodes[to]
            .received
            .get(&tag.key)
            .is_some_and(|c| c.contains(&tag.content))
            || block.is_some_and(|b| block_rules::check_body(b).is_err())
        {
            return;
        }
        let n = &mut self.nodes[to];
        let contents = n.received.entry(tag.key).or_default();
        contents.insert(tag.content);
        if contents.len() >= 2 {
            n.infractions_seen.insert(tag.key);
            let now = self.now;
            let first = !self.infractions.contains_key(&tag.key);
            self.infractions.entry(tag.key).or_insert((now, to));
            if first {
                self.update_required();
            }
        }
    }
}
