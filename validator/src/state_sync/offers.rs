//! Which snapshot offer a joining node takes, and which it keeps at all
//! (a rule of the engine's, generic over the peer id; the join,
//! [`super::join`], gathers the offers and asks this which to take).
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
//!
//! Bound: one offer kept per connected peer, each checked by [`check`]
//! when it arrives: a manifest of at most 4,096 chunk summaries with
//! 32-byte roots, so at most [`MAX_OFFER_BYTES`] (330 KB) decoded (an
//! offer frame may be 4 MiB; one that is not of that shape is refused and
//! charged, not kept).

use std::collections::BTreeMap;

use agora_proto::v1 as pb;
use prost::Message;

use crate::crypto::{Hash, sha3_256};
use crate::ledger::merkle::chunks;

/// The most an offer kept by [`check`] holds in memory: per chunk summary
/// its struct, its 32-byte root on the heap and the allocator's rounding
/// (80 bytes), for at most `2^MAX_PREFIX_BITS` summaries. Counted per peer
/// in `node/src/memory.rs`.
pub const MAX_OFFER_BYTES: usize = (1 << chunks::MAX_PREFIX_BITS) * 80;

/// Why an offer is not kept (the peer is charged: no honest node sends it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The chain seed is not 32 bytes.
    #[error("an offer's seed is not 32 bytes")]
    Seed,
    /// A snapshot offered without its manifest.
    #[error("an offer without a manifest")]
    NoManifest,
    /// The manifest's shape is impossible.
    #[error(transparent)]
    Manifest(#[from] chunks::ChunkError),
}

/// Whether an offer may be kept: a 32-byte seed and a manifest of a
/// possible shape (its roots are checked once the anchor is verified).
pub fn check(o: &pb::SnapshotOffer) -> Result<(), OfferError> {
    if o.seed.len() != 32 {
        return Err(OfferError::Seed);
    }
    let m = o.manifest.as_ref().ok_or(OfferError::NoManifest)?;
    Ok(chunks::check_shape(m)?)
}

/// The offer to take among `offers` (peer, offer) at or above `min`, with
/// a peer offering it; None when none is.
pub fn best<'a, P: Copy + Ord + 'a>(
    offers: impl IntoIterator<Item = (&'a P, &'a pb::SnapshotOffer)>,
    min: u64,
) -> Option<(P, pb::SnapshotOffer)> {
    // Offers are grouped by height and manifest digest, each hashed once
    // (comparing manifests pairwise would cost peers² manifests).
    let usable: Vec<(P, &pb::SnapshotOffer, (u64, Hash))> = offers
        .into_iter()
        .filter(|(_, o)| o.height >= min)
        .map(|(p, o)| {
            let manifest = o.manifest.as_ref().map(Message::encode_to_vec);
            (*p, o, (o.height, sha3_256(&manifest.unwrap_or_default())))
        })
        .collect();
    let mut backers: BTreeMap<(u64, Hash), usize> = BTreeMap::new();
    for (_, _, group) in &usable {
        *backers.entry(*group).or_default() += 1;
    }
    usable
        .into_iter()
        .max_by_key(|(p, o, group)| (backers[group], o.height, *p))
        .map(|(p, o, _)| (p, o.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn offer(height: u64, bits: u32) -> pb::SnapshotOffer {
        let empty = pb::ChunkSummary {
            root: crate::ledger::merkle::proof::PLACEHOLDER.to_vec(),
            leaves: 0,
        };
        pb::SnapshotOffer {
            height,
            seed: vec![height as u8; 32],
            manifest: Some(pb::SnapshotManifest {
                prefix_bits: bits,
                chunks: vec![empty; 1 << bits],
            }),
        }
    }

    #[test]
    fn offers_of_an_impossible_shape_are_not_kept() {
        assert_eq!(check(&offer(100, 2)), Ok(()));
        assert_eq!(check(&pb::SnapshotOffer::default()), Err(OfferError::Seed));
        let mut short_seed = offer(100, 2);
        short_seed.seed.pop();
        let mut none = offer(100, 2);
        none.manifest = None;
        // A frame's worth of summaries past the 4,096 a manifest may hold.
        let mut huge = offer(100, 2);
        let m = huge.manifest.as_mut().unwrap();
        m.chunks = vec![m.chunks[0].clone(); 100_000];
        let mut long_root = offer(100, 2);
        long_root.manifest.as_mut().unwrap().chunks[1].root = vec![0; 1 << 20];
        for bad in [short_seed, none, huge, long_root] {
            assert!(check(&bad).is_err(), "{:?} kept", bad.seed.len());
        }
    }

    fn peer(b: u8) -> u8 {
        b
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
        assert_eq!(best(&HashMap::<u8, pb::SnapshotOffer>::new(), 0), None);
    }
}
