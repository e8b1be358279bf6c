//! Durable storage of a node in one redb file.
//!
//! Tables: blocks by height, block hash → height, commit certificates by
//! height, the ledger state of the tip as its tree leaves (`state_leaves`,
//! leaf key → value, see [`leaves`]),
//! evidence by hash (every piece this node accepted, for queries), the
//! engine's evidence pool by evidence id (what still waits for inclusion),
//! validator-set changes by the height they take effect, the transaction
//! index (hash → height and outcome), the journals that carry the last few
//! heights' state and index changes until they are folded into those two
//! tables ([`journal`]), and the write-ahead log of the
//! current height's consensus inputs; `meta` also says which chain (its
//! genesis file's hash) and which layout the store holds (`identity.rs`).
//! The signing state lives in its own
//! file ([`signing_file`]); a store written by an older node may still hold
//! it, and the runner moves it to the file once.
//!
//! Every block is kept unless `storage.keep_blocks` is set; then heights
//! below the last `keep_blocks` (never fewer than the evidence window) are
//! deleted every few commits ([`prune`], which says what is never deleted).
//!
//! # Where durability is promised, and how
//!
//! redb commits with `Durability::Immediate` write the data, fsync it, then
//! write and fsync the new root (its two-phase commit); after `commit()`
//! returns, the transaction survives a crash or power loss. A commit with
//! `Durability::None` is atomic but only becomes durable with the next
//! `Immediate` commit (redb orders commits, so an `Immediate` commit makes all
//! earlier ones durable too). Exactly three operations promise durability:
//!
//! 1. [`Storage::sync_wal`] — `Immediate`, writing the WAL records that
//!    wait in memory (`wal_log.rs`): it makes every earlier WAL append
//!    durable. The node calls it right before it writes the signing-state
//!    file ([`signing_file`]) of a proposal or a precommit
//!    (`SigningState::wal_first` says why not a prevote's); that file in
//!    turn is durable before a vote or proposal signed under it leaves the
//!    process (DESIGN §6), so our own messages and the inputs that led to
//!    them are on disk whenever such a signature is.
//! 2. [`Storage::commit_block`] — `Immediate`, one transaction holding the
//!    block, its certificate, the state leaves it changed (inserted or
//!    removed in `state_leaves`) and chain seed, the transaction index, and
//!    the truncation of the WAL for that height, so that a restart never
//!    sees a block without its state or a stale WAL for a decided height
//!    ([`Storage::commit_blocks`]: the same for a synced run, one fsync).
//! 3. [`Storage::wal_append`] with `durable = true` — `Immediate`. Inputs
//!    appended with `durable = false` wait in memory and become durable with
//!    the next of these three (a crash loses them either way, as it lost a
//!    non-durable commit); the driver asks for durability before it acts on
//!    an input in a way others can observe (in practice, the signing-state
//!    write does it).
//!
//! When the database file is created, its directory is fsynced as well, so
//! the file's directory entry itself survives a crash.

mod commit;
mod identity;
pub mod journal;
mod leaves;
pub mod prune;
mod records;
mod sets;
pub mod signing_doc;
pub mod signing_file;
pub mod signing_slots;
mod synced_state;
mod wal_log;

use std::fs::File;
use std::path::{Path, PathBuf};

