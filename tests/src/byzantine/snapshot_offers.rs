//! Snapshot offers no honest node sends, made to a node joining by state
//! sync (it asks every peer that connects for its newest snapshot):
//!
//! - **short seed** — a chain seed of 5 bytes, not 32;
//! - **no manifest** — a height and a seed, and nothing to fetch;
//! - **impossible shape** — a manifest split 13 bits deep (no split goes
//!   past 12), which would make the joiner hold 8,192 chunk summaries.
//!
//! Each must be refused before it is kept and charged `bad_snapshot` (to
//! the ban threshold): it costs the attacker its connection and identity,
//! and the joiner nothing.

use agora_proto::v1::{ChunkSummary, SnapshotManifest, SnapshotOffer, peer_message::Kind};
use tokio::time::{Duration, Instant};

use super::peer::{connect_until, record_close};
use super::{AttackError, Report, Target};

/// How long to wait for the node to close a connection after its offer:
/// a charge to the ban threshold closes it at once.
pub const CLOSE_WAIT: Duration = Duration::from_secs(20);

/// One malformed offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The seed is 5 bytes.
    ShortSeed,
    /// No manifest.
    NoManifest,
    /// A manifest deeper than any split.
    ImpossibleShape,
}

impl Malformed {
    /// Every kind, in the order [`malformed_offers`] sends them.
    pub const ALL: [Self; 3] = [Self::ShortSeed, Self::NoManifest, Self::ImpossibleShape];

    /// The offer, for a snapshot of `height`.
    pub fn offer(self, height: u64) -> SnapshotOffer {
        let manifest = SnapshotManifest {
            prefix_bits: 0,
            chunks: vec![ChunkSummary {
                root: vec![7; 32],
                leaves: 1,
            }],
        };
        match self {
            Self::ShortSeed => SnapshotOffer {
                height,
                seed: vec![1; 5],
                manifest: Some(manifest),
            },
            Self::NoManifest => SnapshotOffer {
                height,
                seed: vec![1; 32],
                manifest: None,
            },
            Self::ImpossibleShape => SnapshotOffer {
                height,
                seed: vec![1; 32],
                manifest: Some(SnapshotManifest {
                    prefix_bits: 13,
                    chunks: vec![ChunkSummary::default(); 1 << 13],
                }),
            },
        }
    }
}

/// For each kind in turn, on a fresh connection: waits for the joiner's
/// snapshot request, answers it with the malformed offer of `height`, and
/// waits (up to [`CLOSE_WAIT`]) for the node to close the connection. The report's `closed` holds
/// one code per connection the node closed, in the order of
/// [`Malformed::ALL`]; `sent` counts the offers sent. Stops at `deadline`.
pub async fn malformed_offers(
    target: &Target,
    height: u64,
    deadline: Instant,
) -> Result<Report, AttackError> {
    let mut report = Report::default();
    for kind in Malformed::ALL {
        let Some(peer) = connect_until(target, None, deadline, &mut report).await? else {
            break;
        };
        // The joiner asks every peer that connects.
        let asked = loop {
            if Instant::now() >= deadline || peer.is_closed() {
                break false;
            }
            match peer.next_message(Duration::from_millis(200)).await {
                Some(Kind::SnapshotRequest(_)) => break true,
                Some(_) => report.received += 1,
                None => {}
            }
        };
        if !asked {
            break;
        }
        if peer.send(Kind::SnapshotOffer(kind.offer(height))).await {
            report.sent += 1;
        }
        let wait = deadline.min(Instant::now() + CLOSE_WAIT);
        let _ = tokio::time::timeout_at(wait, peer.conn.closed()).await;
        record_close(&peer, &mut report);
        peer.conn.close(0u32.into(), b"done");
    }
    Ok(report)
}
