//! A polka seen only after its round was left raises the valid value
//! (`rules.rs`, `raise_valid_on_past_polka`), never the lock, and the
//! validator then proposes that value with that valid round (line 16),
//! which a validator locked on it accepts by line 28. The block, released
//! with its round, is held again from a re-gossiped copy of its proposal.

use super::*;

fn proposed(out: &[Output]) -> Vec<(Round, i32, Hash)> {
    out.iter()
        .filter_map(|o| match o {
            Output::BroadcastProposal(p) => {
                let header = p.block.as_ref()?.header.as_ref()?;
                Some((p.round, p.pol_round, header_hash(header)))
            }
            _ => None,
        })
        .collect()
}

/// A core for validator 0, first proposer in `round`, at height 1: it took
/// round `r`'s proposal of a valid block, prevoted it and left the round
/// without a polka. Returns the core, the proposal and the block's hash.
fn left_without_polka(n: &Net, r: Round) -> (Consensus, pb::Proposal, Hash) {
    let mut c = n.core(0, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let (proposal, v) = n.propose_valid_copy(&mut c, r);
    precommit_timeout(&mut c, r);
    (c, proposal, v)
}

/// Validator `me` prevotes round 0's block v and leaves the round without a
/// polka; two rounds on (v released), the two prevotes that complete the
/// polka arrive, then a re-gossiped copy of round 0's proposal. In round
/// 3, its first as proposer, it proposes v with valid round 0.
#[test]
fn a_polka_seen_after_its_round_makes_its_value_valid_and_re_proposed() {
    let me = 0;
    let n = net_where_first_proposer_in(me, 3);
    let (mut c, round_0, v) = left_without_polka(&n, 0);
    precommit_timeout(&mut c, 1);
    assert_eq!(c.round(), 2);
    assert_eq!(c.valid(), None, "no polka yet");
    assert!(!c.holds_block(&v), "released two rounds on");
    for i in (0..4).filter(|i| *i != me).take(2) {
        c.handle(Input::Vote(n.vote(i, VoteType::Prevote, 1, 0, Some(v))));
    }
    assert_eq!(c.valid(), Some((v, 0)), "the late polka makes v valid");
    assert_eq!(c.locked(), None, "and never locks");
    c.handle(Input::Proposal(round_0));
    assert!(c.holds_block(&v), "the re-gossiped proposal brings v back");
    let out = precommit_timeout(&mut c, 2);
    assert_eq!(proposed(&out), vec![(3, 0, v)], "line 16 with v: {out:?}");
}

/// A higher past polka replaces a lower valid value; a lower one, or one
/// for a block the host found invalid, does not.
#[test]
fn only_a_higher_past_polka_for_a_valid_block_moves_the_valid_value() {
    let me = 0;
    let n = net_where_not_proposer(&[1, 1, 1, 1], me, 4);
    let mut c = n.core(me, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let v0 = n.propose_valid(&mut c, 0);
    precommit_timeout(&mut c, 0);
    let p1 = n.proposer(1, 1);
    let (b1, v1) = n.block_in(p1, 1, 1, 2);
    c.handle(Input::Proposal(n.proposal(p1, 1, 1, -1, &b1)));
    judge(&mut c, 1, v1, false);
    precommit_timeout(&mut c, 1);
    let v2 = n.propose_valid(&mut c, 2);
    precommit_timeout(&mut c, 2);
    assert_eq!(c.round(), 3);
    let others: Vec<usize> = (0..4).filter(|i| *i != me).collect();
    for i in &others {
        c.handle(Input::Vote(n.vote(*i, VoteType::Prevote, 1, 1, Some(v1))));
    }
    assert_eq!(c.valid(), None, "a polka for an invalid block");
    for i in &others {
        c.handle(Input::Vote(n.vote(*i, VoteType::Prevote, 1, 2, Some(v2))));
    }
    assert_eq!(c.valid(), Some((v2, 2)));
    for i in &others {
        c.handle(Input::Vote(n.vote(*i, VoteType::Prevote, 1, 0, Some(v0))));
    }
    assert_eq!(c.valid(), Some((v2, 2)), "round 0 is below the valid round");
    assert_eq!(c.locked(), None);
}

/// Replayed copies of kept proposals hold a released block again only
/// while it is the valid value: before the late polka, and for another
/// round's block, a replay holds nothing, so a peer replaying every
/// proposal it saw cannot grow the held blocks past the valid value's.
#[test]
fn replayed_proposals_hold_again_only_the_valid_value() {
    let me = 0;
    let n = net_where_first_proposer_in(me, 4);
    let (mut c, round_0, v) = left_without_polka(&n, 0);
    let (round_1, w) = n.propose_valid_copy(&mut c, 1);
    for r in 1..=2 {
        precommit_timeout(&mut c, r);
    }
    assert_eq!(c.round(), 3);
    assert!(!c.holds_block(&v) && !c.holds_block(&w), "both released");
    c.handle(Input::Proposal(round_0.clone()));
    assert!(!c.holds_block(&v), "not the valid value: not held again");
    for i in (0..4).filter(|i| *i != me).take(2) {
        c.handle(Input::Vote(n.vote(i, VoteType::Prevote, 1, 0, Some(v))));
    }
    assert_eq!(c.valid(), Some((v, 0)));
    c.handle(Input::Proposal(round_1));
    assert!(
        !c.holds_block(&w),
        "another round's block is not held again"
    );
    c.handle(Input::Proposal(round_0));
    assert!(c.holds_block(&v), "the valid value is");
    let out = precommit_timeout(&mut c, 3);
    assert_eq!(proposed(&out), vec![(4, 0, v)], "line 16 with v: {out:?}");
}
