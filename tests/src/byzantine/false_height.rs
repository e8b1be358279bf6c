//! A peer that announces a height far ahead of the chain and never serves
//! it: the node asks it for blocks (it is the only peer claiming to be
//! ahead) and gets nothing back. It repeats the claim every half second,
//! on the same connection, for as long as the node keeps it.

use std::time::Duration;

use agora_proto::v1::{StatusUpdate, peer_message::Kind};
use tokio::time::Instant;

use super::peer::{connect_until, record_close};
use super::{AttackError, Report, Target};

/// How far ahead the false claim is.
pub const CLAIM_AHEAD: u64 = 1_000_000;

/// Claims `tip + CLAIM_AHEAD` until `deadline`, swallowing whatever the
/// node sends (its block requests among it); comes back as someone new
/// when disconnected. `report.received` counts what the node sent.
pub async fn run(target: &Target, tip: u64, deadline: Instant) -> Result<Report, AttackError> {
    let mut report = Report::default();
    while Instant::now() < deadline {
        let Some(peer) = connect_until(target, None, deadline, &mut report).await? else {
            break;
        };
        let claim = Kind::Status(StatusUpdate {
            latest_height: tip + CLAIM_AHEAD,
        });
        while Instant::now() < deadline && !peer.is_closed() {
            if peer.send(claim.clone()).await {
                report.sent += 1;
            }
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                if peer.next_message(until - Instant::now()).await.is_some() {
                    report.received += 1;
                }
            }
        }
        record_close(&peer, &mut report);
        peer.conn.close(0u32.into(), b"done");
    }
    Ok(report)
}
