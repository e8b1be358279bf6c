//! Byzantine behaviours, one module per behaviour (in the manner of
//! Commonware's one-mock-per-file): each is a [`Byzantine`] that sits
//! between a validator's engine and the network, and changes what goes
//! out (its own messages, what it relays, what it serves, the height it
//! announces). Everything else it does is what its engine says, so a
//! Byzantine validator still follows consensus unless its module says not.
//!
//! All Byzantine hosts are also selfish (see [`selfish_drop`]): they never
//! hand their engine evidence against themselves or their own votes and
//! proposals relayed back, so their engines never gossip or include
//! evidence against them.

mod bad_proposer;
mod body_swapper;
mod canceller;
mod equivocator;
mod false_height;
mod junk;
mod one_off;
mod tampering_server;
mod vote_stuffer;

use super::Wire;
use super::host::Store;
use super::scenario::Behaviour;
use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::consensus::evidence::infraction_key;
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH};
use agora_validator::signing::{proposal_bytes, vote_bytes};
use agora_validator::{Address, ChainId, Height, VoteType};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// What a behaviour may look at and use.
pub(crate) struct Cx<'a> {
    /// This validator's index.
    pub me: usize,
    /// Number of validators.
    pub n: usize,
    /// The chain.
    pub chain: &'a ChainId,
    /// Its consensus key (it signs what it likes).
    pub key: &'a SecretKey,
    /// Every validator's address, by index.
    pub addresses: &'a [Address],
    /// The network's generator (Byzantine choices are part of the seed).
    pub rng: &'a mut ChaCha8Rng,
    /// Its store (committed blocks).
    pub store: &'a Store,
}

impl Cx<'_> {
    /// This validator's address.
    pub fn address(&self) -> Address {
        self.addresses[self.me]
    }

    /// Whether a proposal is this validator's own.
    pub fn own(&self, p: &pb::Proposal) -> bool {
        p.proposer_address == self.address().0
    }

    /// Whether a vote is this validator's own.
    pub fn own_vote(&self, v: &pb::Vote) -> bool {
        v.validator_address == self.address().0
    }

    /// Recomputes the block hash after a header change and signs the
    /// proposal again over it (outside the double-sign guard).
    pub fn resign(&self, p: &mut pb::Proposal) {
        let Some(header) = p.block.as_ref().and_then(|b| b.header.as_ref()) else {
            return;
        };
        let hash = header_hash(header);
        let bytes = proposal_bytes(self.chain, p.height, p.round, p.pol_round, &hash);
        p.signature = self.key.sign(&bytes).to_bytes().to_vec();
    }

    /// `v` signed again for another value (nil for `ZERO_HASH`).
    pub fn vote_for(&self, v: &pb::Vote, value: Hash) -> pb::Vote {
        let vt = VoteType::from_i32(v.vote_type).unwrap_or(VoteType::Prevote);
        let bytes = vote_bytes(self.chain, vt, v.height, v.round, &value);
        pb::Vote {
            block_hash: if value == ZERO_HASH {
                Vec::new()
            } else {
                value.to_vec()
            },
            signature: self.key.sign(&bytes).to_bytes().to_vec(),
            ..v.clone()
        }
    }

    /// A random split of the other validators into two halves.
    pub fn halves(&mut self) -> (Vec<usize>, BTreeSet<usize>) {
        let mut a = Vec::new();
        let mut b = BTreeSet::new();
        for j in (0..self.n).filter(|j| *j != self.me) {
            if self.rng.random_bool(0.5) {
                a.push(j);
            } else {
                b.insert(j);
            }
        }
        (a, b)
    }
}

/// A message to send: to one peer or to all, and whether it is genuinely
/// signed by the validator it names (the checker counts only those as
/// possible equivocations).
pub(crate) struct Out {
    /// One peer, or every peer.
    pub to: Option<usize>,
    /// The message.
    pub wire: Wire,
    /// Signed by the validator it names.
    pub genuine: bool,
}

