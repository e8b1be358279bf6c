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
