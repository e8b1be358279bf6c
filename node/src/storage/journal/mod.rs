//! The per-height journals: what a block changed in the state leaves and in
//! the transaction index, appended as ONE row per height and folded into
//! `state_leaves` and `txs` every [`FOLD_HEIGHTS`] heights (or
//! [`FOLD_BYTES`]), inside the commit transaction of the block that fills
//! them.
//!
//! # Why
//!
//! redb is a copy-on-write B-tree: changing one row rewrites its whole
//! 4 KiB leaf page and the path above it. A block of 600 transfers changed
//! about 1,200 state leaves and added 600 transaction-index entries, all at
//! random keys, so each commit rewrote nearly one page per change: 46 MB/s
//! written per validator at 5,000 tx/s, and a third of its CPU per height
//! (`agora-testnet bench --tx-rate 5000`: 8.4 heights/s, 36.5 without the
//! index rows, 15.7 without either). A journal row is one sequential insert
//! per height, and a fold writes each touched page once for all the heights
//! it folds, in key order.
//!
//! # Invariants
//!
//! - The state after the stored tip = `state_leaves` with every
//!   `leaf_journal` row applied in height order ([`leaves::overlay`]); a
//!   fold applies them and empties the journal in one transaction, so
//!   every crash point leaves that sum unchanged.
//! - A transaction's record is the one in the highest journal row holding
//!   it, else its `txs` row ([`txs::lookup`]); a fold writes the rows in
//!   height order, so a later height overrides as a direct write would.
//! - `journal_bytes` in META is the sum of both journals' row sizes: a
//!   restart reads at most [`FOLD_BYTES`] plus one commit's rows more than
//!   the folded tables, and a fold holds at most that in memory.

pub(super) mod leaves;
pub(super) mod txs;

use redb::{ReadableTable, WriteTransaction};

use super::META;

/// Heights a journal holds before it folds. Below the pruning margin
/// (`prune::EVIDENCE_MARGIN`), so pruning never deletes a block whose
/// index rows are still in the journal.
pub const FOLD_HEIGHTS: u64 = 32;
/// Journal bytes (both journals) at which they fold whatever the heights:
/// bounds what a restart reads beyond the folded tables and what a fold
/// holds in memory.
pub const FOLD_BYTES: u64 = 8 * 1024 * 1024;

const _: () = assert!(FOLD_HEIGHTS < super::prune::EVIDENCE_MARGIN);

/// META key of the journals' total row size (8 bytes, big-endian).
const META_JOURNAL_BYTES: &str = "journal_bytes";

/// Adds `added` row bytes to the journals' total and folds both journals
/// when they hold [`FOLD_HEIGHTS`] heights or [`FOLD_BYTES`]; in the
/// caller's (block commit) transaction. Returns whether it folded.
pub(super) fn account_and_fold(txn: &WriteTransaction, added: u64) -> Result<bool, redb::Error> {
    let mut meta = txn.open_table(META)?;
    let before = meta
        .get(META_JOURNAL_BYTES)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_be_bytes);
    let bytes = before.saturating_add(added);
    let heights = leaves::heights(txn)?;
    let fold = heights >= FOLD_HEIGHTS || bytes >= FOLD_BYTES;
    let left = if fold {
        leaves::fold(txn)?;
        txs::fold(txn)?;
        0
    } else {
        bytes
    };
    meta.insert(META_JOURNAL_BYTES, left.to_be_bytes().as_slice())?;
    Ok(fold)
}

/// Empties both journals (the state leaves are being replaced whole: at
/// genesis or by a state-sync snapshot, when no block is stored).
pub(super) fn clear(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(leaves::LEAF_JOURNAL)?.retain(|_, _| false)?;
    txn.open_table(txs::TX_JOURNAL)?.retain(|_, _| false)?;
    txn.open_table(META)?.remove(META_JOURNAL_BYTES)?;
    Ok(())
}

/// Creates both journal tables (at open, so readers never meet a missing one).
pub(super) fn create(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(leaves::LEAF_JOURNAL)?;
    txn.open_table(txs::TX_JOURNAL)?;
    Ok(())
}

/// A journal row that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("journal row of height {height}: {what}")]
pub struct BadRow {
    /// The row's height.
    pub height: u64,
    /// What is wrong with it.
    pub what: &'static str,
}

impl From<BadRow> for redb::Error {
    fn from(e: BadRow) -> Self {
        redb::Error::Corrupted(e.to_string())
    }
}

/// Reads a row's fields in order; every length is checked against what is left.
struct Reader<'a> {
    rest: &'a [u8],
    height: u64,
}

impl<'a> Reader<'a> {
    fn new(row: &'a [u8], height: u64) -> Self {
        Self { rest: row, height }
    }

    fn bad(&self, what: &'static str) -> BadRow {
        BadRow {
            height: self.height,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BadRow> {
        if self.rest.len() < n {
            return Err(self.bad("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, BadRow> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn u8(&mut self) -> Result<u8, BadRow> {
        Ok(self.take(1)?[0])
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests;
