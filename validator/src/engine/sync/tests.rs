//! Block sync's request and response rules, peer by peer: round-robin,
//! pace, reconnections, pruned peers, bad blocks and late answers.

use super::*;

fn blocks(heights: std::ops::RangeInclusive<Height>, latest: Height) -> pb::BlockResponse {
    pb::BlockResponse {
        blocks: heights
            .map(|height| pb::CertifiedBlock {
                block: Some(pb::Block {
                    header: Some(pb::Header {
                        height,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                certificate: None,
            })
            .collect(),
        latest_height: latest,
        lowest_height: 0,
    }
}

/// Every height a request asked for.
fn asked_range(r: &Request<u8>) -> std::ops::RangeInclusive<Height> {
    r.from..=r.from + u64::from(r.count) - 1
}

/// Takes every queued block as applied: the height then reached.
fn apply_queue(s: &mut SyncState<u8>, mut have: Height) -> Height {
    while let Some(q) = s.next_block() {
        have = block_height(&q.block).expect("a height");
    }
    have
}

/// A peer answering each request with one block (an honest peer may
/// send fewer than asked) gets one request in three when three peers
/// can serve. Control: with the highest claim asked every time (ties
/// to the lowest id), peer 1 got all six.
#[test]
fn requests_go_round_robin_so_no_one_peer_sets_the_pace() {
    let mut s = SyncState::<u8>::default();
    for p in [1, 2, 3] {
        s.note_height(p, 10_000);
    }
    // Peer 4 is not ahead of us: never asked.
    s.note_height(4, 0);
    let mut asked = Vec::new();
    let mut have = 0;
    for _ in 0..6 {
        let r = s.poll(0, have, 1).expect("a request");
        asked.push(r.peer);
        let v = s.on_response(r.peer, blocks(r.from..=r.from, 10_000), have, 0);
        assert_eq!(v, ResponseVerdict::Accepted { queued: 1 });
        let next = s.next_block().expect("the block served");
        have = block_height(&next.block).expect("a height");
    }
    assert_eq!(asked, [1, 2, 3, 1, 2, 3]);
}

/// The attack round-robin alone left open: a peer answering each
/// request with one block just inside the timeout, among peers serving
/// whole batches in 0.1 s. Measured once, it is passed over while they
/// can serve. Control: with every cost taken as equal (round-robin
/// alone) it was asked 4 times in 12, and the 12 requests took 20 s
/// instead of 6.
#[test]
fn a_slow_peer_is_asked_once_then_passed_over() {
    let (asked, took) = slow_peer_run(false);
    assert_eq!(asked.iter().filter(|p| **p == 2).count(), 1, "{asked:?}");
    assert!(took <= 6_000, "{took} ms for 12 requests");
}

/// The slow peer reconnects after each of its answers (its claim is
/// dropped and made again): its measured pace is kept, so it is still
/// asked once. Control: with the pace forgotten at a disconnection it
/// was asked 4 times in 12.
#[test]
fn a_slow_peer_reconnecting_is_still_passed_over() {
    let (asked, took) = slow_peer_run(true);
    assert_eq!(asked.iter().filter(|p| **p == 2).count(), 1, "{asked:?}");
    assert!(took <= 6_000, "{took} ms for 12 requests");
}

/// Twelve requests to peers 1 and 3 (whole batches in 0.1 s) and 2 (one
/// block in 4.9 s, reconnecting after each answer if `churn`), then a
/// newcomer; who was asked and the time taken by the twelve.
fn slow_peer_run(churn: bool) -> (Vec<u8>, u64) {
    let mut s = SyncState::<u8>::default();
    for p in [1, 2, 3] {
        s.note_height(p, 1_000_000);
    }
    let (mut now, mut have) = (0, 0);
    let mut asked = Vec::new();
    for _ in 0..12 {
        let r = s.poll(now, have, 1).expect("a request");
        asked.push(r.peer);
        let (took, served) = if r.peer == 2 {
            (4_900, r.from..=r.from)
        } else {
            (100, asked_range(&r))
        };
        now += took;
        let v = s.on_response(r.peer, blocks(served, 1_000_000), have, now);
        assert!(matches!(v, ResponseVerdict::Accepted { .. }));
        have = apply_queue(&mut s, have);
        if churn && r.peer == 2 {
            s.remove(&2);
            s.note_height(2, 1_000_000);
        }
    }
    // A newcomer gets its turn in the round: asked within one round of
    // the able peers (not at once, or reconnecting as someone new after
    // every answer would win every next request).
    s.note_height(4, 1_000_000);
    let mut turn = Vec::new();
    for _ in 0..3 {
        let r = s.poll(now, have, 1).expect("a request");
        turn.push(r.peer);
        let full = blocks(asked_range(&r), 1_000_000);
        s.on_response(r.peer, full, have, now + 100);
        have = apply_queue(&mut s, have);
    }
    assert!(turn.contains(&4), "the newcomer's turn: {turn:?}");
    (asked, now)
}

/// Honest peers a little slower than the fastest still take their
/// turn, so no one peer's serving budget carries the whole catch-up;
/// one more than `SPREAD` times slower does not.
#[test]
fn peers_of_similar_pace_share_the_requests() {
    let mut s = SyncState::<u8>::default();
    for p in [1, 2, 3] {
        s.note_height(p, 1_000_000);
    }
    let took = |p: u8| match p {
        1 => 100,
        2 => 150,
        _ => 350,
    };
    let (mut now, mut have) = (0, 0);
    let mut asked = Vec::new();
    for _ in 0..9 {
        let r = s.poll(now, have, 1).expect("a request");
        asked.push(r.peer);
        now += took(r.peer);
        let full = blocks(asked_range(&r), 1_000_000);
        s.on_response(r.peer, full, have, now);
        have = apply_queue(&mut s, have);
    }
    assert_eq!(asked, [1, 2, 3, 1, 2, 1, 2, 1, 2]);
}

#[test]
fn a_request_to_a_reconnected_peer_is_given_up_uncharged_and_asked_again() {
    let mut s = SyncState::<u8>::default();
    s.note_height(1, 100);
    let r = s.poll(0, 2, 1).expect("request");
    assert_eq!(r.peer, 1);
    // Another peer's reconnection changes nothing.
    s.reconnected(&2);
    assert_eq!(s.in_flight().map(|r| r.peer), Some(1));
    s.reconnected(&1);
    assert!(s.in_flight().is_none());
    // Nothing to charge when the timeout passes, and the peer is asked
    // again at once (its claim is kept).
    assert_eq!(s.expire(REQUEST_TIMEOUT_MS + 1), None);
    let again = s.poll(1, 2, 1).expect("asked again");
    assert_eq!((again.peer, again.from), (1, 3));
    // Negative control: without the reconnection the same request
    // expires as a false claim.
    let mut t = SyncState::<u8>::default();
    t.note_height(1, 100);
    t.poll(0, 2, 1).expect("request");
    assert_eq!(t.expire(REQUEST_TIMEOUT_MS + 1), Some(1));
}

#[test]
fn a_bad_block_drops_the_whole_queue_and_the_answer_asked_after_it() {
    let mut s = SyncState::<u8>::default();
    s.note_height(1, 100);
    s.note_height(2, 100);
    // The first peer asked answers 3..=258; the next range is asked
    // for while those wait in the queue.
    let first = s.poll(0, 2, 1).expect("request");
    let r = s.on_response(first.peer, blocks(3..=258, 1_000), 2, 0);
    assert_eq!(r, ResponseVerdict::Accepted { queued: 256 });
    let next = s.poll(1, 2, 1).expect("pipelined request");
    assert_eq!(next.from, 259);
    // Block 3 of the first answer is bad: everything queued goes.
    let bad = s.next_block().expect("queued").peer;
    s.drop_queue_from(&bad);
    assert!(s.next_is_empty());
    // The pipelined answer (259..) no longer follows height 2: dropped
    // uncharged, not queued to be refused as out of order.
    assert_eq!(
        s.on_response(next.peer, blocks(259..=300, 1_000), 2, 0),
        ResponseVerdict::Late
    );
    assert!(s.next_is_empty());
    // And the next request starts where we are.
    s.note_height(2, 1_000);
    assert_eq!(s.poll(2, 2, 1).expect("asked again").from, 3);
}

#[test]
fn a_late_answer_after_a_reconnection_is_dropped_uncharged() {
    let mut s = SyncState::<u8>::default();
    s.note_height(1, 100);
    s.poll(0, 2, 1).expect("request");
    s.reconnected(&1);
    assert_eq!(
        s.on_response(1, blocks(3..=4, 100), 2, 0),
        ResponseVerdict::Late
    );
}

#[test]
fn a_peer_that_pruned_the_heights_asked_is_skipped_not_charged() {
    let mut s = SyncState::<u8>::default();
    s.note_height(1, 100);
    s.note_height(2, 90);
    let r = s.poll(0, 2, 1).expect("request");
    assert_eq!((r.peer, r.from), (1, 3));
    // Peer 1 keeps 40..=100 only: an empty answer saying so.
    let pruned = pb::BlockResponse {
        blocks: Vec::new(),
        latest_height: 100,
        lowest_height: 40,
    };
    assert_eq!(
        s.on_response(1, pruned.clone(), 2, 0),
        ResponseVerdict::Pruned { lowest: 40 }
    );
    // The next request goes to peer 2, although peer 1 claims more.
    let r = s.poll(1, 2, 1).expect("request");
    assert_eq!((r.peer, r.from), (2, 3));
    // Negative control: the same empty answer claiming nothing pruned
    // (or a floor at or below what was asked) is a false height.
    let mut lying = pruned;
    lying.lowest_height = 3;
    assert_eq!(s.on_response(2, lying, 2, 0), ResponseVerdict::FalseHeight);
    // Once we are past its floor, peer 1 is asked again.
    let r = s.poll(2, 39, 1).expect("request");
    assert_eq!((r.peer, r.from), (1, 40));
}

#[test]
fn an_answer_overtaken_by_consensus_is_not_a_false_height() {
    // Asked at height 2 for 3.., the peer then reached 5; by the time
    // its answer (3..=4) arrives consensus took us to 4 on its own.
    let mut s = SyncState::<u8>::default();
    s.note_height(1, 4);
    let r = s.poll(0, 2, 1).expect("request");
    assert_eq!((r.peer, r.from, r.claimed), (1, 3, 4));
    s.note_height(1, 5);
    assert_eq!(
        s.on_response(1, blocks(3..=4, 4), 4, 0),
        ResponseVerdict::Accepted { queued: 0 }
    );
    // The same peer claiming 5 and serving nothing of it is caught.
    s.note_height(1, 5);
    let r = s.poll(1, 4, 0).expect("request");
    assert_eq!(r.from, 5);
    assert_eq!(
        s.on_response(1, blocks(1..=4, 4), 4, 0),
        ResponseVerdict::FalseHeight
    );
}
