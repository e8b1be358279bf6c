//! Unit tests of the state machine, driven by hand-made messages.

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

#[test]
fn proposal_from_non_proposer_is_rejected() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p = n.proposer(1, 0);
    let other = (p + 1) % 4;
    let (block, _) = n.block(other, 1, 1);
    let out = c.handle(Input::Proposal(n.proposal(other, 1, 0, -1, &block)));
    assert!(
        matches!(rejections(&out)[..], [RejectReason::NotProposer { .. }]),
        "{out:?}"
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. }))
    );
}

#[test]
fn fresh_block_naming_another_round_is_rejected() {
    // Auditors check the proposer against the lottery of proposal_round; a
    // fresh block that names another round would make a valid chain fail.
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p = n.proposer(1, 0);
    let (lying, _) = n.block_in(p, 1, 3, 1);
    let out = c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &lying)));
    assert!(
        matches!(
            rejections(&out)[..],
            [RejectReason::BadHeader("proposal round")]
        ),
        "{out:?}"
    );
    let (honest, _) = n.block_in(p, 1, 0, 1);
    let out = c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &honest)));
    assert!(rejections(&out).is_empty(), "{out:?}");
}

#[test]
fn bad_vrf_and_bad_signature_are_rejected() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p = n.proposer(1, 0);
    // VRF proof for the wrong height.
    let (mut block, _) = n.block(p, 1, 1);
    block.header.as_mut().expect("header").vrf_proof = vrf::prove(&n.keys[p], &n.chain, 2, &n.seed)
        .to_bytes()
        .to_vec();
    let out = c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &block)));
    assert!(
        matches!(rejections(&out)[..], [RejectReason::BadVrf(_)]),
        "{out:?}"
    );
    // Signature over another round.
    let (block, _) = n.block(p, 1, 1);
    let mut prop = n.proposal(p, 1, 0, -1, &block);
    prop.signature = n.proposal(p, 1, 1, -1, &block).signature;
    let out = c.handle(Input::Proposal(prop));
    assert!(
        matches!(rejections(&out)[..], [RejectReason::BadSignature(_)]),
        "{out:?}"
    );
    // The genuine proposal is accepted.
    let out = c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &block)));
    assert!(rejections(&out).is_empty());
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. }))
    );
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
fn double_sign_guard_survives_restart() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 1);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p0 = n.proposer(1, 0);
    let (bv, v) = n.block(p0, 1, 1);
    c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &bv)));
    let first = c.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: v,
        valid: true,
    });
    // Persist comes before the broadcast it protects.
    let persist = first
        .iter()
        .position(|o| matches!(o, Output::PersistSigningState(_)));
    let send = first
        .iter()
        .position(|o| matches!(o, Output::BroadcastVote(_)));
    assert!(persist.is_some() && persist < send, "{first:?}");
    let saved = c.signing_state().expect("signed");
    // Restart with the saved state: a proposal for another block in the
    // same round must not produce a second, different prevote.
    let mut c2 = Consensus::new(
        ConsensusConfig::default(),
        n.chain.clone(),
        Some(n.key(me)),
        Some(saved),
    );
    c2.handle(Input::StartHeight(Box::new(n.params(1))));
    assert_eq!(c2.round(), 0);
    let (bw, w) = n.block(p0, 1, 2);
    c2.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &bw)));
    let out = c2.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: w,
        valid: true,
    });
    // The guard refuses the prevote for w; the core sends its earlier prevote
    // for v again instead (the same bytes, so no double sign).
    let again = votes_cast(&out);
    assert_eq!(c2.stats().refused_signatures, 1);
    assert_eq!(again.len(), 1, "{out:?}");
    assert_eq!(again[0].block_hash, v.to_vec());
    assert_eq!(
        again[0],
        votes_cast(&first)[0],
        "identical to the vote before the crash"
    );
}

#[test]
fn lock_survives_restart() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 2);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
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
    let saved =
        SigningState::from_bytes(&c.signing_state().expect("signed").to_bytes()).expect("decodes");
    let mut c2 = Consensus::new(
        ConsensusConfig::default(),
        n.chain.clone(),
        Some(n.key(me)),
        Some(saved),
    );
    c2.handle(Input::StartHeight(Box::new(n.params(1))));
    assert_eq!(c2.locked(), Some((v, 0)), "the lock is restored");
    c2.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 0,
        step: TimeoutStep::Precommit,
    }));
    let p1 = n.proposer(1, 1);
    let (bw, w) = n.block_in(p1, 1, 1, 2);
    c2.handle(Input::Proposal(n.proposal(p1, 1, 1, -1, &bw)));
    let out = c2.handle(Input::BlockValidity {
        height: 1,
        round: 1,
        block_hash: w,
        valid: true,
    });
    assert!(
        votes_cast(&out)[0].block_hash.is_empty(),
        "still locked on v: prevote nil"
    );
}

