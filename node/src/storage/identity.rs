//! Which chain a store holds, and the layout it is written in: stamped in
//! `META` the first time, checked at every start.
//!
//! Why the chain: a store is one chain's history, and nothing else ties it
//! to the genesis file beside it. A node started on the store of another
//! genesis (a testnet generated again under the same chain id, a genesis
//! file replaced by mistake) restored that chain's state, served its blocks
//! and was banned by every honest peer as a sender of bad blocks, while its
//! own log said "node started … signing enabled" and nothing about why.
//! CometBFT refuses to start the same way when the genesis document's hash
//! in its store is not the loaded one's.
//!
//! Why the layout: a store written by a newer node is refused with a
//! message rather than misread; a future layout change bumps
//! [`STORE_FORMAT`] and migrates what is older.

use agora_validator::Hash;
use agora_validator::crypto::bls::SIGNATURE_LEN;
use agora_validator::crypto::vrf;
use redb::{Durability, ReadableDatabase, ReadableTable};

use super::{META, Storage, StorageError};

/// The layout this build writes and reads.
///
/// - 1: blocks, state leaves and the transaction index written per height.
/// - 2: the state leaves and the transaction index reach their tables
///   through the per-height journals (`journal`). A format-1 store is a
///   format-2 store with empty journals, so it is stamped 2 at open; a
///   format-1 node then refuses it rather than read leaves without the
///   journal.
pub const STORE_FORMAT: u32 = 2;

const META_FORMAT: &str = "store_format";
const META_GENESIS: &str = "genesis_hash";

/// How [`Storage::bind_genesis`] found the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The store was stamped with this genesis before.
    Matched,
    /// The store had no stamp and is stamped now: it was empty, or it was
    /// written by an older node and its block 1 follows from this genesis.
    Stamped,
    /// Written by an older node without block 1 (pruned, or restored by
    /// state sync), so nothing ties it to a genesis; stamped with this one.
    StampedUnchecked,
}

/// Before `Storage::open` writes anything: refuses a store of a newer
/// format (a store without one is new or older, and gets
/// [`stamp_format`]).
pub(super) fn check_format(
    db: &redb::Database,
    path: &std::path::Path,
) -> Result<(), StorageError> {
    let read = || -> Result<Option<Vec<u8>>, redb::Error> {
        let txn = db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(meta.get(META_FORMAT)?.map(|v| v.value().to_vec()))
    };
    let Some(found) = read().map_err(|e| super::db_err(path, e))? else {
        return Ok(());
    };
    let found = <[u8; 4]>::try_from(found.as_slice())
        .map(u32::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            path: path.to_path_buf(),
            what: "store format",
            detail: format!("{} bytes, not 4", found.len()),
        })?;
    if found > STORE_FORMAT {
        return Err(StorageError::NewerFormat {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(())
}

/// In `Storage::open`'s first commit: stamps [`STORE_FORMAT`] where no
/// format or an older one is stamped ([`check_format`] refused newer ones;
/// every older format reads as this one, see [`STORE_FORMAT`]).
pub(super) fn stamp_format(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    let current = STORE_FORMAT.to_be_bytes();
    let stamped = meta.get(META_FORMAT)?.is_some_and(|v| v.value() == current);
    if !stamped {
        meta.insert(META_FORMAT, current.as_slice())?;
    }
    Ok(())
}

impl Storage {
    /// Ties the store to the genesis file whose SHA3-256 is `genesis_hash`:
    /// refuses a store of another genesis ([`StorageError::OtherChain`]),
    /// stamps one that has no stamp yet.
    ///
    /// FSYNC: `Immediate` when it stamps (once in a store's life), so a
    /// store that holds blocks is never without its stamp after a crash.
    pub fn bind_genesis(&self, genesis_hash: &Hash) -> Result<Binding, StorageError> {
        let stamped = self.get_bytes(META, META_GENESIS)?;
        if let Some(stamped) = stamped {
            let stamped = <Hash>::try_from(stamped.as_slice())
                .map_err(|_| self.corrupt("genesis stamp", "not 32 bytes"))?;
            if stamped != *genesis_hash {
                return Err(self.other_chain(
                    format!(
                        "was made from a genesis file hashing to {}",
                        hex::encode(stamped)
                    ),
                    genesis_hash,
                ));
            }
            return Ok(Binding::Matched);
        }
        let binding = self.check_unstamped(genesis_hash)?;
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?
                .insert(META_GENESIS, genesis_hash.as_slice())?;
            Ok(())
        })?;
        Ok(binding)
    }

    /// A store without a stamp: empty, or written by an older node. Its
    /// block 1, when kept, follows from one genesis only: seed_1 (DESIGN §5)
    /// is SHA3 of the genesis seed, itself SHA3 of the genesis file's hash,
    /// and block 1's VRF output.
    fn check_unstamped(&self, genesis_hash: &Hash) -> Result<Binding, StorageError> {
        if self.latest_height()?.is_none() {
            return Ok(Binding::Stamped);
        }
        let (Some(block), Some(seed)) = (self.block(1)?, self.seed(1)?) else {
            return Ok(Binding::StampedUnchecked);
        };
        let proof = block
            .header
            .as_ref()
            .and_then(|h| <[u8; SIGNATURE_LEN]>::try_from(h.vrf_proof.as_slice()).ok())
            .ok_or_else(|| self.corrupt("block 1", "no VRF proof of a signature's length"))?;
        let expected = vrf::next_seed(
            &vrf::genesis_seed(genesis_hash),
            &vrf::output_of_bytes(&proof),
        );
        if seed != expected {
            return Err(self.other_chain(
                "holds a block 1 that does not follow from this genesis (its seed differs)".into(),
                genesis_hash,
            ));
        }
        Ok(Binding::Stamped)
    }

    fn other_chain(&self, found: String, genesis_hash: &Hash) -> StorageError {
        StorageError::OtherChain {
            path: self.path.clone(),
            found,
            expected: hex::encode(genesis_hash),
        }
    }
}
