//! The ledger state of the stored tip as its tree leaves (`state.proto`):
//! table `state_leaves`, key → value, one row per leaf. Genesis writes every
//! leaf once ([`Storage::reset_state_leaves`]); each block then writes only
//! the leaves it changed, inside its own commit transaction
//! (`commit.rs`), as one row of the leaf journal that is folded into this
//! table every few heights ([`journal`]), so the bytes written per height
//! follow the block's changes, not the size of the state. A restart reads
//! them all back ([`Storage::state_leaves`]: this table with the journal
//! applied) into `Ledger::from_leaves`.
//!
//! Stores written before this table existed kept a whole snapshot per
//! height in table `states`; [`check_layout`] refuses them with what to do.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::{MAX_VALUE, Storage, StorageError, journal};

/// Leaf key (kind byte and fixed-width fields) → leaf value.
pub(super) const STATE_LEAVES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_leaves");

/// One stored leaf: key, value.
pub type Leaf = (Vec<u8>, Vec<u8>);

/// The table older nodes kept whole-state snapshots in, by height.
const LEGACY_STATES: &str = "states";

/// Refuses a store whose state is kept the old way (whole snapshots in
/// `states`, no `state_leaves`): reading it as empty would restart the
/// node from genesis on top of a chain.
pub(super) fn check_layout(
    db: &redb::Database,
    path: &std::path::Path,
) -> Result<(), StorageError> {
    let names = || -> Result<Vec<String>, redb::Error> {
        let txn = db.begin_read()?;
        Ok(txn.list_tables()?.map(|t| t.name().to_string()).collect())
    };
    let names = names().map_err(|e| super::db_err(path, e))?;
    let has = |n: &str| names.iter().any(|t| t == n);
    if has(LEGACY_STATES) && !has(STATE_LEAVES.name()) {
        return Err(StorageError::OldLayout {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

impl Storage {
    /// Every stored leaf (key, value), in key order: the state after the
    /// latest stored block, or the genesis state before block 1.
    pub fn state_leaves(&self) -> Result<Vec<Leaf>, StorageError> {
        let rows = self.read(read_tip_leaves)?;
        if rows.iter().any(|(k, v)| k.len() + v.len() > MAX_VALUE) {
            return Err(self.corrupt("state leaf", "too large"));
        }
        Ok(rows)
    }

    /// Replaces every stored leaf with `leaves`: the genesis state, written
    /// at the first start, before block 1 (refused once a block is stored:
    /// from then on only block commits change the leaves).
    ///
    /// FSYNC: `Durability::Immediate`, so block 1's changes always apply
    /// to a durable genesis state.
    pub fn reset_state_leaves(&self, leaves: &[Leaf]) -> Result<(), StorageError> {
        if let Some(h) = self.latest_height()? {
            return Err(StorageError::Invalid(format!(
                "the state leaves are set at genesis only; block {h} is stored"
            )));
        }
        self.write(Durability::Immediate, |txn| {
            journal::clear(txn)?;
            let mut t = txn.open_table(STATE_LEAVES)?;
            t.retain(|_, _| false)?;
            for (k, v) in leaves {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            Ok(())
        })
    }

    /// Number of leaves of the state after the stored tip.
    pub fn state_leaf_count(&self) -> Result<u64, StorageError> {
        Ok(self.state_leaves()?.len() as u64)
    }
}

/// The state after the stored tip, in key order: `state_leaves` with the
/// leaf journal's rows applied ([`journal::leaves::overlay`]).
pub(super) fn read_tip_leaves(txn: &redb::ReadTransaction) -> Result<Vec<Leaf>, redb::Error> {
    let merged = journal::leaves::merged(&txn.open_table(journal::leaves::LEAF_JOURNAL)?)?;
    let base = txn.open_table(STATE_LEAVES)?;
    let rows = base.iter()?.map(|r| {
        r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
            .map_err(Into::into)
    });
    journal::leaves::overlay(rows, merged)
}
