//! A past round's block is released once it leaves the window of
//! `PAST_ROUNDS_KEPT` rounds, except the locked and valid values; a late
//! quorum of the previous round still decides, and a released block comes
//! back with a later proposal carrying it.

use super::*;

fn validations(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::ValidateBlock { .. }))
        .count()
}

#[test]
fn a_past_rounds_block_is_released_and_comes_back_with_a_later_proposal() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let p0 = n.proposer(1, 0);
    let (b0, h0) = n.block(p0, 1, 1);
    let out = c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &b0)));
    assert_eq!(validations(&out), 1);
    precommit_timeout(&mut c, 0);
    assert!(c.holds_block(&h0), "round 0 is round 1's past round");
    precommit_timeout(&mut c, 1);
    assert_eq!(c.round(), 2);
    assert!(
        !c.holds_block(&h0),
        "two rounds on, round 0's block is let go"
    );
    // Its verdict, arriving now, is not kept for a block not held...
    c.handle(Input::BlockValidity {
        height: 1,
        round: 0,
        block_hash: h0,
        valid: true,
    });
    // ...so a later proposal carrying the block has it validated again.
    let p2 = n.proposer(1, 2);
    let out = c.handle(Input::Proposal(n.proposal(p2, 1, 2, 0, &b0)));
    assert!(rejections(&out).is_empty(), "{out:?}");
    assert_eq!(validations(&out), 1, "asked again: {out:?}");
    assert!(c.holds_block(&h0));
}

#[test]
fn a_late_quorum_of_the_previous_round_decides() {
    let n = net(&[1, 1, 1, 1]);
    let mut c = Consensus::new(ConsensusConfig::default(), n.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let h0 = n.propose_valid(&mut c, 0);
    precommit_timeout(&mut c, 0);
    assert_eq!(c.round(), 1);
    let mut decided = Vec::new();
    for i in 0..3 {
        let out = c.handle(Input::Vote(n.vote(i, VoteType::Precommit, 1, 0, Some(h0))));
        decided.extend(out.into_iter().filter_map(|o| match o {
            Output::Decided(d) => Some((d.round, d.block_hash)),
            _ => None,
        }));
    }
    assert_eq!(decided, vec![(0, h0)], "line 49 for the round just left");
}

#[test]
fn the_locked_block_is_held_through_later_rounds_and_re_proposed() {
    let me = 0;
    let n = net_where_first_proposer_in(me, 3);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let v = lock_in_round_0(&n, me, &mut c);
    precommit_timeout(&mut c, 0);
    precommit_timeout(&mut c, 1);
    assert!(c.holds_block(&v), "locked: kept past the window");
    let out = precommit_timeout(&mut c, 2);
    let proposed: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::BroadcastProposal(p) => Some((p.round, p.pol_round)),
            _ => None,
        })
        .collect();
    assert_eq!(proposed, vec![(3, 0)], "line 16 re-proposes v: {out:?}");
}
