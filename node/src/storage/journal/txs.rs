//! The transaction-index journal: table `tx_journal`, height → the
//! outcomes of that block's transactions, sorted by hash so that a lookup
//! is a binary search per row, with no decoding.
//!
//! Row: `count: u32`, then `count` entries of [`ENTRY`] bytes, sorted by
//! hash (`hash: 32 ‖ index: u32 ‖ outcome: u8 ‖ reason_start: u32 ‖
//! reason_len: u32`), then the reasons' UTF-8 bytes (`reason_start` counts
//! from the end of the entries). Integers big-endian.

use std::collections::BTreeMap;

use agora_validator::Hash;
use prost::Message;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::super::{TXS, TxRecord};
use super::{BadRow, Reader};

/// Height → that block's transaction outcomes.
pub(in crate::storage) const TX_JOURNAL: TableDefinition<u64, &[u8]> =
    TableDefinition::new("tx_journal");

/// Bytes of one fixed-width entry.
const ENTRY: usize = 32 + 4 + 1 + 4 + 4;

/// Encodes one block's transaction outcomes (all of height `height`) as its
/// journal row. A hash listed twice keeps its last record, as two inserts
/// into `txs` did.
pub(in crate::storage) fn encode(height: u64, txs: &[(Hash, TxRecord)]) -> Vec<u8> {
    let mut sorted: BTreeMap<&Hash, &TxRecord> = BTreeMap::new();
    for (h, rec) in txs {
        debug_assert_eq!(rec.height, height, "a block's records name its height");
        sorted.insert(h, rec);
    }
    let reasons: usize = sorted.values().map(|r| r.reason.len()).sum();
    let mut row = Vec::with_capacity(4 + sorted.len() * ENTRY + reasons);
    row.extend_from_slice(&len32(sorted.len()).to_be_bytes());
    let mut start = 0usize;
    for (h, rec) in &sorted {
        row.extend_from_slice(h.as_slice());
        row.extend_from_slice(&rec.index.to_be_bytes());
        row.push(u8::try_from(rec.outcome).unwrap_or(0));
        row.extend_from_slice(&len32(start).to_be_bytes());
        row.extend_from_slice(&len32(rec.reason.len()).to_be_bytes());
        start += rec.reason.len();
    }
    for rec in sorted.values() {
        row.extend_from_slice(rec.reason.as_bytes());
    }
    debug_assert_eq!(row.len(), 4 + sorted.len() * ENTRY + reasons);
    row
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a block's outcomes are smaller than 4 GiB")
}

/// A decoded row: its entries (sorted by hash) and reasons.
struct Row<'a> {
    height: u64,
    entries: &'a [u8],
    reasons: &'a [u8],
}

impl<'a> Row<'a> {
    fn parse(height: u64, row: &'a [u8]) -> Result<Self, BadRow> {
        let mut r = Reader::new(row, height);
        let count = r.u32()? as usize;
        let size = count
            .checked_mul(ENTRY)
            .ok_or_else(|| r.bad("entry count overflows"))?;
        let entries = r.take(size)?;
        Ok(Self {
            height,
            entries,
            reasons: r.rest,
        })
    }

    fn len(&self) -> usize {
        self.entries.len() / ENTRY
    }

    fn hash(&self, i: usize) -> &'a [u8] {
        &self.entries[i * ENTRY..i * ENTRY + 32]
    }

    fn record(&self, i: usize) -> Result<TxRecord, BadRow> {
        let mut r = Reader::new(&self.entries[i * ENTRY + 32..(i + 1) * ENTRY], self.height);
        let index = r.u32()?;
        let outcome = i32::from(r.u8()?);
        let start = r.u32()? as usize;
        let len = r.u32()? as usize;
        let bad = |what| BadRow {
            height: self.height,
            what,
        };
        let bytes = start
            .checked_add(len)
            .and_then(|end| self.reasons.get(start..end))
            .ok_or_else(|| bad("reason out of the row"))?;
        let reason = std::str::from_utf8(bytes).map_err(|_| bad("reason is not UTF-8"))?;
        Ok(TxRecord {
            height: self.height,
            index,
            outcome,
            reason: reason.to_string(),
        })
    }

    /// The record of `hash`, by binary search over the sorted entries.
    fn find(&self, hash: &[u8]) -> Result<Option<TxRecord>, BadRow> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.hash(mid).cmp(hash) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.record(mid).map(Some),
            }
        }
        Ok(None)
    }
}

/// The record of `hash`: from the highest journal row holding it, else
/// from `txs`. At most [`super::FOLD_HEIGHTS`] (plus one synced run) rows
/// are searched, each by binary search.
pub(in crate::storage) fn lookup(
    txn: &redb::ReadTransaction,
    hash: &Hash,
) -> Result<Option<TxRecord>, redb::Error> {
    let journal = txn.open_table(TX_JOURNAL)?;
    for row in journal.iter()?.rev() {
        let (h, v) = row?;
        if let Some(rec) = Row::parse(h.value(), v.value())?.find(hash)? {
            return Ok(Some(rec));
        }
    }
    let Some(v) = txn.open_table(TXS)?.get(hash.as_slice())? else {
        return Ok(None);
    };
    TxRecord::decode(v.value())
        .map(Some)
        .map_err(|e| redb::Error::Corrupted(format!("tx record: {e}")))
}

/// Writes every row's records to `txs` (later heights winning, in hash
/// order) and empties the journal.
pub(super) fn fold(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut journal = txn.open_table(TX_JOURNAL)?;
    let mut merged: BTreeMap<Vec<u8>, TxRecord> = BTreeMap::new();
    for row in journal.iter()? {
        let (h, v) = row?;
        let row = Row::parse(h.value(), v.value())?;
        for i in 0..row.len() {
            merged.insert(row.hash(i).to_vec(), row.record(i)?);
        }
    }
    journal.retain(|_, _| false)?;
    let mut txs = txn.open_table(TXS)?;
    for (h, rec) in merged {
        txs.insert(h.as_slice(), rec.encode_to_vec().as_slice())?;
    }
    Ok(())
}

/// Drops the rows of heights below `end` (pruned blocks: their records
/// must not be folded into `txs` afterwards).
pub(in crate::storage) fn drop_below(txn: &WriteTransaction, end: u64) -> Result<(), redb::Error> {
    txn.open_table(TX_JOURNAL)?.retain_in(..end, |_, _| false)?;
    Ok(())
}
