//! Which snapshot offer a joining node takes.
//!
//! The one offered by the most peers (the same height and manifest), then
//! the highest, then by peer id (so the choice is deterministic). Honest
//! nodes snapshot at the same multiples of `state_sync.snapshot_interval`,
//! so their offers coincide, and every peer offering the chosen manifest
//! is a source of its chunks. Taking the highest alone let one peer be the
//! only source whenever it liked: a snapshot taken at its own restart is
//! newer than the interval's and offered by nobody else, and a lone source
//! decides how fast (or whether, until `fetcher`'s silence rule drops it)
//! the join goes.

use std::collections::HashMap;

use agora_proto::v1 as pb;

use crate::transport::PeerId;

/// The offer to take among those at or above `min`, with a peer offering
/// it; None when none is.
pub fn best(
    offers: &HashMap<PeerId, pb::SnapshotOffer>,
    min: u64,
) -> Option<(PeerId, pb::SnapshotOffer)> {
    let usable = || offers.iter().filter(|(_, o)| o.height >= min);
    let backers = |o: &pb::SnapshotOffer| {
        usable()
            .filter(|(_, x)| x.height == o.height && x.manifest == o.manifest)
            .count()
    };
    usable()
        .max_by_key(|(p, o)| (backers(o), o.height, **p))
        .map(|(p, o)| (*p, o.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(height: u64, bits: u32) -> pb::SnapshotOffer {
        pb::SnapshotOffer {
            height,
            seed: vec![height as u8; 32],
            manifest: Some(pb::SnapshotManifest {
                prefix_bits: bits,
                chunks: Vec::new(),
            }),
        }
    }

    fn peer(b: u8) -> PeerId {
        PeerId([b; 32])
    }

    #[test]
    fn the_offer_most_peers_share_beats_a_newer_lone_one() {
        let offers = HashMap::from([
            (peer(1), offer(100, 2)),
            (peer(2), offer(100, 2)),
            (peer(3), offer(157, 2)),
            // Same height as the shared one, another manifest: not a backer.
            (peer(4), offer(100, 3)),
        ]);
        let (p, o) = best(&offers, 50).unwrap();
        assert_eq!((o.height, o.manifest), (100, offer(100, 2).manifest));
        assert_eq!(p, peer(2), "the highest peer id of the backers");
    }

    #[test]
    fn lone_offers_fall_back_to_the_highest_at_or_above_the_minimum() {
        let offers = HashMap::from([
            (peer(1), offer(100, 2)),
            (peer(2), offer(157, 2)),
            (peer(3), offer(40, 1)),
            (peer(4), offer(40, 1)),
        ]);
        assert_eq!(best(&offers, 50).unwrap().1.height, 157);
        assert_eq!(best(&offers, 200), None);
        assert_eq!(best(&HashMap::new(), 0), None);
    }
}
