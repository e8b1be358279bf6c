//! A proposal of the next height that arrives while the host still waits
//! out `timeout_commit` starts that height at once, except at its round-0
//! proposer (see `engine/early_start.rs`).

use super::*;

fn prevotes_for(actions: &[Action<usize>], height: Height) -> usize {
    votes_of(actions)
        .iter()
        .filter(|v| v.height == height && v.vote_type == VoteType::Prevote as i32)
        .count()
}

#[test]
fn a_validator_still_pausing_starts_and_prevotes_when_the_proposal_comes() {
    let (records, msgs) = make_chain(4, 2);
    let (proposal, proposer) = proposal_of_height_two(&msgs);
    let me = (proposer + 1) % 4;
    let mut e = synced_to_one(Some(key(me)), &records);
    let out = e
        .on_proposal(proposer as usize, proposal, NOW, &NoMempool)
        .expect("engine");
    assert!(!e.awaiting_start(), "height 2 started on its proposal");
    assert_eq!(prevotes_for(&out, 2), 1, "and prevoted at once: {out:?}");
    assert!(penalties(&out).is_empty(), "{out:?}");
    // The host's start, when its pause ends, finds the height started.
    let later = e.start_height(NOW + 200, &NoMempool).expect("start");
    assert!(later.is_empty(), "a second start does nothing: {later:?}");
}

#[test]
fn the_round_zero_proposer_keeps_its_pause_whatever_arrives() {
    let (records, msgs) = make_chain(4, 2);
    let (proposal, proposer) = proposal_of_height_two(&msgs);
    let mut e = synced_to_one(Some(key(proposer)), &records);
    // Someone else's proposal for height 2 (its own key's, but the lottery
    // picked `proposer`): buffered, not a reason to stop collecting late
    // precommits.
    let other = (proposer + 1) % 4;
    let mut forged = proposal.clone();
    forged.proposer_address = Address::of(&key(other).public_key()).0.to_vec();
    let out = e
        .on_proposal(other as usize, forged, NOW, &NoMempool)
        .expect("engine");
    assert!(e.awaiting_start(), "the proposer still pauses: {out:?}");
    assert_eq!(prevotes_for(&out, 2), 0);
    assert_eq!(e.future_buffer().0, 1, "the proposal waits for the start");
}

#[test]
fn an_observer_follows_as_soon_as_the_proposal_comes() {
    let (records, msgs) = make_chain(4, 2);
    let (proposal, proposer) = proposal_of_height_two(&msgs);
    let mut e = synced_to_one(None, &records);
    e.on_proposal(proposer as usize, proposal, NOW, &NoMempool)
        .expect("engine");
    assert!(!e.awaiting_start());
    assert_eq!(e.future_buffer().0, 0, "nothing left waiting");
}

/// What a forger gains by sending a node a proposal of the next height
/// during its pause: the height starts (its propose timeout a little
/// earlier), nothing more. The forged proposal is then checked like any
/// other, charged to its sender and not voted for, and the real one is
/// prevoted when it comes.
#[test]
fn a_forged_proposal_during_the_pause_starts_the_height_and_is_charged() {
    let (records, msgs) = make_chain(4, 2);
    let (proposal, proposer) = proposal_of_height_two(&msgs);
    let me = (proposer + 1) % 4;
    let forger = (proposer + 2) % 4;
    let mut e = synced_to_one(Some(key(me)), &records);
    // The lottery picked `proposer`; the forger claims the slot as itself.
    let mut forged = proposal.clone();
    forged.proposer_address = Address::of(&key(forger).public_key()).0.to_vec();
    let out = e
        .on_proposal(forger as usize, forged, NOW, &NoMempool)
        .expect("engine");
    assert!(!e.awaiting_start(), "the height started: {out:?}");
    assert_eq!(prevotes_for(&out, 2), 0, "nothing voted for: {out:?}");
    let charged = penalties(&out);
    assert_eq!(charged.len(), 1, "{out:?}");
    assert_eq!(
        charged[0].0, forger as usize,
        "charged to its sender: {out:?}"
    );
    let out = e
        .on_proposal(proposer as usize, proposal, NOW + 5, &NoMempool)
        .expect("engine");
    assert_eq!(
        prevotes_for(&out, 2),
        1,
        "the real one is prevoted: {out:?}"
    );
    assert!(penalties(&out).is_empty(), "{out:?}");
}
