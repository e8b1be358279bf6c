//! The blocks the height being decided holds, and when a past round's block
//! is let go.
//!
//! A block is held from the moment its proposal verifies (or this node
//! proposes it) because a rule may need its body: prevoting and deciding
//! (lines 22, 28, 36 and 49) and re-proposing the valid value (line 16).
//! Held for the whole height, the blocks grew with the rounds it passed:
//! two per round (the first verified proposal's and one conflicting one,
//! kept as evidence), each up to 8× a 4 MiB frame once decoded.
//!
//! Only line 49 needs a block of a round this node has left, when the
//! precommits of an earlier round reach a quorum after it moved on. So a
//! block last proposed more than [`PAST_ROUNDS_KEPT`] rounds before the
//! current one is released, unless it is the locked or the valid value
//! (which line 16 re-proposes). A late quorum for a released block is not
//! lost: the validators that precommitted it are locked on it, so they
//! still hold it and decide, and this node fetches the decided block and
//! its certificate by block sync; and a later proposal carrying the block
//! brings it back.

use crate::crypto::Hash;
use crate::types::Round;
use agora_proto::v1 as pb;
use std::collections::BTreeMap;

/// Rounds before the current one whose blocks stay held. One covers the
/// common late quorum: the last precommits of a round arriving just after
/// its precommit timeout moved this node on.
pub const PAST_ROUNDS_KEPT: Round = 1;

/// A held block and the last round it was proposed in.
#[derive(Debug)]
struct Held {
    block: pb::Block,
    last_round: Round,
}

/// The blocks of the height being decided, by header hash.
#[derive(Debug, Default)]
pub(super) struct HeldBlocks {
    by_hash: BTreeMap<Hash, Held>,
}

impl HeldBlocks {
    /// Holds `block` (hashing to `hash`) as proposed in `round`. A block
    /// already held keeps its body (the same header hash commits to the
    /// same body once checked) and takes the later round.
    pub(super) fn insert(&mut self, hash: Hash, block: pb::Block, round: Round) {
        let held = self.by_hash.entry(hash).or_insert(Held {
            block,
            last_round: round,
        });
        held.last_round = held.last_round.max(round);
    }

    pub(super) fn get(&self, hash: &Hash) -> Option<&pb::Block> {
        self.by_hash.get(hash).map(|h| &h.block)
    }

    pub(super) fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Releases the blocks last proposed before `current - PAST_ROUNDS_KEPT`
    /// except those in `keep` (the locked and valid values); returns their
    /// hashes.
    pub(super) fn release_before(&mut self, current: Round, keep: &[Hash]) -> Vec<Hash> {
        let oldest_kept = current.saturating_sub(PAST_ROUNDS_KEPT);
        let released: Vec<Hash> = self
            .by_hash
            .iter()
            .filter(|(h, held)| held.last_round < oldest_kept && !keep.contains(h))
            .map(|(h, _)| *h)
            .collect();
        for h in &released {
            self.by_hash.remove(h);
        }
        debug_assert!(
            self.by_hash
                .iter()
                .all(|(h, held)| held.last_round >= oldest_kept || keep.contains(h)),
            "a block older than the window stays only as the locked or valid value"
        );
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(tag: u8) -> pb::Block {
        pb::Block {
            header: Some(pb::Header {
                height: u64::from(tag),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_block_goes_once_its_last_round_leaves_the_window() {
        let mut held = HeldBlocks::default();
        let (a, b, locked) = ([1; 32], [2; 32], [3; 32]);
        held.insert(a, block(1), 0);
        held.insert(b, block(2), 0);
        held.insert(locked, block(3), 0);
        // Re-proposed in round 2: its window starts again.
        held.insert(b, block(2), 2);
        assert!(
            held.release_before(1, &[]).is_empty(),
            "round 0 is round 1's past round"
        );
        assert_eq!(held.release_before(3, &[locked]), vec![a]);
        assert!(held.contains(&b) && held.contains(&locked) && !held.contains(&a));
        assert_eq!(held.release_before(4, &[locked]), vec![b]);
        assert_eq!(
            held.get(&locked)
                .and_then(|b| b.header.as_ref())
                .map(|h| h.height),
            Some(3)
        );
    }
}
