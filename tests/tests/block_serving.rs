//! Block requests that arrive together: a node serves one at a time off
//! its consensus loop, and the others wait their turn (one per peer). A
//! request dropped because the slot was taken used to cost its sender a
//! whole request timeout, after which it charged the honest server for a
//! false height: a 5 s stall in catch-up.

#[allow(dead_code)]
#[path = "../../node/tests/support/net.rs"]
mod net;

use std::time::{Duration, Instant};

use agora_proto::v1::{BlockRequest, peer_message::Kind};
use agora_tests::byzantine::{Peer, Target};
use net::{build, stop, wait_heights};

/// Syncing peers asking at once.
const ASKERS: usize = 4;
/// Each must be answered well inside the requester's timeout
/// (`engine::sync::REQUEST_TIMEOUT_MS`, 5 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

#[test]
fn block_requests_arriving_together_are_all_answered() {
    let net = build(4, 0, |_, _| {});
    let mut nodes = net.start_all();
    // Long enough that serving one request takes a while.
    wait_heights(&net.metrics, &[0, 1, 2, 3], 150, 180, &net.logs);
    let target = Target::loopback(
        net.p2p[0],
        net.grpc[0],
        "net-test",
        &net.homes[0].join("genesis.json"),
    );
    let rt = Target::attacker_runtime();
    let answered = rt.block_on(async {
        let mut peers = Vec::new();
        for _ in 0..ASKERS {
            let p = Peer::connect(&target, None).await.expect("attacker setup");
            peers.push(p.expect("a full node is accepted"));
        }
        let ask = Kind::BlockRequest(BlockRequest {
            from_height: 1,
            count: 256,
        });
        for p in &peers {
            assert!(p.send(ask.clone()).await, "request sent");
        }
        let deadline = Instant::now() + ANSWER_WITHIN;
        let mut answered = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match p.next_message(left).await {
                    Some(Kind::BlockResponse(r)) => {
                        assert!(
                            r.blocks.len() >= 100,
                            "asker {i}: {} blocks",
                            r.blocks.len()
                        );
                        answered.push(i);
                        break;
                    }
                    Some(_) => continue,
                    None => break,
                }
            }
        }
        answered
    });
    for c in nodes.iter_mut() {
        stop(c);
    }
    assert_eq!(
        answered,
        (0..ASKERS).collect::<Vec<_>>(),
        "every asker gets its blocks within {ANSWER_WITHIN:?}"
    );
}