use agora_proto::v1::{Block, CommitCertificate, Evidence};
use agora_validator::Hash;
use agora_validator::crypto::sha3_256;
use prost::Message;
use redb::{Builder, Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

pub use commit::CommittedBlock;
pub use identity::{Binding, STORE_FORMAT};
pub use prune::{PrunePolicy, Resolved as PruneResolved};
pub use records::{TxOutcome, TxRecord};
pub use synced_state::{SnapshotBase, TipLeaves, TipState};
pub(crate) use wal_log::WAL_PENDING_MAX;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCK_HEIGHTS: TableDefinition<&[u8], u64> = TableDefinition::new("block_heights");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
/// seed_h of DESIGN §5 by height: a restarted node needs seed_{h−1} to start height h.
const SEEDS: TableDefinition<u64, &[u8]> = TableDefinition::new("seeds");
/// Every piece of evidence this node accepted, by SHA3-256 of its encoding (queries).
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence");
/// The engine's evidence pool: evidence waiting for inclusion, by
/// `engine::evidence_pool::evidence_id`; entries leave with the block that
/// retires them (included, expired or moot).
const EVIDENCE_POOL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence_pool");
const TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("txs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Key: sequence number; value: height (8 bytes, big-endian) ‖ record.
const WAL: TableDefinition<u64, &[u8]> = TableDefinition::new("wal");

const META_LATEST: &str = "latest_height";
const META_SIGNING: &str = "signing_state";
/// Prefix of the META keys of [`Storage::set_flag`].
const META_FLAG: &str = "flag/";

/// Largest stored value accepted back from disk (guards against a corrupt length).
const MAX_VALUE: usize = 64 * 1024 * 1024;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// redb failed (I/O error, corruption it detected, ...).
    #[error("database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: Box<redb::Error>,
    },
    /// Creating the file or syncing its directory failed.
    #[error("database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored value does not decode.
    #[error(
        "database {path}: corrupt {what}: {detail}. Do NOT delete the database or the data directory (a wiped validator must resync and wait before it may sign again): stop the node, keep a copy of the data directory, and restore it from a backup or a trusted peer's copy"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// Why it is corrupt.
        detail: String,
    },
    /// The signing-state file could not be read, written or used.
    #[error(transparent)]
    SigningFile(#[from] signing_file::SigningFileError),
    /// The store keeps the ledger state the way older nodes did (whole
    /// snapshots per height in table `states`), which this node does not read.
    #[error(
        "database {path} was written by an older agora that stored whole state snapshots (table `states`); this version stores the state as leaves (table `state_leaves`) and cannot read it. Either keep running the older version, or stop the node, move this database file aside (do NOT delete or move `data/signing_state.json`, which keeps this validator from double signing) and start again: the node syncs the chain from its peers and signs again once its signing state allows"
    )]
    OldLayout {
        /// The database file.
        path: PathBuf,
    },
    /// Another process holds the database open.
    #[error(
        "database {path} is open in another process: is this node already running (a service, another terminal)? One home runs one node"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The store holds another chain than the one of the node's genesis
    /// file ([`Storage::bind_genesis`]).
    #[error(
        "database {path} {found}, but this node's genesis file hashes to {expected}: a store holds one chain. If the genesis file was replaced by mistake, put the right one back; if this node is to run the chain of this genesis file, stop it, move the database file aside (not `data/signing_state.json`, which keeps this validator from double signing) and start again: the node syncs that chain from its peers"
    )]
    OtherChain {
        /// The database file.
        path: PathBuf,
        /// What ties the store to another genesis.
        found: String,
        /// SHA3-256 of the node's genesis file, hex.
        expected: String,
    },
    /// The store was written by a newer node, in a layout this build does
    /// not know.
    #[error(
        "database {path} is in store format {found}, written by a newer agora; this build reads format {format}: run the newer version",
        format = identity::STORE_FORMAT
    )]
    NewerFormat {
        /// The database file.
        path: PathBuf,
        /// The format stamped in the store.
        found: u32,
    },
    /// The caller passed an inconsistent block (no header, cert for another height...).
    #[error("invalid input: {0}")]
    Invalid(String),
}

/// The node's database.
pub struct Storage {
    db: Database,
    path: PathBuf,
    /// WAL records appended but not yet written ([`wal_log`]).
    wal_pending: wal_log::WalPending,
}

impl Drop for Storage {
    /// Writes the WAL records still waiting (non-durable, as they would have
    /// been), so that a node stopped cleanly leaves its log complete.
    fn drop(&mut self) {
        if let Err(e) = self.write_pending_wal() {
            tracing::warn!(error = %e, "writing the last WAL records at shutdown");
        }
    }
}

/// redb's page cache: the pages read (evicted only past this) and the
/// pages written and not yet flushed (at most half of it). redb's default,
/// 1 GiB, was the largest term of the node's memory bound, and a node that
/// served a long chain's blocks to auditors kept every page it had read up
/// to it. The state lives in memory and a block is read once per request,
/// so what the cache is for, the B-trees' inner pages and one height's
/// writes, fits far less; the kernel's page cache still holds the file.
/// Counted in `memory::worst_case`.
pub const CACHE_BYTES: usize = 128 * 1024 * 1024;

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("path", &self.path).finish()
    }
}

