//! The leaf journal: table `leaf_journal`, height → the state leaves that
//! block changed, in the ledger's order (`CommitRecord::state_changes`).
//!
//! Row: for each change, `key_len: u32 ‖ key ‖ present: u8` and, when
//! present is 1, `value_len: u32 ‖ value` (lengths big-endian). Present 0
//! removes the leaf.

use std::collections::BTreeMap;

use agora_validator::ledger::LeafChange;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::super::leaves::{Leaf, STATE_LEAVES};
use super::{BadRow, Reader};

/// Height → that block's encoded leaf changes.
pub(in crate::storage) const LEAF_JOURNAL: TableDefinition<u64, &[u8]> =
    TableDefinition::new("leaf_journal");

/// The changes of many heights merged, later heights winning: key → value,
/// or `None` for a removed leaf.
pub(in crate::storage) type Merged = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Encodes one block's changes as its journal row.
pub(in crate::storage) fn encode(changes: &[LeafChange]) -> Vec<u8> {
    let size = changes
        .iter()
        .map(|(k, v)| 5 + k.len() + v.as_ref().map_or(0, |v| 4 + v.len()))
        .sum();
    let mut row = Vec::with_capacity(size);
    for (k, v) in changes {
        row.extend_from_slice(&len32(k.len()).to_be_bytes());
        row.extend_from_slice(k);
        match v {
            Some(v) => {
                row.push(1);
                row.extend_from_slice(&len32(v.len()).to_be_bytes());
                row.extend_from_slice(v);
            }
            None => row.push(0),
        }
    }
    debug_assert_eq!(row.len(), size);
    row
}

/// A leaf key or value length as stored; leaves are far below 4 GiB
/// (`MAX_VALUE` bounds what is read back).
fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a state leaf is smaller than 4 GiB")
}

/// Applies a row's changes to `merged`, in order.
pub(in crate::storage) fn merge_row(
    merged: &mut Merged,
    height: u64,
    row: &[u8],
) -> Result<(), BadRow> {
    let mut r = Reader::new(row, height);
    while !r.is_empty() {
        let klen = r.u32()? as usize;
        let key = r.take(klen)?.to_vec();
        let value = match r.u8()? {
            0 => None,
            1 => {
                let vlen = r.u32()? as usize;
                Some(r.take(vlen)?.to_vec())
            }
            _ => return Err(r.bad("a change is neither set nor removed")),
        };
        merged.insert(key, value);
    }
    Ok(())
}

/// Every journal row merged, in height order.
pub(in crate::storage) fn merged(
    journal: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Merged, redb::Error> {
    let mut merged = Merged::new();
    for row in journal.iter()? {
        let (h, v) = row?;
        merge_row(&mut merged, h.value(), v.value())?;
    }
    Ok(merged)
}

/// The stored leaves (`base`, in key order) with `merged` applied: the
/// state after the stored tip, in key order.
pub(in crate::storage) fn overlay(
    base: impl Iterator<Item = Result<Leaf, redb::Error>>,
    merged: Merged,
) -> Result<Vec<Leaf>, redb::Error> {
    let mut out = Vec::new();
    let mut changes = merged.into_iter().peekable();
    for leaf in base {
        let (k, v) = leaf?;
        // Changes to keys below this stored one: new leaves (or removals
        // of leaves that were never stored, which change nothing).
        while let Some((ck, _)) = changes.peek()
            && *ck < k
        {
            let (ck, cv) = changes.next().expect("peeked");
            out.extend(cv.map(|cv| (ck, cv)));
        }
        match changes.next_if(|(ck, _)| *ck == k) {
            Some((_, Some(cv))) => out.push((k, cv)),
            Some((_, None)) => {}
            None => out.push((k, v)),
        }
    }
    out.extend(changes.filter_map(|(k, v)| v.map(|v| (k, v))));
    debug_assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "keys in order");
    Ok(out)
}

/// Heights the journal holds.
pub(super) fn heights(txn: &WriteTransaction) -> Result<u64, redb::Error> {
    Ok(txn.open_table(LEAF_JOURNAL)?.len()?)
}

/// Applies every row to `state_leaves`, in key order, and empties the journal.
pub(super) fn fold(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut journal = txn.open_table(LEAF_JOURNAL)?;
    let merged = merged(&journal)?;
    journal.retain(|_, _| false)?;
    let mut leaves = txn.open_table(STATE_LEAVES)?;
    for (k, v) in merged {
        match v {
            Some(v) => {
                leaves.insert(k.as_slice(), v.as_slice())?;
            }
            None => {
                leaves.remove(k.as_slice())?;
            }
        }
    }
    Ok(())
}
