//! Block sync against hostile peers: unsolicited or mismatched blocks,
//! false height announcements, pruned heights and late answers.

use super::*;

/// Serves blocks `from..` of `src` as a response.
fn response(src: &[CommitRecord], from: u64, latest: u64) -> pb::BlockResponse {
    pb::BlockResponse {
        blocks: src
            .iter()
            .filter(|c| c.height >= from)
            .map(|c| pb::CertifiedBlock {
                block: Some(c.block.clone()),
                certificate: Some(c.certificate.to_proto()),
            })
            .collect(),
        latest_height: latest,
        lowest_height: 0,
    }
}

fn drain_sync(e: &mut Engine<u8>, out: &mut Vec<Action<u8>>) {
    while let Some(a) = e.next_synced_block(NOW + 10_000, &NoMempool).expect("sync") {
        out.extend(a);
    }
}

/// Peer 2 announces height 2: `late` must ask peer 2 (and nobody else),
/// then reach height 2 from its answer of `honest`'s blocks.
fn synced_from_peer_2(late: &mut Engine<u8>, honest: &[CommitRecord]) {
    let req = late.on_status(2, 2, NOW + 1, &NoMempool).expect("status");
    assert!(
        matches!(&req[..], [Action::RequestBlocks { peer: 2, .. }]),
        "{req:?}"
    );
    late.on_block_response(2, response(honest, 1, 2), NOW);
    drain_sync(late, &mut Vec::new());
    assert_eq!(late.tip_height(), 2);
}

#[test]
fn sync_takes_only_solicited_blocks_whose_body_matches_the_certified_header() {
    let mut net = Net::new(N);
    net.run_to(6);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    // Unsolicited: dropped before any check, charged to the sender.
    let a = late.on_block_response(1, response(&honest, 1, 6), NOW);
    assert!(matches!(
        &a[..],
        [Action::Penalize {
            peer: 1,
            fault: PeerFault::Unsolicited
        }]
    ));
    // Peer 1 claims height 6: we ask it.
    let req = late.on_status(1, 6, NOW, &NoMempool).expect("status");
    assert!(
        matches!(
            &req[..],
            [Action::RequestBlocks {
                peer: 1,
                from: 1,
                ..
            }]
        ),
        "{req:?}"
    );
    // It serves genuine headers and certificates with a forged body at 3.
    let mut forged = response(&honest, 1, 6);
    forged.blocks[2]
        .block
        .as_mut()
        .expect("b")
        .txs
        .push(pb::Transaction::default());
    assert!(late.on_block_response(1, forged, NOW).is_empty());
    let mut out = Vec::new();
    drain_sync(&mut late, &mut out);
    assert_eq!(
        late.tip_height(),
        2,
        "blocks before the forged one are applied"
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Penalize {
            peer: 1,
            fault: PeerFault::BadBlock(BlockError::BodyMismatch("txs_hash"))
        }
    )));
    // A second, honest peer serves the rest.
    let req = late
        .on_status(2, 6, NOW + 20_000, &NoMempool)
        .expect("status");
    assert!(
        matches!(
            &req[..],
            [Action::RequestBlocks {
                peer: 2,
                from: 3,
                ..
            }]
        ),
        "{req:?}"
    );
    late.on_block_response(2, response(&honest, 3, 6), NOW);
    let mut out = Vec::new();
    drain_sync(&mut late, &mut out);
    assert_eq!(late.tip_height(), 6);
    assert_eq!(late.ledger().app_hash(), net.engines[0].ledger().app_hash());
    assert_eq!(
        late.tip().block_hash,
        header_hash(honest[5].block.header.as_ref().expect("h"))
    );
}

#[test]
fn a_peer_that_announces_a_height_it_does_not_serve_loses_its_claim() {
    let mut net = Net::new(N);
    net.run_to(2);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    late.on_status(1, 1_000_000, NOW, &NoMempool)
        .expect("status");
    let a = late.on_block_response(
        1,
        pb::BlockResponse {
            blocks: vec![],
            latest_height: 1_000_000,
            lowest_height: 0,
        },
        NOW,
    );
    assert!(
        matches!(
            &a[..],
            [Action::Penalize {
                peer: 1,
                fault: PeerFault::FalseHeight
            }]
        ),
        "{a:?}"
    );
    // The honest peer is asked next.
    synced_from_peer_2(&mut late, &honest);
}

/// A peer that pruned the heights we need (`storage.keep_blocks`) says so
/// in its answer: it is not charged, not asked again for them, and the
/// heights come from a peer that keeps them. The negative control is
/// `a_peer_that_announces_a_height_it_does_not_serve_loses_its_claim`
/// (the same empty answer without a floor is charged).
#[test]
fn a_peer_that_pruned_the_heights_asked_is_not_charged_and_not_asked_again() {
    let mut net = Net::new(N);
    net.run_to(2);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    late.on_status(1, 1_000, NOW, &NoMempool).expect("status");
    let a = late.on_block_response(
        1,
        pb::BlockResponse {
            blocks: vec![],
            latest_height: 1_000,
            lowest_height: 500,
        },
        NOW,
    );
    assert!(a.is_empty(), "a pruned peer is not charged: {a:?}");
    // Peer 1 still claims 1,000, more than peer 2, yet peer 2 is asked.
    synced_from_peer_2(&mut late, &honest);
}

#[test]
fn a_slow_answer_to_a_request_given_up_is_dropped_and_charged_once() {
    let mut net = Net::new(N);
    net.run_to(2);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    late.on_status(1, 2, NOW, &NoMempool).expect("status");
    // No answer within the timeout: the next poll asks someone else.
    late.on_status(2, 2, NOW + 1, &NoMempool).expect("status");
    let req = late
        .on_status(
            2,
            2,
            NOW + agora_validator::engine::sync::REQUEST_TIMEOUT_MS + 1,
            &NoMempool,
        )
        .expect("status");
    // Peer 1 is reported once, as for a height it claimed and did not serve.
    assert!(
        matches!(
            &req[..],
            [
                Action::Penalize {
                    peer: 1,
                    fault: PeerFault::FalseHeight
                },
                Action::RequestBlocks { peer: 2, .. }
            ]
        ),
        "{req:?}"
    );
    // Peer 1's answer finally arrives: not charged again, not applied.
    assert!(
        late.on_block_response(1, response(&honest, 1, 2), NOW)
            .is_empty()
    );
    assert!(
        late.next_synced_block(NOW, &NoMempool)
            .expect("sync")
            .is_none()
    );
    // A second unasked answer from it is unsolicited.
    let a = late.on_block_response(1, response(&honest, 1, 2), NOW);
    assert!(matches!(
        &a[..],
        [Action::Penalize {
            peer: 1,
            fault: PeerFault::Unsolicited
        }]
    ));
    late.on_block_response(2, response(&honest, 1, 2), NOW);
    drain_sync(&mut late, &mut Vec::new());
    assert_eq!(late.tip_height(), 2);
}