#[test]
fn equivocation_becomes_one_canonical_evidence() {
    let n = net(&[1, 1, 1, 1]);
    let a = n.vote(2, VoteType::Prevote, 1, 0, Some([7; 32]));
    let b = n.vote(2, VoteType::Prevote, 1, 0, None);
    let c3 = n.vote(2, VoteType::Prevote, 1, 0, Some([9; 32]));
    let run = |first: &pb::Vote, second: &pb::Vote| {
        let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
        c.handle(Input::StartHeight(Box::new(n.params(1))));
        let mut ev = evidence_of(&c.handle(Input::Vote(first.clone())));
        ev.extend(evidence_of(&c.handle(Input::Vote(second.clone()))));
        ev.extend(evidence_of(&c.handle(Input::Vote(c3.clone()))));
        ev.extend(evidence_of(&c.handle(Input::Vote(second.clone()))));
        ev
    };
    let e1 = run(&a, &b);
    let e2 = run(&b, &a);
    assert_eq!(e1.len(), 1, "one infraction, one evidence");
    assert_eq!(e1, e2, "the same encoding whatever the arrival order");
    let info = verify_evidence(&n.chain, &n.set, &e1[0]).expect("valid evidence");
    assert_eq!(info.offenders, vec![n.set.validators()[2].address]);
    let Some(pb::evidence::Kind::DuplicateVote(d)) = &e1[0].kind else {
        panic!("duplicate vote evidence expected");
    };
    let (ha, hb) = (
        vote_hash(d.vote_a.as_ref().expect("a")).expect("hash"),
        vote_hash(d.vote_b.as_ref().expect("b")).expect("hash"),
    );
    assert!(ha < hb, "smaller block hash (nil = zeros) first");
    assert!(infraction_key(&e1[0]).is_some());
}

#[test]
fn forged_conflicting_vote_frames_nobody() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    c.handle(Input::Vote(n.vote(
        1,
        VoteType::Prevote,
        1,
        0,
        Some([7; 32]),
    )));
    // Validator 3 signs, claiming to be validator 1, for another value.
    let mut forged = n.vote(3, VoteType::Prevote, 1, 0, None);
    forged.validator_address = n.set.validators()[1].address.0.to_vec();
    let out = c.handle(Input::Vote(forged));
    assert!(evidence_of(&out).is_empty());
    assert!(matches!(
        rejections(&out)[..],
        [RejectReason::BadSignature(_)]
    ));
}

#[test]
fn conflicting_proposals_become_evidence() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p = n.proposer(1, 0);
    let (b1, _) = n.block(p, 1, 1);
    let (b2, _) = n.block(p, 1, 2);
    c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &b1)));
    let out = c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &b2)));
    let ev = evidence_of(&out);
    assert_eq!(ev.len(), 1);
    let info = verify_evidence(&n.chain, &n.set, &ev[0]).expect("valid");
    assert_eq!(info.offenders, vec![n.set.validators()[p].address]);
    assert!(evidence_of(&c.handle(Input::Proposal(n.proposal(p, 1, 0, -1, &b2)))).is_empty());
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

#[test]
fn votes_are_verified_once_per_quorum_and_bad_ones_are_dropped() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let v = Some([5u8; 32]);
    // One bad signature (a valid point, over other bytes) among four.
    let mut bad = n.vote(0, VoteType::Precommit, 1, 0, v);
    bad.signature = n.vote(0, VoteType::Precommit, 1, 1, v).signature;
    c.handle(Input::Vote(bad));
    for i in 1..3 {
        c.handle(Input::Vote(n.vote(i, VoteType::Precommit, 1, 0, v)));
    }
    let s = c.stats();
    assert_eq!(
        (s.aggregate_checks, s.single_checks),
        (1, 3),
        "aggregate failed, then per-vote"
    );
    c.handle(Input::Vote(n.vote(3, VoteType::Precommit, 1, 0, v)));
    let s = c.stats();
    assert_eq!(
        (s.aggregate_checks, s.single_checks),
        (1, 4),
        "the last one completes the quorum"
    );
}

