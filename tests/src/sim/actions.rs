//! The host executing its engine's actions in order, as the node does:
//! the WAL and the signing state persisted before anything is sent (a torn
//! crash falls inside a signing-state write), proposals and votes sent
//! through the Byzantine module if there is one, evidence kept and
//! broadcast, timeouts scheduled, commits taken, penalised peers banned.

use super::byzantine::{self, Cx, Out};
use super::mempool;
use super::wire::{SignedTag, Wire, describe_action};
use super::{Event, Sim, Torn, Violation};
use agora_proto::v1 as pb;
use agora_validator::consensus::evidence::infraction_key;
use agora_validator::consensus::{SignStep, SigningState, Timeout};
use agora_validator::engine::{Action, Engine, PeerFault};

/// First ban of a penalised peer (ms; the node's default); it doubles with
/// each repeat, up to 64×.
const BAN_MS: u64 = 30_000;

/// Where a batch of actions came from (for what the checker records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The engine's own work on a message, timeout or start: evidence it
    /// broadcasts is evidence its core found.
    Own,
    /// Relaying: peers' evidence, the pool's re-gossip.
    Relay,
    /// Applying synced blocks.
    Sync,
}

impl Sim {
    /// Calls the engine of node `i` with its mempool and the clock.
    pub(super) fn with_engine<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Engine<usize>, &mempool::SimMempool, u64) -> R,
    ) -> Option<R> {
        let now = self.clock(i);
        let n = &mut self.nodes[i];
        let e = n.engine.as_mut()?;
        Some(f(e, &n.mempool, now))
    }

    /// Executes what an engine call returned; an error is a violation and
    /// takes the node down.
    pub(super) fn exec_result(
        &mut self,
        i: usize,
        r: Option<Result<Vec<Action<usize>>, agora_validator::engine::EngineError>>,
        origin: Origin,
    ) {
        match r {
            Some(Ok(actions)) => self.exec(i, actions, origin),
            Some(Err(e)) => self.engine_failed(i, e.to_string()),
            None => {}
        }
    }

    /// Node `i`'s engine failed: a violation, and the node goes down.
    pub(super) fn engine_failed(&mut self, i: usize, error: String) {
        self.violations.push(Violation::Engine { node: i, error });
        self.nodes[i].crash();
    }

    /// Whether node `i`'s armed torn crash falls on this signing-state
    /// write (it is then consumed): how long the node stays down.
    fn tears_here(&mut self, i: usize, s: &SigningState) -> Option<u64> {
        let (torn, down) = self.nodes[i].torn_crash?;
        let hit = match torn {
            Torn::NextSigning => true,
            Torn::NextProposal => s.step == SignStep::Propose,
            Torn::AfterPrecommit | Torn::No => false,
        };
        if hit {
            self.nodes[i].torn_crash = None;
        }
        hit.then_some(down)
    }

    /// Executes the engine's actions in order. A node that went down on
    /// the way (a torn signing-state write, a failed engine) does nothing
    /// more.
    pub(super) fn exec(&mut self, i: usize, actions: Vec<Action<usize>>, origin: Origin) {
        for a in actions {
            if self.nodes[i].engine.is_none() {
                return;
            }
            if self.trace == Some(i) {
                eprintln!("[{} ms] node {i} -> {}", self.now, describe_action(&a));
            }
            self.exec_action(i, a, origin);
        }
        if let Some(down) = self.nodes[i].crash_after_batch.take()
            && self.nodes[i].engine.is_some()
        {
            self.crash(i);
            self.push(self.now + down, Event::Restart(i));
        }
    }

    /// Executes one action of node `i`'s engine.
    fn exec_action(&mut self, i: usize, a: Action<usize>, origin: Origin) {
        match a {
            Action::Wal(input) => self.nodes[i].store.wal.push(input),
            Action::PersistSigningState(s) => self.persist_signing(i, s),
            Action::BroadcastProposal(p) => {
                // Its own proposal of a block it created: not a relayed
                // copy, nor a valid value re-proposed (a Byzantine creator
                // may date a block that only the clocks ahead accept).
                let me = &self.g.addresses[i].0;
                let created = p.block.as_ref().and_then(|b| b.header.as_ref());
                if self.honest(i)
                    && p.proposer_address == *me
                    && created.is_some_and(|h| h.proposer_address == *me)
                {
                    self.honest_proposals.insert((p.height, p.round));
                }
                let outs = self
                    .with_byz(i, |b, cx| b.proposal(cx, (*p).clone()))
                    .unwrap_or_else(|| vec![Out::all(Wire::Proposal(p))]);
                self.emit(i, outs);
            }
            Action::BroadcastVote(v) => {
                let outs = self
                    .with_byz(i, |b, cx| b.vote(cx, v.clone()))
                    .unwrap_or_else(|| vec![Out::all(Wire::Vote(v))]);
                self.emit(i, outs);
            }
            Action::BroadcastEvidence(ev) => {
                self.note_evidence(i, &ev);
                if origin != Origin::Relay {
                    self.nodes[i].own_evidence.push(ev.clone());
                }
                self.broadcast(i, Wire::Evidence(ev), None);
            }
            Action::ScheduleTimeout {
                timeout,
                duration_ms,
            } => self.schedule_timeout(i, timeout, duration_ms),
            Action::PersistEvidence(id, ev) => {
                self.note_evidence(i, &ev);
                self.nodes[i].store.evidence.insert(id, ev);
            }
            Action::Commit(rec) => {
                if origin == Origin::Sync {
                    self.nodes[i].stats.synced += 1;
                }
                self.on_commit(i, *rec);
            }
            Action::SendProposal { peer, proposal } => {
                self.send(i, peer, Wire::Proposal(proposal), None);
            }
            Action::SendVote { peer, vote } => self.send(i, peer, Wire::Vote(vote), None),
            Action::RequestBlocks { peer, from, count } => {
                *self.nodes[i].stats.asked.entry(peer).or_default() += 1;
                self.send(i, peer, Wire::BlockRequest { from, count }, None);
            }
            Action::Penalize { peer, fault } => self.penalize(i, peer, fault),
            Action::InvalidBlock {
                height,
                round,
                error,
            } => {
                self.nodes[i].stats.invalid_blocks += 1;
                if self.honest(i) && self.honest_proposals.contains(&(height, round)) {
                    self.violations.push(Violation::HonestBlockRefused {
                        node: i,
                        height,
                        round,
                        error: error.to_string(),
                    });
                }
            }
            Action::Rejected(_) => {}
        }
    }

    /// Persists node `i`'s signing state, unless its armed torn crash falls
    /// on this write.
    fn persist_signing(&mut self, i: usize, s: SigningState) {
        let wal_first = self.nodes[i].wal_sync.before(&s);
        if wal_first && !(s.step == SignStep::Precommit && self.skips_precommit_wal_sync()) {
            let store = &mut self.nodes[i].store;
            store.wal_durable = store.wal.len();
        }
        if let Some(down) = self.tears_here(i, &s) {
            // Dies inside the write: the WAL is on disk as far as it was
            // synced, the signing state is not, nothing after it happens
            // (`exec` stops: the node is down).
            self.nodes[i].stats.torn_crashes += 1;
            self.crash(i);
            self.push(self.now + down, Event::Restart(i));
            return;
        }
        self.nodes[i].store.signing = Some(s);
        if s.step == SignStep::Precommit
            && let Some((Torn::AfterPrecommit, down)) = self.nodes[i].torn_crash
        {
            self.nodes[i].torn_crash = None;
            self.nodes[i].crash_after_batch = Some(down);
        }
    }

    /// Whether the host plays a store that does not sync its WAL before a
    /// precommit (`TestFault::SkipWalSyncBeforePrecommit`).
    fn skips_precommit_wal_sync(&self) -> bool {
        self.config.consensus.test_fault
            == agora_validator::consensus::TestFault::SkipWalSyncBeforePrecommit
    }

    /// Sets a timer of node `i`'s current life.
    fn schedule_timeout(&mut self, i: usize, timeout: Timeout, duration_ms: u64) {
        let epoch = self.nodes[i].epoch;
        self.push(
            self.now + duration_ms,
            Event::Timer {
                node: i,
                epoch,
                timeout,
            },
        );
    }

    /// Remembers that node `i` holds evidence against its offender.
    fn note_evidence(&mut self, i: usize, ev: &pb::Evidence) {
        if let Some(k) = infraction_key(ev) {
            self.nodes[i].evidence_offenders.insert(k.offender);
        }
    }

    /// Node `i`'s engine penalised `peer`: a violation if both are honest;
    /// the transport bans the peer (`BAN_MS`, doubling with each strike)
    /// and the engine sees the connection go.
    pub(super) fn penalize(&mut self, i: usize, peer: usize, fault: PeerFault) {
        self.charge(i, peer, fault.to_string());
    }

    /// Node `i`'s host charges `peer` for `fault` (an engine's penalty, or
    /// a bad snapshot its join refused) and bans it like the transport.
    pub(super) fn charge(&mut self, i: usize, peer: usize, fault: String) {
        *self.nodes[i].stats.penalized.entry(peer).or_default() += 1;
        if self.honest(i) && self.honest(peer) {
            self.violations.push(Violation::HonestPenalized {
                node: i,
                peer,
                fault,
            });
        }
        let now = self.now;
        let n = &mut self.nodes[i];
        let (until, strikes) = n.banned.entry(peer).or_insert((0, 0));
        *strikes += 1;
        *until = now + (BAN_MS << (*strikes - 1).min(6));
        if let Some(e) = n.engine.as_mut() {
            e.on_peer_gone(&peer);
        }
    }

    /// Runs `f` on node `i`'s Byzantine module, if it has one.
    pub(super) fn with_byz<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn byzantine::Byzantine, &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let mut b = self.nodes[i].byz.take()?;
        let mut cx = Cx {
            me: i,
            n: self.nodes.len(),
            chain: &self.g.chain,
            key: &self.keys[i],
            addresses: &self.g.addresses,
            rng: &mut self.rng,
            store: &self.nodes[i].store,
        };
        let r = f(b.as_mut(), &mut cx);
        self.nodes[i].byz = Some(b);
        Some(r)
    }

    /// Sends what goes out of node `i` (what its Byzantine module made of
    /// a message, or the engine's broadcast as it is), tagging what was
    /// signed genuinely for the checker.
    pub(super) fn emit(&mut self, i: usize, outs: Vec<Out>) {
        for o in outs {
            let tag = if o.genuine {
                SignedTag::of(&o.wire)
            } else {
                None
            };
            match o.to {
                Some(j) => self.send(i, j, o.wire, tag),
                None => self.broadcast(i, o.wire, tag),
            }
        }
    }
}
