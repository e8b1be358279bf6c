//! The loop most floods share: connect with a fresh certificate and socket,
//! send messages until the node closes the connection, count how it closed,
//! and come back as someone new, until the deadline.

use std::time::Duration;

use agora_proto::v1::peer_message::Kind;
use agora_validator::SecretKey;
use tokio::time::Instant;

use super::peer::{connect_until, record_close};
use super::{AttackError, Report, Target};

/// How fast a flood sends: at most `per_tick` messages, then a pause of
/// `tick`. The attacker shares the machine with the nodes it attacks; an
/// unpaced loop would measure the attacker's CPU, not the node's defences.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Messages per tick.
    pub per_tick: u64,
    /// The pause.
    pub tick: Duration,
}

impl Pace {
    /// About `n` messages per second.
    pub fn per_sec(n: u64) -> Self {
        Self {
            per_tick: (n / 100).max(1),
            tick: Duration::from_millis(10),
        }
    }
}

/// Floods until `deadline`: each connection proves `key(i)` (None: a full
/// node) for the i-th connection and sends `message(n)` for the n-th
/// message overall until the node closes it.
pub async fn flood(
    target: &Target,
    deadline: Instant,
    pace: Pace,
    mut key: impl FnMut(u64) -> Result<Option<SecretKey>, AttackError>,
    mut message: impl FnMut(u64) -> Kind,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let mut connection = 0u64;
    while Instant::now() < deadline {
        let k = key(connection)?;
        connection += 1;
        let Some(peer) = connect_until(target, k.as_ref(), deadline, &mut report).await? else {
            break;
        };
        while Instant::now() < deadline && !peer.is_closed() {
            for _ in 0..pace.per_tick {
                if !peer.send(message(report.sent)).await {
                    break;
                }
                report.sent += 1;
            }
            tokio::time::sleep(pace.tick).await;
        }
        // Give the node a moment to say why it closed, if it is closing.
        let _ = tokio::time::timeout(Duration::from_millis(200), peer.conn.closed()).await;
        record_close(&peer, &mut report);
        peer.conn.close(0u32.into(), b"done");
    }
    Ok(report)
}