/// The two-pair check of a keyed core (proposal signature and VRF proof in
/// one randomised pairing equation) gives exactly the verdicts of the
/// separate checks an observer makes, for good and bad signatures and proofs.
#[test]
fn proposal_verdicts_are_the_same_with_the_two_pair_check() {
    let n = net(&[1, 1, 1, 1]);
    let p = n.proposer(1, 0);
    let me = (p + 1) % 4;
    let (good, _) = n.block(p, 1, 1);
    let with_proof = |proof: Vec<u8>| {
        let mut b = good.clone();
        b.header.as_mut().expect("header").vrf_proof = proof;
        b
    };
    let wrong_height = with_proof(
        vrf::prove(&n.keys[p], &n.chain, 2, &n.seed)
            .to_bytes()
            .to_vec(),
    );
    let other_signer = with_proof(
        vrf::prove(&n.keys[me], &n.chain, 1, &n.seed)
            .to_bytes()
            .to_vec(),
    );
    let junk = with_proof(vec![0xaa; 96]);
    let resigned = |b: &pb::Block| {
        let mut x = n.proposal(p, 1, 0, -1, b);
        x.signature = n.proposal(p, 1, 1, -1, b).signature;
        x
    };
    let cases = [
        n.proposal(p, 1, 0, -1, &good),
        resigned(&good),
        n.proposal(p, 1, 0, -1, &wrong_height),
        resigned(&wrong_height),
        n.proposal(p, 1, 0, -1, &other_signer),
        n.proposal(p, 1, 0, -1, &junk),
        resigned(&junk),
    ];
    let mut accepted = 0;
    for case in cases {
        let verdict = |key: Option<SecretKey>| {
            let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), key, None);
            c.handle(Input::StartHeight(Box::new(n.params(1))));
            let out = c.handle(Input::Proposal(case.clone()));
            let validate = out
                .iter()
                .any(|o| matches!(o, Output::ValidateBlock { .. }));
            (rejections(&out), validate)
        };
        let (observer, keyed) = (verdict(None), verdict(Some(n.key(me))));
        assert_eq!(observer, keyed);
        accepted += usize::from(keyed.1);
    }
    assert_eq!(accepted, 1, "only the genuine proposal");
}

/// Vote signatures are decoded only when verified: one that does not decode
/// and one outside G2 are dropped then (the sum's subgroup check catches the
/// latter, the per-vote fallback finds it), the good ones count, and the
/// validators' genuine votes still count when they arrive later. The kept
/// sum is the sum of the genuine signatures.
#[test]
fn undecodable_and_off_subgroup_votes_are_dropped_when_verified() {
    use super::vote_set::{VoteContext, VoteSet};
    use crate::crypto::Signature;
    use crate::crypto::bls::UncheckedSignature;
    let n = net(&[1, 1, 1, 1, 1]);
    let v = Some([5u8; 32]);
    let signed = super::signed_points::SignedPoints::default();
    let ctx = VoteContext {
        chain: &n.chain,
        set: &n.set,
        height: 1,
        round: 0,
        vote_type: VoteType::Precommit,
        signed: &signed,
    };
    let quorum = |p| n.set.is_quorum(p);
    // A point on the curve outside G2.
    let mut off = [0u8; 96];
    off[0] = 0x80;
    for i in 1..=255u8 {
        off[95] = i;
        if UncheckedSignature::from_bytes(&off).is_ok_and(|u| u.check().is_err()) {
            break;
        }
    }
    let mut vs = VoteSet::default();
    let mut junk = n.vote(0, VoteType::Precommit, 1, 0, v);
    junk.signature = vec![0x80; 96];
    let mut outside = n.vote(1, VoteType::Precommit, 1, 0, v);
    outside.signature = off.to_vec();
    vs.insert(&ctx, VerifyMode::Aggregate, 0, v, junk, true);
    vs.insert(&ctx, VerifyMode::Aggregate, 1, v, outside, true);
    for i in 2..5 {
        vs.insert(
            &ctx,
            VerifyMode::Aggregate,
            i,
            v,
            n.vote(i, VoteType::Precommit, 1, 0, v),
            true,
        );
    }
    assert!(!vs.quorum_for(&ctx, &v, &quorum), "3 of 5 verified");
    assert_eq!(vs.verified_power(&v), 3);
    assert_eq!(vs.potential_power(&v), 3, "both bad ones dropped");
    for i in 0..2 {
        vs.insert(
            &ctx,
            VerifyMode::Aggregate,
            i,
            v,
            n.vote(i, VoteType::Precommit, 1, 0, v),
            true,
        );
    }
    assert!(vs.quorum_for(&ctx, &v, &quorum));
    let (signers, sum) = vs.verified_aggregate(&v).expect("verified votes");
    assert_eq!(signers, vec![0, 1, 2, 3, 4]);
    let sigs: Vec<Signature> = (0..5)
        .map(|i| {
            Signature::from_bytes(&n.vote(i, VoteType::Precommit, 1, 0, v).signature).expect("sig")
        })
        .collect();
    assert_eq!(
        sum,
        Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).expect("sum")
    );
}

