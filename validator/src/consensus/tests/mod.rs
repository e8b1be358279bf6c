//! Unit tests of the state machine, driven by hand-made messages: the
//! shared fixture (a validator set with keys, blocks, proposals and votes)
//! and the round rules here, one file per other concern.

use super::evidence::{infraction_key, vote_hash};
use super::*;
use crate::block::header_hash;
use crate::crypto::{Hash, SecretKey, ZERO_HASH, sha3_256, vrf};
use crate::lottery;
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::{Address, ChainId, Height, Round, VoteType};
use crate::validator_set::{Validator, ValidatorSet};
use agora_proto::v1 as pb;
use std::collections::VecDeque;

/// Validators in canonical order with their keys.
struct Net {
    chain: ChainId,
    keys: Vec<SecretKey>,
    set: ValidatorSet,
    seed: Hash,
}

fn net(powers: &[u64]) -> Net {
    let mut keys: Vec<SecretKey> = (0..powers.len())
        .map(|i| SecretKey::from_seed(&sha3_256(&[i as u8])).expect("seed"))
        .collect();
    let mut pairs: Vec<(Address, SecretKey, u64)> = keys
        .drain(..)
        .zip(powers)
        .map(|(k, p)| (Address::of(&k.public_key()), k, *p))
        .collect();
    pairs.sort_by_key(|p| p.0);
    let set = ValidatorSet::new(
        pairs
            .iter()
            .map(|(_, k, p)| Validator::new(k.public_key(), *p))
            .collect(),
    )
    .expect("set");
    Net {
        chain: ChainId::new("test-chain").expect("chain id"),
        keys: pairs.into_iter().map(|(_, k, _)| k).collect(),
        set,
        seed: sha3_256(b"seed"),
    }
}

impl Net {
    fn key(&self, i: usize) -> SecretKey {
        SecretKey::from_bytes(&self.keys[i].to_bytes()[..]).expect("key copy")
    }

    fn params(&self, h: Height) -> HeightParams {
        HeightParams {
            height: h,
            validator_set: self.set.clone(),
            prev_seed: self.seed,
            parent_hash: ZERO_HASH,
            last_commit: None,
        }
    }

    fn proposer(&self, h: Height, r: Round) -> usize {
        let a = lottery::proposer(&self.set, &self.seed, h, r).address;
        self.set.index_of(&a).expect("proposer in set")
    }

    fn core(&self, i: usize, config: ConsensusConfig) -> Consensus {
        Consensus::new(config, self.chain.clone(), Some(self.key(i)), None)
    }

