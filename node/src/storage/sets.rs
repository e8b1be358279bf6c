//! Validator sets at every change, so that an auditor can fetch the set of
//! any height long after the ledger's own window has moved on.

use std::collections::BTreeMap;

use super::{Storage, StorageError};
use agora_validator::ValidatorSet;
use prost::Message;
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

    /// The set in effect from each height where it changed: `genesis` from
    /// height 1, then every recorded change, decoded. The set of height `h`
    /// is the last entry at or below `h`.
    pub fn set_changes(
        &self,
        genesis: ValidatorSet,
    ) -> Result<BTreeMap<u64, ValidatorSet>, StorageError> {
        let mut sets = BTreeMap::from([(1, genesis)]);
        for (h, bytes) in self.validator_sets()? {
            let set = agora_proto::v1::ValidatorSet::decode(bytes.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|p| ValidatorSet::from_proto(&p).map_err(|e| e.to_string()))
                .map_err(|e| self.corrupt("validator set", format!("height {h}: {e}")))?;
            sets.insert(h, set);
        }
        Ok(sets)
    }
}
