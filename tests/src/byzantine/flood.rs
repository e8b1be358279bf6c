//! The loop most floods share: connect with a fresh certificate and socket,
//! send messages until the node closes the connection, count how it closed,
//! and come back as someone new, until the deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_node::transport::wire;
use agora_proto::v1::{PeerMessage, peer_message::Kind};
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
        if n >= 100 {
            Self {
                per_tick: n / 100,
                tick: Duration::from_millis(10),
            }
        } else {
            Self {
                per_tick: 1,
                tick: Duration::from_millis(1000 / n.max(1)),
            }
        }
    }
}

/// Floods until `deadline`: each connection proves `key(i)` (None: a full
/// node) for the i-th connection and sends the frame `message(n, tip)` for
/// the n-th message overall, `tip` being the node's latest height as it
/// last told us (its status on connecting and after every commit; 0 until
/// it said), until the node closes it.
pub async fn flood(
    target: &Target,
    deadline: Instant,
    pace: Pace,
    mut key: impl FnMut(u64) -> Result<Option<SecretKey>, AttackError>,
    mut message: impl FnMut(u64, u64) -> Vec<u8>,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    let mut connection = 0u64;
    while Instant::now() < deadline {
        let k = key(connection)?;
        connection += 1;
        let Some(peer) = connect_until(target, k.as_ref(), deadline, &mut report).await? else {
            break;
        };
        let tip = follow_tip(&peer);
        // The node says its height right after the handshake.
        let said = Instant::now() + Duration::from_secs(1);
        while tip.load(Ordering::Relaxed) == 0 && Instant::now() < said {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while Instant::now() < deadline && !peer.is_closed() {
            for _ in 0..pace.per_tick {
                let frame = message(report.sent, tip.load(Ordering::Relaxed));
                if peer.send_raw(&frame, true).await.is_none() {
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

/// Reads everything the node sends on `peer`'s connection (so its
/// streams do not pile up) and keeps the highest height it announced.
pub fn follow_tip(peer: &super::Peer) -> Arc<AtomicU64> {
    let tip = Arc::new(AtomicU64::new(0));
    let (conn, seen) = (peer.conn.clone(), tip.clone());
    tokio::spawn(async move {
        while let Ok(mut recv) = conn.accept_uni().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                if let Ok((msg, _)) = wire::read_frame(&mut recv, wire::MAX_FRAME).await
                    && let Some(Kind::Status(s)) = msg.kind
                {
                    seen.fetch_max(s.latest_height, Ordering::Relaxed);
                }
            });
        }
    });
    tip
}

/// One message as the frame a flood sends.
pub fn frame(kind: Kind) -> Vec<u8> {
    wire::encode_frame(&PeerMessage { kind: Some(kind) })
}