    fn template(&self, h: Height, time: u64) -> pb::Block {
        pb::Block {
            header: Some(pb::Header {
                chain_id: self.chain.as_str().into(),
                height: h,
                parent_hash: ZERO_HASH.to_vec(),
                time_ms: time,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A block created by validator `i` (with its VRF proof).
    fn block(&self, i: usize, h: Height, time: u64) -> (pb::Block, Hash) {
        self.block_in(i, h, 0, time)
    }

    /// A fresh block of proposer `i` for round `r` (it names its round).
    fn block_in(&self, i: usize, h: Height, r: Round, time: u64) -> (pb::Block, Hash) {
        let mut b = self.template(h, time);
        let header = b.header.as_mut().expect("header");
        header.proposal_round = r;
        header.proposer_address = self.set.validators()[i].address.0.to_vec();
        header.vrf_proof = vrf::prove(&self.keys[i], &self.chain, h, &self.seed)
            .to_bytes()
            .to_vec();
        let hash = header_hash(header);
        (b, hash)
    }

    fn proposal(&self, i: usize, h: Height, r: Round, pol: i32, block: &pb::Block) -> pb::Proposal {
        let hash = header_hash(block.header.as_ref().expect("header"));
        pb::Proposal {
            height: h,
            round: r,
            pol_round: pol,
            block: Some(block.clone()),
            proposer_address: self.set.validators()[i].address.0.to_vec(),
            signature: self.keys[i]
                .sign(&proposal_bytes(&self.chain, h, r, pol, &hash))
                .to_bytes()
                .to_vec(),
        }
    }

    /// Round `r`'s proposer proposes a fresh block at height 1 to `c`,
    /// which the host finds valid; its hash.
    fn propose_valid(&self, c: &mut Consensus, r: Round) -> Hash {
        self.propose_valid_copy(c, r).1
    }

    /// [`Self::propose_valid`], returning the proposal too (to send again).
    fn propose_valid_copy(&self, c: &mut Consensus, r: Round) -> (pb::Proposal, Hash) {
        let p = self.proposer(1, r);
        let (b, hash) = self.block_in(p, 1, r, 1 + u64::from(r));
        let proposal = self.proposal(p, 1, r, -1, &b);
        c.handle(Input::Proposal(proposal.clone()));
        judge(c, r, hash, true);
        (proposal, hash)
    }

    fn vote(&self, i: usize, t: VoteType, h: Height, r: Round, value: Option<Hash>) -> pb::Vote {
        pb::Vote {
            vote_type: t as i32,
            height: h,
            round: r,
            block_hash: value.map(|v| v.to_vec()).unwrap_or_default(),
            validator_address: self.set.validators()[i].address.0.to_vec(),
            signature: self.keys[i]
                .sign(&vote_bytes(
                    &self.chain,
                    t,
                    h,
                    r,
                    &value.unwrap_or(ZERO_HASH),
                ))
                .to_bytes()
                .to_vec(),
        }
    }
}

fn votes_cast(out: &[Output]) -> Vec<pb::Vote> {
    out.iter()
        .filter_map(|o| match o {
            Output::BroadcastVote(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

fn evidence_of(out: &[Output]) -> Vec<pb::Evidence> {
    out.iter()
        .filter_map(|o| match o {
            Output::EvidenceFound(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn rejections(out: &[Output]) -> Vec<RejectReason> {
    out.iter()
        .filter_map(|o| match o {
            Output::Rejected(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Runs every core of `net` to a decision at height 1 over a perfect network;
/// returns all outputs of every core, in order.
fn run_happy_path(n: &Net) -> Vec<Vec<String>> {
    let cfg = ConsensusConfig::default();
    let mut cores: Vec<Consensus> = (0..n.keys.len()).map(|i| n.core(i, cfg)).collect();
    let mut log: Vec<Vec<String>> = vec![Vec::new(); cores.len()];
    let mut queue: VecDeque<(usize, Input)> = VecDeque::new();
    for i in 0..cores.len() {
        queue.push_back((i, Input::StartHeight(Box::new(n.params(1)))));
    }
    let mut steps = 0;
    while let Some((i, input)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 10_000, "no convergence");
        for o in cores[i].handle(input) {
            log[i].push(format!("{o:?}"));
            match o {
                Output::BroadcastProposal(p) => {
                    for j in 0..cores.len() {
                        if j != i {
                            queue.push_back((j, Input::Proposal((*p).clone())));
                        }
                    }
                }
                Output::BroadcastVote(v) => {
                    for j in 0..cores.len() {
                        if j != i {
                            queue.push_back((j, Input::Vote(v.clone())));
                        }
                    }
                }
                Output::RequestProposal { height, round } => queue.push_back((
                    i,
                    Input::ProposalContent {
                        height,
                        round,
                        block: n.template(height, 42),
                    },
                )),
                Output::ValidateBlock {
                    height,
                    round,
                    block,
                    ..
                } => queue.push_back((
                    i,
                    Input::BlockValidity {
                        height,
                        round,
                        block_hash: header_hash(block.header.as_ref().expect("header")),
                        valid: true,
                    },
                )),
                _ => {}
            }
        }
    }
    log
}

#[test]
fn happy_path_commits_with_a_valid_certificate() {
    let n = net(&[1, 2, 3, 4]);
    let cfg = ConsensusConfig::default();
    let mut cores: Vec<Consensus> = (0..4).map(|i| n.core(i, cfg)).collect();
    let mut queue: VecDeque<(usize, Input)> = VecDeque::new();
    for i in 0..4 {
        queue.push_back((i, Input::StartHeight(Box::new(n.params(1)))));
    }
    let mut decisions = Vec::new();
    while let Some((i, input)) = queue.pop_front() {
        for o in cores[i].handle(input) {
            match o {
                Output::BroadcastProposal(p) => (0..4)
                    .filter(|j| *j != i)
                    .for_each(|j| queue.push_back((j, Input::Proposal((*p).clone())))),
                Output::BroadcastVote(v) => (0..4)
                    .filter(|j| *j != i)
                    .for_each(|j| queue.push_back((j, Input::Vote(v.clone())))),
                Output::RequestProposal { height, round } => queue.push_back((
                    i,
                    Input::ProposalContent {
                        height,
                        round,
                        block: n.template(height, 42),
                    },
                )),
                Output::ValidateBlock {
                    height,
                    round,
                    block,
                    ..
                } => queue.push_back((
                    i,
                    Input::BlockValidity {
                        height,
                        round,
                        block_hash: header_hash(block.header.as_ref().expect("header")),
                        valid: true,
                    },
                )),
                Output::Decided(d) => decisions.push((i, d)),
                Output::Rejected(r) => panic!("unexpected rejection {r}"),
                _ => {}
            }
        }
    }
    assert_eq!(decisions.len(), 4, "every validator decides");
    let first = &decisions[0].1;
    let proposer = n.proposer(1, 0);
    let header = first.block.header.as_ref().expect("header");
    assert_eq!(
        header.proposer_address,
        n.set.validators()[proposer].address.0.to_vec()
    );
    let proof = crate::crypto::Signature::from_bytes(&header.vrf_proof).expect("proof");
    assert_eq!(first.seed, vrf::next_seed(&n.seed, &vrf::output(&proof)));
    for (_, d) in &decisions {
        assert_eq!(d.block_hash, first.block_hash);
        assert_eq!(d.round, 0);
        d.certificate
            .verify_for(&n.chain, &n.set, 1, &d.block_hash)
            .expect("certificate verifies");
    }
}

#[test]
fn same_inputs_give_same_outputs() {
    let n = net(&[3, 1, 4, 1, 5]);
    assert_eq!(run_happy_path(&n), run_happy_path(&n));
}

/// A validator index and prev-seed such that `me` proposes in none of the
/// rounds `0..rounds`.
fn net_where_not_proposer(powers: &[u64], me: usize, rounds: Round) -> Net {
    let mut n = net(powers);
    for s in 0u32.. {
        n.seed = sha3_256(&s.to_be_bytes());
        if (0..rounds).all(|r| n.proposer(1, r) != me) {
            return n;
        }
    }
    unreachable!()
}

/// A net where validator `me` proposes in round `round` and in none before.
fn net_where_first_proposer_in(me: usize, round: Round) -> Net {
    let mut n = net(&[1, 1, 1, 1]);
    for s in 0u32.. {
        n.seed = sha3_256(&s.to_be_bytes());
        if n.proposer(1, round) == me && (0..round).all(|r| n.proposer(1, r) != me) {
            return n;
        }
    }
    unreachable!()
}

/// The precommit timeout of `round` at height 1 fires on `c`.
fn precommit_timeout(c: &mut Consensus, round: Round) -> Vec<Output> {
    c.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round,
        step: TimeoutStep::Precommit,
    }))
}

/// The host's verdict `valid` on block `hash` of round `round`, height 1.
fn judge(c: &mut Consensus, round: Round, hash: Hash, valid: bool) -> Vec<Output> {
    c.handle(Input::BlockValidity {
        height: 1,
        round,
        block_hash: hash,
        valid,
    })
}

/// Height 1, round 0 on `c` (validator `me`, not the proposer): the
/// proposal of a block v, valid, and a polka for v; returns v, locked.
fn lock_in_round_0(n: &Net, me: usize, c: &mut Consensus) -> Hash {
    let p0 = n.proposer(1, 0);
    let (bv, v) = n.block(p0, 1, 1);
    c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &bv)));
    c.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: v,
        valid: true,
    });
    for i in (0..4).filter(|i| *i != me).take(2) {
        c.handle(Input::Vote(n.vote(i, VoteType::Prevote, 1, 0, Some(v))));
    }
    assert_eq!(c.locked(), Some((v, 0)));
    v
}

#[test]
fn round_skip_needs_more_than_a_third() {
    // Powers in canonical order are 3, 3, 3, 3 (total 12): one third is 4+.
    let n = net(&[3, 3, 3, 3]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    c.handle(Input::Vote(n.vote(0, VoteType::Prevote, 1, 5, None)));
    assert_eq!(c.round(), 0, "a quarter of the power is not enough");
    c.handle(Input::Vote(n.vote(1, VoteType::Precommit, 1, 5, None)));
    assert_eq!(c.round(), 5, "half the power in round 5 moves us there");
}

#[test]
fn lock_is_kept_against_a_new_value_and_released_by_a_later_polka() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 3);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    // Round 0: proposal v, polka for v → lock on v and precommit v.
    let p0 = n.proposer(1, 0);
    let (bv, v) = n.block(p0, 1, 1);
    c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &bv)));
    let out = c.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: v,
        valid: true,
    });
    assert_eq!(
        votes_cast(&out)[0].block_hash,
        v.to_vec(),
        "prevotes the proposal"
    );
    let mut out = Vec::new();
    for i in (0..4).filter(|i| *i != me).take(2) {
        out.extend(c.handle(Input::Vote(n.vote(i, VoteType::Prevote, 1, 0, Some(v)))));
    }
    assert_eq!(c.locked(), Some((v, 0)));
    let pc = votes_cast(&out);
    assert_eq!(pc.len(), 1);
    assert_eq!(pc[0].vote_type, VoteType::Precommit as i32);
    assert_eq!(pc[0].block_hash, v.to_vec());
    // Round 1: a new value w without POL → prevote nil (locked on v).
    c.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 0,
        step: TimeoutStep::Precommit,
    }));
    assert_eq!(c.round(), 1);
    let p1 = n.proposer(1, 1);
    let (bw, w) = n.block_in(p1, 1, 1, 2);
    c.handle(Input::Proposal(n.proposal(p1, 1, 1, -1, &bw)));
    let out = c.handle(Input::BlockValidity {
        height: 1,
        round: 1,
        block_hash: w,
        valid: true,
    });
    let pv = votes_cast(&out);
    assert_eq!(pv.len(), 1);
    assert!(
        pv[0].block_hash.is_empty(),
        "locked: prevote nil for another value"
    );
    // Our prevote timeout ends round 1's prevote step (precommit nil); then
    // the others' prevotes for w arrive (a polka we see late), and round 2
    // re-proposes w with POL round 1 → the lock from round 0 is released.
    let out = c.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 1,
        step: TimeoutStep::Prevote,
    }));
    assert!(votes_cast(&out)[0].block_hash.is_empty(), "precommit nil");
    for i in (0..4).filter(|i| *i != me) {
        c.handle(Input::Vote(n.vote(i, VoteType::Prevote, 1, 1, Some(w))));
    }
    assert_eq!(
        c.locked(),
        Some((v, 0)),
        "already precommitted nil in round 1: no relock"
    );
    assert_eq!(c.valid(), Some((w, 1)), "but w becomes the valid value");
    c.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 1,
        step: TimeoutStep::Precommit,
    }));
    assert_eq!(c.round(), 2);
    let p2 = n.proposer(1, 2);
    let out = c.handle(Input::Proposal(n.proposal(p2, 1, 2, 1, &bw)));
    let pv = votes_cast(&out);
    assert_eq!(pv.len(), 1, "{out:?}");
    assert_eq!(
        pv[0].block_hash,
        w.to_vec(),
        "POL round 1 ≥ locked round 0 unlocks"
    );
}

#[test]
fn future_height_buffer_is_bounded_and_replayed() {
    let n = net(&[1, 1, 1, 1]);
    let cfg = ConsensusConfig {
        buffer: BufferConfig {
            max_messages: 4,
            max_heights_ahead: 2,
        },
        ..Default::default()
    };
    let mut c = Consensus::new(cfg, n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    for r in 0..10 {
        c.handle(Input::Vote(n.vote(
            r % 4,
            VoteType::Prevote,
            2,
            r as u32,
            None,
        )));
    }
    c.handle(Input::Vote(n.vote(0, VoteType::Prevote, 9, 0, None)));
    assert_eq!(c.buffered(), (4, 7));
    // Height 2 starts: the buffered prevotes of rounds 0..3 (4 validators,
    // all of them) are replayed; four distinct senders in round 3 > 1/3.
    c.handle(Input::StartHeight(Box::new(n.params(2))));
    assert_eq!(c.buffered().0, 0);
    assert_eq!(c.round(), 0, "one sender per round is not f+1");
}

mod carried;
mod equivocator_votes;
mod evidence;
mod gate;
mod held_blocks;
mod late_polka;
mod proposals;
mod restart;
mod votes;