impl Out {
    /// To every peer.
    pub fn all(wire: Wire) -> Self {
        Self {
            to: None,
            wire,
            genuine: true,
        }
    }

    /// To one peer.
    pub fn to(peer: usize, wire: Wire) -> Self {
        Self {
            to: Some(peer),
            wire,
            genuine: true,
        }
    }

    /// Not signed by whom it names.
    pub fn forged(mut self) -> Self {
        self.genuine = false;
        self
    }
}

/// A Byzantine behaviour. The defaults are honest.
pub(crate) trait Byzantine {
    /// Its engine broadcasts a proposal (its own, or one it re-gossips).
    fn proposal(&mut self, _cx: &mut Cx<'_>, p: pb::Proposal) -> Vec<Out> {
        vec![Out::all(Wire::Proposal(Box::new(p)))]
    }

    /// Its engine broadcasts a vote (its own, or one it re-gossips).
    fn vote(&mut self, _cx: &mut Cx<'_>, v: pb::Vote) -> Vec<Out> {
        vec![Out::all(Wire::Vote(v))]
    }

    /// A message from `from` arrived (before its engine sees it).
    fn received(&mut self, _cx: &mut Cx<'_>, _from: usize, _wire: &Wire) -> Vec<Out> {
        Vec::new()
    }

    /// A peer asks for blocks: `None` serves them honestly, `Some` sends
    /// what it returns instead.
    fn serve(
        &mut self,
        _cx: &mut Cx<'_>,
        _peer: usize,
        _from: Height,
        _count: u32,
    ) -> Option<Vec<Out>> {
        None
    }

    /// The height it announces, given its real one.
    fn announce(&self, height: Height) -> Height {
        height
    }

    /// Every tick: anything extra to send.
    fn tick(&mut self, _cx: &mut Cx<'_>) -> Vec<Out> {
        Vec::new()
    }

    /// Counters for the report: (name, count).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The module of a behaviour (None for honest and silent validators).
pub(crate) fn make(b: Behaviour) -> Option<Box<dyn Byzantine>> {
    Some(match b {
        // A bad snapshot server is honest in consensus; its lies are the
        // host's (`sim/state_sync.rs`).
        Behaviour::Honest | Behaviour::Silent | Behaviour::BadSnapshots(_) => return None,
        Behaviour::Equivocator => Box::new(equivocator::Equivocator::default()),
        Behaviour::Junk => Box::new(junk::Junk),
        Behaviour::OneOffEquivocator { at_height } => Box::new(one_off::OneOff::new(at_height)),
        Behaviour::BadProposer(fault) => Box::new(bad_proposer::BadProposer::new(fault)),
        Behaviour::TamperingServer => Box::new(tampering_server::TamperingServer::default()),
        Behaviour::FalseHeight { answers } => Box::new(false_height::FalseHeight::new(answers)),
        Behaviour::BodySwapper => Box::new(body_swapper::BodySwapper::default()),
        Behaviour::Canceller => Box::new(canceller::Canceller::default()),
        Behaviour::VoteStuffer => Box::new(vote_stuffer::VoteStuffer::default()),
    })
}

/// What a selfish Byzantine host keeps from its engine: evidence naming it
/// (or several validators), and its own votes and proposals coming back.
pub(crate) fn selfish_drop(me: &Address, wire: &Wire) -> bool {
    match wire {
        Wire::Evidence(ev) => infraction_key(ev).is_none_or(|k| k.offender == *me),
        Wire::Vote(v) => v.validator_address == me.0,
        Wire::Proposal(p) => p.proposer_address == me.0,
        _ => false,
    }
}

/// Changes a block's body so that it no longer matches its header: drops a
/// transaction if it has any (the state a node computes from it then
/// differs), else adds one that does not decode.
pub(crate) fn forge_body(block: &mut pb::Block) {
    if block.txs.is_empty() {
        block.txs.push(pb::Transaction {
            body: None,
            public_key: vec![7; 32],
            signature: vec![7; 64],
        });
    } else {
        block.txs.remove(0);
    }
}
