//! Validator sets at every change, so that an auditor can fetch the set of
//! any height long after the ledger's own window has moved on.

use super::{Storage, StorageError};
use redb::{Durability, ReadableTable, TableDefinition};

/// Key: first height the set is in effect; value: encoded `ValidatorSet` message.
const VALIDATOR_SETS: TableDefinition<u64, &[u8]> = TableDefinition::new("validator_sets");

impl Storage {
    /// Records the set in effect from `height` on. Written with
    /// `Durability::None`: the block commit that follows (Immediate) makes it
    /// durable in the same fsync.
    pub fn put_validator_set(&self, height: u64, encoded: &[u8]) -> Result<(), StorageError> {
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(VALIDATOR_SETS)?;
            t.insert(height, encoded)?;
            Ok(())
        })
    }

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
