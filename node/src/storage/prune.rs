//! Block pruning (`storage.keep_blocks`): deleting the rows of old heights
//! — block, block-hash index entry, certificate, seed, and the transaction
//! index entries of the block's transactions — so that a long-running
//! node's store stays bounded.
//!
//! # What is never deleted, and why that is enough
//!
//! - The tip (latest height): a restart builds the engine's `Tip` from its
//!   block, certificate and seed (`runner/restore.rs`), and the tip's
//!   certificate is the last commit the next block carries. The state
//!   itself is `state_leaves` (the tip's only), untouched here.
//! - The last `unbonding_period + EVIDENCE_MARGIN` heights, whatever the
//!   configuration says ([`PrunePolicy::resolve`]). Evidence is accepted while
//!   `current − infraction < unbonding_period` (DESIGN §8); our own checks
//!   need only the validator set of the infraction height (ledger and
//!   `validator_sets`, never pruned), but whoever verifies a slash, checks
//!   a conflicting certificate or catches up after an outage shorter than
//!   the window needs the certified headers of those heights, and a node
//!   can only serve what it keeps. The margin covers pruning in batches,
//!   a peer's sync request in flight while the floor moves, and evidence
//!   gossiped a few heights late.
//! - Validator-set changes (`validator_sets`): tiny, and the set of any
//!   height is what an auditor or a light client walks from genesis.
//! - Evidence (`evidence`, `evidence_pool`): bounded by the double signers,
//!   and the pool still waits for inclusion.
//! - The WAL: it holds only the undecided height.
//!
//! The signing gate (`restore.rs::signed_above`) reads the certificates of
//! up to the last 10,000 heights and skips missing ones: with heights
//! pruned it sees fewer of our past signatures, but only ones far below
//! the tip, where nothing can be signed again.
//!
//! Heights are deleted lowest first, so the stored blocks are always one
//! run `lowest..=latest`: [`Storage::lowest_block_height`] is the floor
//! that block sync (`crate::sync`) and gRPC report for pruned heights.

use agora_proto::v1::Block;
use agora_validator::block::{header_hash, tx_hash};
use prost::Message;
use redb::{Durability, ReadableTable, ReadableTableMetadata};

use super::{BLOCK_HEIGHTS, BLOCKS, CERTIFICATES, SEEDS, Storage, StorageError, TXS, TxRecord};

/// Heights kept beyond the unbonding period, at least (see the module docs).
pub const EVIDENCE_MARGIN: u64 = 64;
/// Pruning runs when the tip is a multiple of this: one short write
/// transaction every so many heights instead of one per commit.
pub const PRUNE_EVERY: u64 = 16;
/// Most heights deleted by one pruning transaction, so that switching
/// pruning on for a long chain drains the backlog in short steps rather
/// than one transaction holding the consensus loop for seconds.
pub const MAX_PRUNED_PER_RUN: u64 = 1_024;

/// How many heights a node keeps, resolved against the chain's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    keep: u64,
}

/// What [`PrunePolicy::resolve`] made of the configured value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// `keep_blocks = 0`: every block is kept.
    KeepAll,
    /// The configured value stands.
    Keep(PrunePolicy),
    /// The configured value was below the floor and was raised to it.
    Raised {
        /// The policy in force.
        policy: PrunePolicy,
        /// What the configuration asked for.
        configured: u64,
    },
}

impl PrunePolicy {
    /// The policy for `keep_blocks` on a chain whose unbonding period is
    /// `unbonding_period`. A value below `unbonding_period +
    /// EVIDENCE_MARGIN` is raised to it (the caller logs a warning) rather
    /// than refused: the operator asked for "as few as possible", and
    /// keeping more is always safe.
    pub fn resolve(keep_blocks: u64, unbonding_period: u64) -> Resolved {
        if keep_blocks == 0 {
            return Resolved::KeepAll;
        }
        let floor = unbonding_period.saturating_add(EVIDENCE_MARGIN);
        if keep_blocks < floor {
            return Resolved::Raised {
                policy: Self { keep: floor },
                configured: keep_blocks,
            };
        }
        Resolved::Keep(Self { keep: keep_blocks })
    }

    /// The number of most recent heights kept (at least this many).
    pub fn keep(&self) -> u64 {
        self.keep
    }

