//! Evidence that reaches the engine from outside its core: gossiped by a
//! peer, made of a late vote and the vote kept for the height just decided,
//! or submitted by a client. Each goes through the pool's one entry point;
//! what does not verify is charged to whoever sent it.

use super::{Action, Added, Engine, PeerFault, PoolError, evidence_pool};
use crate::consensus::{CheckedEvidence, RejectReason};
use crate::crypto::Hash;
use agora_proto::v1 as pb;

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// Evidence made of a vote for the height just decided and the vote of
    /// the same validator our core verified there. If it does not verify,
    /// one half is bad: normally the new vote (a forgery under that
    /// validator's name), charged to its sender as a bad signature. The
    /// kept vote may have passed only inside an aggregate, so the new vote
    /// is checked alone on this (hostile, rare) path before anyone is
    /// charged; an honest relay of a real vote never is.
    pub(super) fn past_vote_evidence(
        &mut self,
        peer: P,
        v: &pb::Vote,
        ev: pb::Evidence,
        out: &mut Vec<Action<P>>,
    ) {
        match self.pool.add(ev.clone(), &self.ledger) {
            Ok(Added::New(id)) => {
                self.past_votes.spend(v);
                self.evidence_added(id, ev, out);
            }
            Ok(Added::Duplicate) | Err(PoolError::Moot(_)) => self.past_votes.spend(v),
            Err(PoolError::Invalid(_)) => {
                let good = self.ledger.validator_set(v.height).is_some_and(|set| {
                    crate::consensus::evidence::vote_verifies(&self.chain, set, v)
                });
                if good {
                    // The kept vote is the bad half: it proves nothing.
                    self.past_votes.spend(v);
                } else {
                    let who = hex::encode(&v.validator_address);
                    out.push(Action::Penalize {
                        peer,
                        fault: PeerFault::Consensus(RejectReason::BadSignature(format!(
                            "{who} (a vote at height {} that conflicts with its vote there)",
                            v.height
                        ))),
                    });
                }
            }
            Err(PoolError::Full(_) | PoolError::TooFarAhead { .. } | PoolError::StaleCheck(_)) => {}
        }
    }

    /// Evidence a peer sent: kept and relayed if new and valid, charged to
    /// the peer if it does not verify.
    pub fn on_evidence(&mut self, peer: P, ev: pb::Evidence) -> Vec<Action<P>> {
        let mut out = Vec::new();
        self.peer_evidence(peer, ev, &mut out);
        out
    }

    fn peer_evidence(&mut self, peer: P, ev: pb::Evidence, out: &mut Vec<Action<P>>) {
        match self.pool.add(ev.clone(), &self.ledger) {
            Ok(Added::New(id)) => {
                self.evidence_added(id, ev, out);
            }
            // Moot evidence races with the commit that made it moot.
            Ok(Added::Duplicate)
            | Err(
                PoolError::Full(_)
                | PoolError::TooFarAhead { .. }
                | PoolError::Moot(_)
                | PoolError::StaleCheck(_),
            ) => {}
            Err(e @ PoolError::Invalid(_)) => out.push(Action::Penalize {
                peer,
                // What was refused, so that a ban in an operator's log
                // says which messages the evidence paired.
                fault: PeerFault::BadEvidence(format!(
                    "{e} ({})",
                    crate::consensus::evidence::describe(&ev)
                )),
            }),
        }
    }

    /// Evidence submitted by a client and checked by the host on another
    /// thread ([`CheckedEvidence::check`]): its id and what to do, or why it
    /// was refused. Only state checks run here.
    pub fn submit_checked_evidence(
        &mut self,
        checked: CheckedEvidence,
    ) -> Result<(Hash, Vec<Action<P>>), PoolError> {
        let ev = checked.evidence().clone();
        let id = evidence_pool::evidence_id(&ev);
        let mut out = Vec::new();
        if let Added::New(_) = self.pool.add_checked(checked, &self.ledger)? {
            self.evidence_added(id, ev, &mut out);
        }
        Ok((id, out))
    }

    /// Evidence submitted by a client: its id and what to do, or why it was refused.
    pub fn submit_evidence(
        &mut self,
        ev: pb::Evidence,
    ) -> Result<(Hash, Vec<Action<P>>), PoolError> {
        let id = evidence_pool::evidence_id(&ev);
        let mut out = Vec::new();
        if let Added::New(_) = self.pool.add(ev.clone(), &self.ledger)? {
            self.evidence_added(id, ev, &mut out);
        }
        Ok((id, out))
    }

    /// What follows new evidence in the pool, whichever way it came: it is
    /// persisted and gossiped, and the gate is told if it names our key
    /// ([`crate::consensus::SigningGate::on_evidence_against_us`] decides
    /// whether it proves another instance running now). Evidence restored
    /// from the store at start does not come through here, nor is evidence
    /// watched on a host that equivocates on purpose.
    pub(super) fn evidence_added(&mut self, id: Hash, ev: pb::Evidence, out: &mut Vec<Action<P>>) {
        if let Some((height, offenders)) = self.pool.offenders_of(&id)
            && !self.watch.equivocates_on_purpose
            && offenders.iter().any(|a| self.watch.is_ours(&a.0))
        {
            self.watch.gate.on_evidence_against_us(height);
        }
        out.push(Action::PersistEvidence(id, ev.clone()));
        out.push(Action::BroadcastEvidence(ev));
    }
}
