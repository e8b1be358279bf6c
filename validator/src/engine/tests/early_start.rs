//! A proposal of the next height that arrives while the host still waits
//! out `timeout_commit` starts that height at once, except at its round-0
//! proposer (see `engine/early_start.rs`).

use super::*;

/// Validator `me`'s engine with block 1 synced and height 2 not started
/// yet: where a node is during the pause after a commit.
fn paused_at_height_two(me: u8, records: &[CommitRecord]) -> Engine<usize> {
    let mut e = engine(Some(key(me)), at_genesis(4));
    e.on_status(0, 3, NOW, &NoMempool).expect("status");
    e.on_block_response(
        0,
        pb::BlockResponse {
            blocks: vec![certified(&records[0])],
            latest_height: 1,
            lowest_height: 0,
        },
        NOW,
    );
    assert!(penalties(&apply_all_synced(&mut e)).is_empty());
    assert_eq!(e.height(), 2);
    assert!(e.awaiting_start(), "the pause: height 2 not started");
    e
}

/// The chain's round-0 proposal of height 2 and its proposer's index.
fn proposal_of_height_two(msgs: &BTreeMap<Height, Vec<Msg>>) -> (pb::Proposal, u8) {
    let p = msgs[&2]
        .iter()
        .find_map(|m| match m {
            Msg::Proposal(p) if p.round == 0 => Some((**p).clone()),
            _ => None,
        })
        .expect("height 2 was proposed in round 0");
    let proposer = (0..4u8)
        .find(|i| Address::of(&key(*i).public_key()).0.to_vec() == p.proposer_address)
        .expect("a validator proposed");
    (p, proposer)
}

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
    let mut e = paused_at_height_two(me, &records);
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
    let mut e = paused_at_height_two(proposer, &records);
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
    let mut e = engine(None, at_genesis(4));
    e.on_status(0, 3, NOW, &NoMempool).expect("status");
    e.on_block_response(
        0,
        pb::BlockResponse {
            blocks: vec![certified(&records[0])],
            latest_height: 1,
            lowest_height: 0,
        },
        NOW,
    );
    assert!(penalties(&apply_all_synced(&mut e)).is_empty());
    assert!(e.awaiting_start());
    e.on_proposal(proposer as usize, proposal, NOW, &NoMempool)
        .expect("engine");
    assert!(!e.awaiting_start());
    assert_eq!(e.future_buffer().0, 0, "nothing left waiting");
}