    /// The lowest height to keep with `tip` stored, if pruning is due at
    /// `tip` (every [`PRUNE_EVERY`] heights) and anything lies below it.
    pub fn due(&self, tip: u64) -> Option<u64> {
        debug_assert!(self.keep >= EVIDENCE_MARGIN, "the tip is always kept");
        if !tip.is_multiple_of(PRUNE_EVERY) {
            return None;
        }
        let floor = tip.saturating_sub(self.keep) + 1;
        (floor > 1).then_some(floor)
    }
}

impl Storage {
    /// The lowest height whose block is stored (1 unless pruned; `None`
    /// before block 1).
    pub fn lowest_block_height(&self) -> Result<Option<u64>, StorageError> {
        self.read(|txn| Ok(txn.open_table(BLOCKS)?.first()?.map(|(k, _)| k.value())))
    }

    /// Number of stored blocks.
    pub fn block_count(&self) -> Result<u64, StorageError> {
        self.read(|txn| Ok(txn.open_table(BLOCKS)?.len()?))
    }

    /// Deletes every height below `floor` (at most [`MAX_PRUNED_PER_RUN`]
    /// of them, lowest first), never the latest; returns how many heights
    /// were deleted.
    ///
    /// NOT durable (`Durability::None`): it becomes durable with the next
    /// block commit's fsync. A prune lost in a crash only leaves rows the
    /// next prune deletes again; nothing relies on a height being gone,
    /// and heights are deleted lowest first in one atomic transaction, so
    /// the store is `lowest..=latest` whichever state survives.
    pub fn prune_blocks_below(&self, floor: u64) -> Result<u64, StorageError> {
        let Some(latest) = self.latest_height()? else {
            return Ok(0);
        };
        // The tip stays whatever the caller asks (restore needs it).
        let floor = floor.min(latest);
        let Some(lowest) = self.lowest_block_height()? else {
            return Ok(0);
        };
        let end = floor.min(lowest.saturating_add(MAX_PRUNED_PER_RUN));
        if end <= lowest {
            return Ok(0);
        }
        let deleted = self.write(Durability::None, |txn| {
            let mut blocks = txn.open_table(BLOCKS)?;
            let mut hashes = txn.open_table(BLOCK_HEIGHTS)?;
            let mut certs = txn.open_table(CERTIFICATES)?;
            let mut seeds = txn.open_table(SEEDS)?;
            let mut txs = txn.open_table(TXS)?;
            let mut deleted = 0;
            for h in lowest..end {
                let Some(raw) = blocks.remove(h)? else {
                    continue;
                };
                deleted += 1;
                certs.remove(h)?;
                seeds.remove(h)?;
                // Undecodable here means corrupt; the block row is gone
                // either way, and its index rows would only be orphans.
                let Ok(block) = Block::decode(raw.value()) else {
                    continue;
                };
                drop(raw);
                if let Some(header) = &block.header {
                    hashes.remove(header_hash(header).as_slice())?;
                }
                for tx in &block.txs {
                    let key = tx_hash(tx);
                    // Only the entry that points into this block.
                    let ours = txs
                        .get(key.as_slice())?
                        .and_then(|v| TxRecord::decode(v.value()).ok())
                        .is_some_and(|r| r.height == h);
                    if ours {
                        txs.remove(key.as_slice())?;
                    }
                }
            }
            drop(txs);
            super::journal::txs::drop_below(txn, end)?;
            Ok(deleted)
        })?;
        debug_assert!(
            self.block(latest)?.is_some(),
            "pruning never deletes the tip"
        );
        Ok(deleted)
    }

    /// Prunes as `policy` says with `tip` just stored; see
    /// [`Self::prune_blocks_below`]. Returns the heights deleted.
    pub fn prune(&self, policy: &PrunePolicy, tip: u64) -> Result<u64, StorageError> {
        match policy.due(tip) {
            Some(floor) => self.prune_blocks_below(floor),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_below_the_evidence_window_is_raised_and_zero_keeps_all() {
        assert_eq!(PrunePolicy::resolve(0, 100), Resolved::KeepAll);
        assert_eq!(
            PrunePolicy::resolve(10, 100),
            Resolved::Raised {
                policy: PrunePolicy { keep: 164 },
                configured: 10
            }
        );
        let Resolved::Keep(p) = PrunePolicy::resolve(1_000, 100) else {
            panic!("kept as configured")
        };
        assert_eq!(p.keep(), 1_000);
        assert_eq!(p.due(1_000), None, "not a multiple of PRUNE_EVERY");
        assert_eq!(p.due(992), None, "nothing below the window yet");
        assert_eq!(p.due(1_008), Some(9));
    }
}
