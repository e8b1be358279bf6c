//! A restart after a crash inside the signing-state write (`restart.rs`).

use super::*;

/// A proposer's first batch of actions at height 1 cut at its first
/// signing-state write: the proposer, the whole batch, the WAL records
/// before the cut (what a crash there leaves on disk) and the cut's index.
fn torn_first_batch() -> (u8, Vec<Action<usize>>, Vec<Input>, usize) {
    let (proposer, first) = (0..4u8)
        .find_map(|i| {
            let mut e = engine(Some(key(i)), at_genesis(4));
            let out = e.start_height(NOW, &NoMempool).expect("start");
            out.iter()
                .any(|a| matches!(a, Action::BroadcastProposal(_)))
                .then_some((i, out))
        })
        .expect("a proposer at height 1");
    let torn = first
        .iter()
        .position(|a| matches!(a, Action::PersistSigningState(_)))
        .expect("a signing-state write");
    let wal: Vec<Input> = first[..torn]
        .iter()
        .filter_map(|a| match a {
            Action::Wal(i) => Some(i.clone()),
            _ => None,
        })
        .collect();
    (proposer, first, wal, torn)
}

/// The proposal a batch of actions broadcasts.
fn proposal_of(actions: &[Action<usize>]) -> pb::Proposal {
    actions
        .iter()
        .find_map(|a| match a {
            Action::BroadcastProposal(p) => Some((**p).clone()),
            _ => None,
        })
        .expect("the proposal")
}

/// A proposer's first batch of actions: its proposal and prevote are in
/// the WAL before the signing state that allows them. The crash falls in
/// that write: the WAL is on disk, the signing state (None: never signed)
/// is not. The restarted engine must cover both signatures before it signs
/// anything, so it never proposes another block at that position, and it
/// sends the old proposal and prevote again, unchanged.
#[test]
fn signatures_in_the_wal_are_adopted_before_anything_is_signed() {
    let (proposer, first, wal, torn) = torn_first_batch();
    let sent_before: Vec<Action<usize>> = first[torn..].to_vec();
    let old_proposal = proposal_of(&sent_before);
    let old_prevote = votes_of(&sent_before).pop().expect("the prevote");

    // Later in time, so a new block would differ from the old one.
    let later = NOW + 7_000;
    let mut restarted = Engine::new(
        EngineConfig::default(),
        Some(key(proposer)),
        None,
        at_genesis(4),
        [9; 32],
    );
    let out = restarted.resume(wal, later, &NoMempool).expect("resume");
    let mut sent = out.clone();
    sent.extend(restarted.on_tick(later + TICK_MS));
    for a in &sent {
        if let Action::BroadcastProposal(p) = a {
            assert_eq!(**p, old_proposal, "a second proposal at (1, 0)");
        }
    }
    let votes = votes_of(&sent);
    assert!(
        votes
            .iter()
            .all(|v| v == &old_prevote || v.vote_type != old_prevote.vote_type),
        "a second prevote at (1, 0): {votes:?}"
    );
    assert!(
        votes.contains(&old_prevote),
        "the old prevote is sent again"
    );
    // The adopted prevote is persisted before anything else (the gate is
    // open: the restored state, here none at genesis, is trusted).
    match out.first() {
        Some(Action::PersistSigningState(s)) => {
            assert_eq!((s.height, s.round), (1, 0));
            assert_eq!(s.step, crate::consensus::SignStep::Prevote);
        }
        other => panic!("the adopted signing state must come first, got {other:?}"),
    }
}

/// While the signing gate waits (the state file was missing or stale), the
/// adopted state only guards: written, it would let the next start skip the
/// wait. The old messages are still the only ones at their positions.
#[test]
fn a_waiting_gate_adopts_without_writing_the_file() {
    use crate::consensus::{SigningGate, WaitReason};
    let (proposer, _, wal, _) = torn_first_batch();
    let mut restarted: Engine<usize> = Engine::new(
        EngineConfig::default(),
        Some(key(proposer)),
        None,
        at_genesis(4),
        [9; 32],
    )
    .with_signing_gate(SigningGate::waiting(2, WaitReason::MissingState));
    let out = restarted
        .resume(wal, NOW + 7_000, &NoMempool)
        .expect("resume");
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::PersistSigningState(_))),
        "nothing written while the gate waits"
    );
    let guard = restarted.core().signing_state().expect("adopted");
    assert_eq!(guard.step, crate::consensus::SignStep::Prevote);
}

/// A WAL record of a peer's proposal whose body was altered (one
/// transaction added, the signed header kept) is skipped on replay: the
/// core must hold only bodies that match their headers. Kept, it would
/// stand in for the genuine block (the core keeps the first body of a
/// header), and the genuine proposal arriving afterwards would be judged
/// by the altered body: no prevote for it.
#[test]
fn an_altered_proposal_in_the_wal_does_not_stand_in_for_the_genuine_block() {
    let (proposer, first, _, _) = torn_first_batch();
    let genuine = proposal_of(&first);
    let block_hash = header_hash(
        genuine
            .block
            .as_ref()
            .and_then(|b| b.header.as_ref())
            .expect("header"),
    );
    let mut altered = genuine.clone();
    if let Some(b) = altered.block.as_mut() {
        b.txs.push(pb::Transaction::default());
    }
    let me = (proposer + 1) % 4;
    let mut restarted = Engine::new(
        EngineConfig::default(),
        Some(key(me)),
        None,
        at_genesis(4),
        [9; 32],
    );
    let mut out = restarted
        .resume(vec![Input::Proposal(altered)], NOW, &NoMempool)
        .expect("resume");
    out.extend(
        restarted
            .on_proposal(usize::from(proposer), genuine, NOW, &NoMempool)
            .expect("proposal"),
    );
    let prevotes: Vec<pb::Vote> = votes_of(&out)
        .into_iter()
        .filter(|v| v.vote_type == pb::VoteType::Prevote as i32)
        .collect();
    assert!(
        prevotes.iter().any(|v| v.block_hash == block_hash),
        "no prevote for the genuine block: {prevotes:?}"
    );
}
