//! Votes found bad after they were stored (when a quorum check that holds
//! them fails and each is checked alone) are charged to the peer that
//! delivered them, and never to the sender of a real vote.

use super::*;

const VALUE: Hash = [9; 32];

/// Votes are for round 1 while the engine is in round 0: once they are
/// from more than a third of the power, the core verifies them to see
/// whether to skip ahead (line 55), whatever its step.
const ROUND: Round = 1;

/// Validator 0's engine at height 1, and the chain.
fn at_height_one() -> (Engine<usize>, ChainId) {
    let mut e = engine(Some(key(0)), at_genesis(4));
    e.start_height(NOW, &NoMempool).expect("start");
    let chain = e.chain.clone();
    (e, chain)
}

/// Feeds `(peer, vote)` in order; every penalty, with the peer charged.
fn feed(e: &mut Engine<usize>, votes: Vec<(usize, pb::Vote)>) -> Vec<(usize, PeerFault)> {
    let mut charged = Vec::new();
    for (peer, v) in votes {
        charged.extend(penalties(
            &e.on_vote(peer, v, NOW, &NoMempool).expect("vote"),
        ));
    }
    charged
}

use crate::crypto::bls::shifted;

/// A forged prevote is stored unchecked; the aggregate that would prove
/// more than a third fails, the forgery fails alone and is dropped, and the peer
/// that delivered it is charged, once (the "left out" case of sessions
/// before 39). The genuine votes' senders are not.
#[test]
fn a_forgery_found_in_a_failed_aggregate_is_charged_to_its_sender() {
    let (mut e, chain) = at_height_one();
    let mut forged = prevote(&key(1), &chain, 1, ROUND, VALUE);
    forged.signature = prevote(&key(1), &chain, 1, 0, VALUE).signature;
    let charged = feed(
        &mut e,
        vec![
            (1, forged),
            (2, prevote(&key(2), &chain, 1, ROUND, VALUE)),
            (3, prevote(&key(3), &chain, 1, ROUND, VALUE)),
        ],
    );
    assert_eq!(charged.len(), 1, "{charged:?}");
    assert_eq!(charged[0].0, 1);
    assert!(matches!(
        &charged[0].1,
        PeerFault::Consensus(RejectReason::BadSignature(_))
    ));
    assert_eq!(e.vote_senders.len(), 2, "the forgery's sender is forgotten");
    let more = feed(&mut e, vec![(2, prevote(&key(2), &chain, 1, ROUND, VALUE))]);
    assert!(more.is_empty(), "a duplicate is not charged: {more:?}");
}

/// Validator 3 delivers its own prevote and a copy of validator 1's,
/// shifted by +X and −X (their plain sum verifies). The weighted quorum
/// check fails them, both are dropped and validator 3's peer is charged
/// for each, never validator 2's, whose honest vote in the same batch
/// counts. Validator 1's real prevote then counts and is not charged, and
/// what the tick relays is the real votes only.
#[test]
fn a_cancelling_pair_is_charged_to_its_sender_and_never_the_real_vote() {
    let (mut e, chain) = at_height_one();
    let (plus, minus) = crate::crypto::bls::cancelling_pair(b"noise");
    let real = |i: u8| prevote(&key(i), &chain, 1, ROUND, VALUE);
    let charged = feed(
        &mut e,
        vec![
            (3, shifted(real(3), &plus)),
            (3, shifted(real(1), &minus)),
            (2, real(2)),
        ],
    );
    assert_eq!(
        charged.iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![3, 3],
        "{charged:?}"
    );
    let charged = feed(&mut e, vec![(1, real(1))]);
    assert!(charged.is_empty(), "{charged:?}");
    let tick = e.on_tick(NOW + TICK_MS);
    assert!(penalties(&tick).is_empty());
    let relayed: Vec<&pb::Vote> = tick
        .iter()
        .filter_map(|a| match a {
            Action::BroadcastVote(v) => Some(v),
            _ => None,
        })
        .collect();
    for v in &relayed {
        assert_ne!(*v, &shifted(real(3), &plus), "a shifted vote relayed");
        assert_ne!(*v, &shifted(real(1), &minus), "a shifted vote relayed");
    }
    assert!(relayed.contains(&&real(1)) && relayed.contains(&&real(2)));
}
