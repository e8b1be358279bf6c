//! Proposals: who may send one, the header rules the core checks, the
//! signature and VRF proof (one weighted check, the same verdicts as the
//! separate checks), and a proposal for a height already decided.

use super::*;

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

/// The weighted check of a keyed core (proposal signature and VRF proof in
/// one randomised pairing equation) gives exactly the verdicts of the
/// separate checks an observer makes, for good and bad signatures and proofs.
#[test]
fn proposal_verdicts_are_the_same_with_the_weighted_check() {
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

/// The tick's re-gossip carries the current round's proposal and the one
/// carrying the locked (and valid) block, not every round's: a height that
/// goes many rounds must not cost more per tick with each round. Negative
/// control: everything the height holds (`gossip_messages`, what a
/// connecting validator gets) has the previous round's proposal too (its
/// block is held for a late quorum: `PAST_ROUNDS_KEPT`); older rounds'
/// blocks, but the locked one, are released.
#[test]
fn regossip_carries_the_current_round_and_the_locked_block_only() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 5);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    // Round 0: a polka for a block v, locked on it.
    lock_in_round_0(&n, me, &mut c);
    // Rounds 1 to 4: a new block each, refused (locked), rounds time out.
    for r in 1..5 {
        c.handle(Input::TimeoutFired(Timeout {
            height: 1,
            round: r - 1,
            step: TimeoutStep::Precommit,
        }));
        assert_eq!(c.round(), r);
        n.propose_valid(&mut c, r);
        c.handle(Input::TimeoutFired(Timeout {
            height: 1,
            round: r,
            step: TimeoutStep::Prevote,
        }));
    }
    let rounds = |ps: &[pb::Proposal]| ps.iter().map(|p| p.round).collect::<Vec<_>>();
    let (all, all_votes) = c.gossip_messages();
    assert_eq!(
        rounds(&all),
        vec![0, 3, 4],
        "the control: the locked block's and the last two rounds'"
    );
    let (kept, votes) = c.regossip_messages();
    assert_eq!(
        rounds(&kept),
        vec![0, 4],
        "the locked block's and the current round's"
    );
    assert_eq!(votes, all_votes, "every verified vote is re-sent");
    assert!(!votes.is_empty());
}

/// A proposal is kept for the current round and the next only: its block
/// is held until its round is behind, so one for a round further ahead is
/// ignored (not charged: a peer ahead of us in rounds sends it honestly)
/// and taken when it comes again in its round, as the re-gossip brings
/// it. Control: with the window votes have (`max_rounds_ahead`) the
/// proposal two rounds ahead was kept and its block held at once.
#[test]
fn a_proposal_two_rounds_ahead_is_not_kept() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    assert_eq!(c.round(), 0);
    let validated = |out: &[Output]| {
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. }))
    };
    let p2 = n.proposer(1, 2);
    let (b2, h2) = n.block_in(p2, 1, 2, 3);
    let out = c.handle(Input::Proposal(n.proposal(p2, 1, 2, -1, &b2)));
    assert!(rejections(&out).is_empty(), "not charged: {out:?}");
    assert!(!validated(&out) && !c.holds_block(&h2), "not kept: {out:?}");
    let p1 = n.proposer(1, 1);
    let (b1, h1) = n.block_in(p1, 1, 1, 2);
    let out = c.handle(Input::Proposal(n.proposal(p1, 1, 1, -1, &b1)));
    assert!(
        validated(&out) && c.holds_block(&h1),
        "the next round's is kept"
    );
    // In round 1, round 2's proposal is the next round's: kept when it
    // comes again.
    c.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round: 0,
        step: TimeoutStep::Precommit,
    }));
    assert_eq!(c.round(), 1);
    let out = c.handle(Input::Proposal(n.proposal(p2, 1, 2, -1, &b2)));
    assert!(validated(&out) && c.holds_block(&h2), "{out:?}");
}
