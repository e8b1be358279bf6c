//! Which conflicting votes an equivocator gets stored (`state/votes.rs`):
//! the vote sets grow linearly with the rounds of a height, and a vote
//! dropped because its block did not count yet is kept when it comes again
//! after a proposal made it count.

use super::*;
use crate::consensus::vote_set::MAX_UNKNOWN_VALUES_PER_VOTER;

const ME: usize = 0;
const EQUIVOCATOR: usize = 3;

fn timeout(c: &mut Consensus, round: Round, step: TimeoutStep) -> Vec<Output> {
    c.handle(Input::TimeoutFired(Timeout {
        height: 1,
        round,
        step,
    }))
}

/// From round `r` to round `r + 1`, every step timing out.
fn next_round(c: &mut Consensus, r: Round) {
    for step in [
        TimeoutStep::Propose,
        TimeoutStep::Prevote,
        TimeoutStep::Precommit,
    ] {
        timeout(c, r, step);
    }
    assert_eq!(c.round(), r + 1);
}

/// A valid fresh block proposed in each of `rounds` rounds, then the
/// equivocator's votes, in every round and type, for nil and every one of
/// those blocks. The votes of the equivocator stored, and the evidence
/// found.
fn votes_for_every_block_in_every_round(fault: TestFault, rounds: Round) -> (usize, usize) {
    let n = net_where_not_proposer(&[1, 1, 1, 1], ME, rounds);
    let config = ConsensusConfig {
        test_fault: fault,
        ..Default::default()
    };
    let mut c = n.core(ME, config);
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    let mut blocks = Vec::new();
    for r in 0..rounds {
        if r > 0 {
            next_round(&mut c, r - 1);
        }
        blocks.push(n.propose_valid(&mut c, r));
    }
    let before = c.stored_votes();
    let mut evidence = 0;
    for r in 0..rounds {
        for t in [VoteType::Prevote, VoteType::Precommit] {
            let values = std::iter::once(None).chain(blocks.iter().copied().map(Some));
            for v in values {
                let out = c.handle(Input::Vote(n.vote(EQUIVOCATOR, t, 1, r, v)));
                evidence += evidence_of(&out).len();
            }
        }
    }
    (c.stored_votes() - before, evidence)
}

#[test]
fn an_equivocators_stored_votes_grow_linearly_with_the_rounds() {
    let rounds: Round = 10;
    let r = rounds as usize;
    let (stored, evidence) = votes_for_every_block_in_every_round(TestFault::None, rounds);
    // Per round and type: nil, the round's own block and the slack for
    // values that do not count (yet).
    let per_round = 1 + 1 + MAX_UNKNOWN_VALUES_PER_VOTER;
    assert!(stored <= 2 * r * per_round, "{stored} stored");
    assert!(stored >= 2 * r * 2, "nil and the round's block: {stored}");
    // Each (round, type) equivocated is one infraction, found once.
    assert_eq!(evidence, 2 * r, "the dropped votes are evidence too");
}

#[cfg(feature = "test-faults")]
#[test]
fn negative_control_keeping_votes_for_every_known_block_is_quadratic() {
    let rounds: Round = 10;
    let r = rounds as usize;
    let fault = TestFault::KeepVotesForKnownBlocks;
    let (stored, evidence) = votes_for_every_block_in_every_round(fault, rounds);
    assert_eq!(stored, 2 * r * (r + 1), "every vote kept");
    assert_eq!(evidence, 2 * r);
}

#[test]
fn a_vote_dropped_before_its_block_counted_is_kept_when_it_comes_again() {
    let n = net_where_not_proposer(&[1, 1, 1, 1], ME, 3);
    let mut c = n.core(ME, ConsensusConfig::default());
    c.handle(Input::StartHeight(Box::new(n.params(1))));
    // Round 0's proposer equivocates: this node gets block A, the two
    // other honest validators block B; the equivocator fills its slack.
    let p0 = n.proposer(1, 0);
    let (a, a_hash) = n.block_in(p0, 1, 0, 1);
    let (b, b_hash) = n.block_in(p0, 1, 0, 2);
    c.handle(Input::Proposal(n.proposal(p0, 1, 0, -1, &a)));
    let honest: Vec<usize> = (1..4).filter(|i| *i != EQUIVOCATOR).collect();
    for i in &honest {
        c.handle(Input::Vote(n.vote(
            *i,
            VoteType::Prevote,
            1,
            0,
            Some(b_hash),
        )));
    }
    let junk = [None, Some(a_hash), Some([7; 32])];
    assert_eq!(junk.len(), MAX_UNKNOWN_VALUES_PER_VOTER);
    for v in junk {
        c.handle(Input::Vote(n.vote(EQUIVOCATOR, VoteType::Prevote, 1, 0, v)));
    }
    let prevote_b = n.vote(EQUIVOCATOR, VoteType::Prevote, 1, 0, Some(b_hash));
    let stored = c.stored_votes();
    let out = c.handle(Input::Vote(prevote_b.clone()));
    assert_eq!(c.stored_votes(), stored, "B does not count in round 0 yet");
    assert_eq!(evidence_of(&out).len(), 0, "already found for this round");
    next_round(&mut c, 0);
    next_round(&mut c, 1);
    // Round 2 re-proposes B with round 0 as its proof-of-lock round.
    let p2 = n.proposer(1, 2);
    c.handle(Input::Proposal(n.proposal(p2, 1, 2, 0, &b)));
    let out = c.handle(Input::BlockValidity {
        height: 1,
        round: 2,
        block_hash: b_hash,
        valid: true,
    });
    assert!(votes_cast(&out).is_empty(), "no polka for B in round 0 yet");
    // An honest node that counted it re-sends the equivocator's vote.
    let stored = c.stored_votes();
    let out = c.handle(Input::Vote(prevote_b));
    assert!(c.stored_votes() > stored, "kept now");
    let cast = votes_cast(&out);
    assert_eq!(cast.len(), 1, "{cast:?}");
    assert_eq!(cast[0].round, 2);
    assert_eq!(cast[0].block_hash, b_hash.to_vec(), "line 28: prevote B");
}
