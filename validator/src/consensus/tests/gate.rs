//! The signing gate: a vote owed while signing was not allowed is cast
//! when it opens, and only if it is still the current step's.

use super::*;

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