impl Storage {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            create_fresh(&path)?;
        }
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StorageError::InUse { path: path.clone() }
                }
                e => db_err(&path, e),
            })?;
        leaves::check_layout(&db, &path)?;
        identity::check_format(&db, &path)?;
        let s = Self {
            db,
            path,
            wal_pending: wal_log::WalPending::default(),
        };
        // Create every table up front so that readers never meet a missing
        // one, and stamp the store's format in the same commit.
        s.write(Durability::Immediate, |txn| {
            txn.open_table(BLOCKS)?;
            txn.open_table(BLOCK_HEIGHTS)?;
            txn.open_table(CERTIFICATES)?;
            txn.open_table(leaves::STATE_LEAVES)?;
            txn.open_table(SEEDS)?;
            txn.open_table(EVIDENCE)?;
            txn.open_table(EVIDENCE_POOL)?;
            txn.open_table(sets::VALIDATOR_SETS)?;
            txn.open_table(TXS)?;
            txn.open_table(META)?;
            txn.open_table(WAL)?;
            journal::create(txn)?;
            identity::stamp_format(txn)
        })?;
        Ok(s)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError> {
        let run = || -> Result<T, redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e| db_err(&self.path, e))
    }

    /// [`Storage::write`] that first writes the WAL records waiting in
    /// memory into the same transaction ([`wal_log`]).
    fn write_with_wal<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError> {
        self.write(durability, |txn| {
            self.wal_pending.write_into(txn)?;
            f(txn)
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError> {
        let run = || -> Result<T, redb::Error> {
            let txn = self.db.begin_read()?;
            f(&txn)
        };
        run().map_err(|e| db_err(&self.path, e))
    }

    fn corrupt(&self, what: &'static str, detail: impl ToString) -> StorageError {
        StorageError::Corrupt {
            path: self.path.clone(),
            what,
            detail: detail.to_string(),
        }
    }

    /// The height of the latest stored block.
    pub fn latest_height(&self) -> Result<Option<u64>, StorageError> {
        let raw = self.read(|txn| {
            Ok(txn
                .open_table(META)?
                .get(META_LATEST)?
                .map(|v| v.value().to_vec()))
        })?;
        raw.map(|v| {
            <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("latest height", "not 8 bytes"))
        })
        .transpose()
    }

    fn get_bytes<K: redb::Key + 'static>(
        &self,
        table: TableDefinition<K, &'static [u8]>,
        key: impl std::borrow::Borrow<K::SelfType<'static>>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let v =
            self.read(|txn| Ok(txn.open_table(table)?.get(key)?.map(|v| v.value().to_vec())))?;
        if v.as_ref().is_some_and(|v| v.len() > MAX_VALUE) {
            return Err(self.corrupt("value", "too large"));
        }
        Ok(v)
    }

    /// The block at a height.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StorageError> {
        self.get_bytes(BLOCKS, height)?
            .map(|b| Block::decode(b.as_slice()).map_err(|e| self.corrupt("block", e)))
            .transpose()
    }

    /// The height of the block with this hash.
    pub fn height_of_block(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.read(|txn| {
            Ok(txn
                .open_table(BLOCK_HEIGHTS)?
                .get(hash.as_slice())?
                .map(|v| v.value()))
        })
    }

    /// The certificate of the block at a height.
    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StorageError> {
        self.get_bytes(CERTIFICATES, height)?
            .map(|b| {
                CommitCertificate::decode(b.as_slice()).map_err(|e| self.corrupt("certificate", e))
            })
            .transpose()
    }

    /// The chain seed after the block at a height.
    pub fn seed(&self, height: u64) -> Result<Option<Hash>, StorageError> {
        self.get_bytes(SEEDS, height)?
            .map(|b| {
                <Hash>::try_from(b.as_slice()).map_err(|_| self.corrupt("seed", "not 32 bytes"))
            })
            .transpose()
    }

    /// Stores evidence by its hash; returns false if it was already stored.
    /// Not durable by itself: evidence is re-gossiped and re-submittable.
    pub fn put_evidence(&self, ev: &Evidence) -> Result<bool, StorageError> {
        let bytes = ev.encode_to_vec();
        let h = sha3_256(&bytes);
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(EVIDENCE)?;
            if t.get(h.as_slice())?.is_some() {
                return Ok(false);
            }
            t.insert(h.as_slice(), bytes.as_slice())?;
            Ok(true)
        })
    }

    /// All stored evidence.
    pub fn evidence(&self) -> Result<Vec<Evidence>, StorageError> {
        let raw = self.read(|txn| {
            txn.open_table(EVIDENCE)?
                .iter()?
                .map(|r| r.map(|(_, v)| v.value().to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })?;
        raw.iter()
            .map(|b| Evidence::decode(b.as_slice()).map_err(|e| self.corrupt("evidence", e)))
            .collect()
    }

    /// Keeps an evidence-pool entry across restarts (and records the
    /// evidence for queries, like [`Storage::put_evidence`]); returns false
    /// if the pool already held it.
    ///
    /// FSYNC: `Durability::Immediate`. The engine hands out an entry only
    /// when it is new and verified, and the pool is bounded (at most four
    /// entries per offender, and only real double signers can be named),
    /// so these fsyncs are rare; in exchange an entry acknowledged to a
    /// gRPC client, or the only copy of what our own core detected, cannot
    /// be lost by a crash before the next block commit (DESIGN §8: evidence
    /// is kept until it is included or expires).
    pub fn put_pool_evidence(&self, id: &Hash, ev: &Evidence) -> Result<bool, StorageError> {
        let bytes = ev.encode_to_vec();
        let hash = sha3_256(&bytes);
        self.write(Durability::Immediate, |txn| {
            let mut pool = txn.open_table(EVIDENCE_POOL)?;
            if pool.get(id.as_slice())?.is_some() {
                return Ok(false);
            }
            pool.insert(id.as_slice(), bytes.as_slice())?;
            txn.open_table(EVIDENCE)?
                .insert(hash.as_slice(), bytes.as_slice())?;
            Ok(true)
        })
    }

    /// The evidence pool as persisted (restored into the engine at start).
    pub fn pool_evidence(&self) -> Result<Vec<Evidence>, StorageError> {
        let raw = self.read(|txn| {
            txn.open_table(EVIDENCE_POOL)?
                .iter()?
                .map(|r| r.map(|(_, v)| v.value().to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Into::into)
        })?;
        raw.iter()
            .map(|b| Evidence::decode(b.as_slice()).map_err(|e| self.corrupt("pool evidence", e)))
            .collect()
    }

    /// Sets a named flag durably (FSYNC: `Immediate`, so that something
    /// meant to happen at most once stays done across a crash).
    pub fn set_flag(&self, name: &str) -> Result<(), StorageError> {
        let key = format!("{META_FLAG}{name}");
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?
                .insert(key.as_str(), [1u8].as_slice())?;
            Ok(())
        })
    }

    /// Whether a flag was set with [`Storage::set_flag`].
    pub fn flag(&self, name: &str) -> Result<bool, StorageError> {
        let key = format!("{META_FLAG}{name}");
        self.read(|txn| Ok(txn.open_table(META)?.get(key.as_str())?.is_some()))
    }

    /// Records the outcome of a transaction outside a block commit (e.g. rejected).
    pub fn put_tx(&self, hash: &Hash, rec: &TxRecord) -> Result<(), StorageError> {
        self.write(Durability::None, |txn| {
            txn.open_table(TXS)?
                .insert(hash.as_slice(), rec.encode_to_vec().as_slice())?;
            Ok(())
        })
    }

    /// What is known about a transaction: its record in the newest
    /// transaction-index journal row holding it, else in `txs`.
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>, StorageError> {
        self.read(|txn| journal::txs::lookup(txn, hash))
    }

    /// Persists the consensus signing state in the store. Only stores of
    /// older nodes hold it (the node keeps it in [`signing_file`] now);
    /// kept for tests of the migration.
    ///
    /// FSYNC: `Immediate`.
    pub fn save_signing_state(&self, state: &[u8]) -> Result<(), StorageError> {
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?.insert(META_SIGNING, state)?;
            Ok(())
        })
    }

    /// The signing state an older node left in the store, if any.
    pub fn signing_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_bytes(META, META_SIGNING)
    }

    /// Deletes the store's signing state once it was moved to its file.
    ///
    /// FSYNC: `Immediate`, so that a later loss of the file cannot be
    /// masked by a stale copy here.
    pub fn remove_signing_state(&self) -> Result<(), StorageError> {
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?.remove(META_SIGNING)?;
            Ok(())
        })
    }
}

fn wal_height(v: &[u8]) -> Option<u64> {
    v.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StorageError {
    StorageError::Db {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

/// Creates an empty database at `path` so that a process killed part-way
/// (a node stopped the instant it started) never leaves a half-made file
/// there, which the next start could not open ("not a redb database"): it
/// is made under a temporary name, fsynced, renamed into place (atomic),
/// and the directory entry fsynced. A temporary file left by a crash is
/// replaced.
fn create_fresh(path: &Path) -> Result<(), StorageError> {
    let tmp = path.with_extension("redb.new");
    let io = |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    drop(Database::create(&tmp).map_err(|e| db_err(&tmp, e))?);
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_parent_dir(path).map_err(io)
}

/// fsyncs the directory containing `path`, making a newly created entry durable.
pub fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