/// Once a height is decided its proposals are moot: a later round's
/// proposal is neither kept nor sent for validation. (A node that decided
/// by a synced block has already applied it, so its host would judge the
/// block against the next height and report a valid block invalid.)
#[test]
fn a_proposal_for_a_decided_height_is_not_validated() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p0 = n.proposer(1, 0);
    let (b0, h0) = n.block_in(p0, 1, 0, 1);
    let out = c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &b0)));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. }))
    );
    c.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: h0,
        valid: true,
    });
    let mut decided = false;
    for i in 0..3 {
        let out = c.handle(Input::Vote(n.vote(i, VoteType::Precommit, 1, 0, Some(h0))));
        decided |= out.iter().any(|o| matches!(o, Output::Decided(_)));
    }
    assert!(decided && c.is_decided());
    let p1 = n.proposer(1, 1);
    let (b1, _) = n.block_in(p1, 1, 1, 2);
    let out = c.handle(Input::Proposal(n.proposal(p1, 1, 1, -1, &b1)));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. })),
        "{out:?}"
    );
}

/// Three of four equal validators are up; the round-0 proposer is the one
/// that is down. Validator 2's signing gate is closed when the propose
/// timeout fires, so it passes the prevote step without voting; the other
/// two prevote nil. Returns the three cores and the votes cast so far, all
/// delivered to everyone.
fn gate_opens_mid_step() -> (Net, Vec<Consensus>) {
    let n = {
        let mut n = net(&[1, 1, 1, 1]);
        for s in 0u32.. {
            n.seed = sha3_256(&s.to_be_bytes());
            if n.proposer(1, 0) == 3 {
                break;
            }
        }
        n
    };
    let mut cores: Vec<Consensus> = (0..3)
        .map(|i| n.core(i, ConsensusConfig::default()))
        .collect();
    cores[2].set_signing_allowed(false);
    let mut votes = Vec::new();
    for c in &mut cores {
        c.handle(Input::StartHeight(Box::new(n.params(1))));
        let out = c.handle(Input::TimeoutFired(Timeout {
            height: 1,
            round: 0,
            step: TimeoutStep::Propose,
        }));
        votes.extend(votes_cast(&out));
    }
    assert_eq!(votes.len(), 2, "the closed gate's prevote is not signed");
    assert!(cores[2].owes_vote());
    for (i, c) in cores.iter_mut().enumerate() {
        for v in &votes {
            let out = c.handle(Input::Vote(v.clone()));
            assert!(
                votes_cast(&out).is_empty(),
                "core {i}: two prevotes of four decide nothing"
            );
            assert!(
                !out.iter()
                    .any(|o| matches!(o, Output::ScheduleTimeout { .. })),
                "core {i}: nor start the prevote timeout"
            );
        }
    }
    (n, cores)
}

#[test]
fn a_vote_missed_while_the_gate_was_closed_is_cast_when_it_opens() {
    let (_n, mut cores) = gate_opens_mid_step();
    cores[2].set_signing_allowed(true);
    let out = cores[2].handle(Input::SigningResumed);
    let cast = votes_cast(&out);
    // Its nil prevote, then (three nil prevotes known) its nil precommit.
    assert_eq!(cast.len(), 2, "{out:?}");
    let v = &cast[0];
    assert_eq!(
        (v.height, v.round, v.vote_type),
        (1, 0, VoteType::Prevote as i32)
    );
    assert!(v.block_hash.is_empty(), "nil");
    assert_eq!(cast[1].vote_type, VoteType::Precommit as i32);
    assert!(!cores[2].owes_vote());
    // The third prevote makes two thirds of nil: the others precommit.
    for c in &mut cores[..2] {
        let out = c.handle(Input::Vote(v.clone()));
        let precommits = votes_cast(&out);
        assert_eq!(precommits.len(), 1, "{out:?}");
        assert_eq!(precommits[0].vote_type, VoteType::Precommit as i32);
    }
    // Owed once: resuming again casts nothing.
    assert!(votes_cast(&cores[2].handle(Input::SigningResumed)).is_empty());
}

#[test]
fn without_the_resume_the_three_wait_forever_and_an_old_debt_is_not_paid() {
    // Negative control: the same network with the gate opened but no
    // resume stays where it is whatever else happens (nothing is owed a
    // timeout), which is the stall the resume exists for.
    let (_n, mut cores) = gate_opens_mid_step();
    cores[2].set_signing_allowed(true);
    assert!(cores[2].owes_vote());
    // A debt of a past round is dropped, not paid in the new one.
    cores[2].handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 0,
        step: TimeoutStep::Precommit,
    }));
    let out = cores[2].handle(Input::SigningResumed);
    assert!(votes_cast(&out).is_empty(), "{out:?}");
}

mod carried;
