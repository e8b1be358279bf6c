//! Connection exhaustion: as many connections as the node takes, each with
//! a fresh self-signed certificate on a fresh socket, opened `batch` at a
//! time (handshakes in parallel), all held open until the deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::peer::{Peer, Refusal};
use super::{AttackError, Report, Target};

/// Opens up to `max` connections, `batch` handshakes at a time, and holds
/// the ones the node accepted until `deadline`. `report.connected` and
/// `report.refused` say how far it got; `report.closed` lists the held
/// connections the node closed meanwhile.
pub async fn run(
    target: &Target,
    max: u64,
    batch: u64,
    deadline: Instant,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let mut held: Vec<Peer> = Vec::new();
    let mut opened = 0u64;
    while opened < max && Instant::now() < deadline {
        let n = batch.min(max - opened);
        let attempts = (0..n).map(|_| {
            let target = target.clone();
            tokio::spawn(async move { Peer::connect(&target, None).await })
        });
        let attempts: Vec<_> = attempts.collect();
        for a in attempts {
            match a.await {
                Ok(Ok(Ok(peer))) => {
                    report.connected += 1;
                    held.push(peer);
                }
                Ok(Ok(Err(Refusal::Refused(_) | Refusal::Timeout))) => report.refused += 1,
                Ok(Err(e)) => return Err(e),
                Err(_) => report.refused += 1,
            }
        }
        opened += n;
        report.sent = opened;
    }
    // Hold what we got; the node may close some (idle timeouts, bans).
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in &held {
        if let Some(code) = p.closed_code() {
            report.closed.push(code.unwrap_or(u32::MAX));
        }
        p.conn.close(0u32.into(), b"done");
    }
    Ok(report)
}
