//! Validator sets at every change, so that an auditor can fetch the set of
//! any height long after the ledger's own window has moved on.

use super::{Storage, StorageError};
use redb::{ReadableTable, TableDefinition};

/// Key: first height the set is in effect; value: encoded `ValidatorSet`
/// message. Written only by [`Storage::commit_block`], in the transaction of
/// the block that computed the set.
pub(super) const VALIDATOR_SETS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("validator_sets");

impl Storage {
    /// Every recorded set change, by height.
    pub fn validator_sets(&self) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.read(|txn| {
            let t = match txn.open_table(VALIDATOR_SETS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            t.iter()?
                .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })
    }
}
