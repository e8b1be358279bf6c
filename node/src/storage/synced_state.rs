//! The store's two sides of state sync: a consistent read of the state at
//! the stored tip for a node that serves snapshots, and the installation
//! of a verified snapshot as the base of an empty store for a node that
//! joins by state sync.

use agora_proto::v1::{Block, CommitCertificate};
use agora_validator::Hash;
use agora_validator::block::header_hash;
use redb::{Durability, ReadableDatabase};

use super::leaves::{Leaf, STATE_LEAVES};
use super::{
    BLOCK_HEIGHTS, BLOCKS, CERTIFICATES, META, META_LATEST, SEEDS, Storage, StorageError, sets,
};

/// The state after the stored tip, read from one redb read transaction:
/// commits that land while it is read do not change what it sees (redb's
/// MVCC), so a snapshot can be read off the consensus thread.
pub struct TipState {
    txn: redb::ReadTransaction,
    path: std::path::PathBuf,
}

/// What a [`TipState`] read: the tip's height and seed and every leaf.
#[derive(Debug)]
pub struct TipLeaves {
    /// Height of the stored tip (the state is the one after it).
    pub height: u64,
    /// The chain seed after the tip.
    pub seed: Hash,
    /// Every leaf, in key order.
    pub leaves: Vec<Leaf>,
}

impl TipState {
    /// Reads the tip height, its seed and every leaf (None before block 1).
    pub fn read(self) -> Result<Option<TipLeaves>, StorageError> {
        let run = || -> Result<Option<TipLeaves>, redb::Error> {
            let Some(height) = self
                .txn
                .open_table(META)?
                .get(META_LATEST)?
                .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
            else {
                return Ok(None);
            };
            let Some(seed) = self
                .txn
                .open_table(SEEDS)?
                .get(height)?
                .and_then(|v| v.value().try_into().ok())
            else {
                return Ok(None);
            };
            let leaves = super::leaves::read_tip_leaves(&self.txn)?;
            Ok(Some(TipLeaves {
                height,
                seed,
                leaves,
            }))
        };
        run().map_err(|e| super::db_err(&self.path, e))
    }
}

/// A verified snapshot to install as the base of an empty store: block
/// `height` (whose hash the next certified header names as its parent),
/// the certificate that commits it (the next block's `last_commit`), the
/// seed after it, the state after it, and the validator sets the state
/// holds for the heights after it.
#[derive(Debug)]
pub struct SnapshotBase<'a> {
    /// The block of the snapshot's height.
    pub block: &'a Block,
    /// The certificate that commits it, which the next block carries as `last_commit`.
    pub certificate: &'a CommitCertificate,
    /// The chain seed after it.
    pub seed: &'a Hash,
    /// The state after it, as leaves.
    pub leaves: &'a [Leaf],
    /// (first height, encoded `ValidatorSet`) for each set in effect after
    /// the block, so the store answers for them as if it had seen them made.
    pub validator_sets: &'a [(u64, Vec<u8>)],
}

impl Storage {
    /// A consistent view of the state at the stored tip (see [`TipState`]).
    pub fn tip_state(&self) -> Result<TipState, StorageError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| super::db_err(&self.path, e))?;
        Ok(TipState {
            txn,
            path: self.path.clone(),
        })
    }

    /// Installs a verified snapshot in an empty store: afterwards the store
    /// is the one of a node that pruned every block below `base.block`.
    /// Refused once any block is stored.
    ///
    /// FSYNC: `Durability::Immediate`, one transaction: after a crash the
    /// store is empty (state sync starts over) or holds the whole base.
    pub fn install_snapshot(&self, base: SnapshotBase<'_>) -> Result<(), StorageError> {
        if let Some(h) = self.latest_height()? {
            return Err(StorageError::Invalid(format!(
                "a snapshot is installed in an empty store only; block {h} is stored"
            )));
        }
        let header = base
            .block
            .header
            .as_ref()
            .ok_or_else(|| StorageError::Invalid("snapshot block without header".into()))?;
        let (height, hash) = (header.height, header_hash(header));
        if base.certificate.height != height || base.certificate.block_hash != hash {
            return Err(StorageError::Invalid(format!(
                "the snapshot's certificate is not for block {height}"
            )));
        }
        let block = prost::Message::encode_to_vec(base.block);
        let cert = prost::Message::encode_to_vec(base.certificate);
        self.write(Durability::Immediate, |txn| {
            txn.open_table(BLOCKS)?.insert(height, block.as_slice())?;
            txn.open_table(BLOCK_HEIGHTS)?
                .insert(hash.as_slice(), height)?;
            txn.open_table(CERTIFICATES)?
                .insert(height, cert.as_slice())?;
            txn.open_table(SEEDS)?
                .insert(height, base.seed.as_slice())?;
            {
                super::journal::clear(txn)?;
                let mut t = txn.open_table(STATE_LEAVES)?;
                t.retain(|_, _| false)?;
                for (k, v) in base.leaves {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
            }
            {
                let mut t = txn.open_table(sets::VALIDATOR_SETS)?;
                for (from, set) in base.validator_sets {
                    t.insert(*from, set.as_slice())?;
                }
            }
            txn.open_table(META)?
                .insert(META_LATEST, height.to_be_bytes().as_slice())?;
            Ok(())
        })
    }
}
