//! Writing decided blocks: each with everything stored with it (its
//! certificate, the leaves of the state it changed and its transactions'
//! outcomes as journal rows, the seed, the validator-set change, the
//! evidence-pool removals) and the WAL truncated past it, in ONE durable
//! transaction, which also folds the journals when they are due.

use agora_proto::v1::{Block, CommitCertificate};
use agora_validator::Hash;
use agora_validator::block::header_hash;
use agora_validator::ledger::LeafChange;
use prost::Message;
use redb::Durability;

use super::{
    BLOCK_HEIGHTS, BLOCKS, CERTIFICATES, EVIDENCE_POOL, META, META_LATEST, SEEDS, Storage,
    StorageError, TxRecord, WAL, journal, sets, wal_height,
};

/// A block decided by consensus, with everything stored with it atomically.
#[derive(Debug, Clone, Copy)]
pub struct CommittedBlock<'a> {
    /// The decided block; its header gives the height and hash it is stored under.
    pub block: &'a Block,
    /// The certificate that commits it (same height and block hash).
    pub certificate: &'a CommitCertificate,
    /// The state leaves the block changed (`None`: removed), as the ledger
    /// reports them (`CommitRecord::state_changes`). Applied to the stored
    /// leaves of the state before the block, they give the state after it.
    pub state_changes: &'a [LeafChange],
    /// The chain seed after this block (seed_height).
    pub seed: &'a Hash,
    /// The outcome of each transaction of the block, by hash.
    pub txs: &'a [(Hash, TxRecord)],
    /// The validator set this block computed, when it differs from the one
    /// before: (first height it is in effect, encoded `ValidatorSet`).
    pub validator_set: Option<(u64, &'a [u8])>,
    /// Evidence-pool entries the block retired (included, expired or moot).
    pub evidence_removed: &'a [Hash],
}

impl Storage {
    /// Stores a decided block, its certificate, the state leaves it
    /// changed, its transactions' outcomes, the validator-set change it
    /// made and the evidence-pool entries it retired in ONE durable
    /// transaction, and truncates the WAL up to its height.
    ///
    /// FSYNC: `Durability::Immediate`, once per height, at the commit of
    /// that one transaction (redb writes the pages, fsyncs, then writes and
    /// fsyncs the new root): after a `kill -9` or power loss the block and
    /// the state after it are both there or both not. The runner starts
    /// the next height only after this returned, so nothing signed for
    /// height h+1 can leave the node while block h could still be lost (a
    /// restart would otherwise rebuild height h from a truncated WAL).
    pub fn commit_block(&self, c: CommittedBlock<'_>) -> Result<(), StorageError> {
        self.commit_blocks(std::slice::from_ref(&c))
    }

    /// [`Self::commit_block`] for a run of consecutive decided blocks (block
    /// sync), each written exactly as `commit_block` writes it (their leaf
    /// changes applied in order), all in ONE durable transaction: after a
    /// crash either every block of the run is stored or none is, the store
    /// is always a prefix of the chain and `state_leaves` the state of its
    /// tip.
    ///
    /// FSYNC: `Durability::Immediate`, once per run instead of once per
    /// height (an fsync costs milliseconds here, more than executing an
    /// empty block). The caller acknowledges none of these heights (status
    /// to peers, gRPC snapshot) and signs nothing before this returned.
    pub fn commit_blocks(&self, run: &[CommittedBlock<'_>]) -> Result<(), StorageError> {
        let Some(last) = run.last() else {
            return Ok(());
        };
        // Each height above the one before it (the stored tip first), as
        // `commit_block` has always required.
        let mut above = self.latest_height()?;
        let mut encoded = Vec::with_capacity(run.len());
        for c in run {
            let (height, hash) = check_committed(c)?;
            if let Some(latest) = above
                && height <= latest
            {
                return Err(StorageError::Invalid(format!(
                    "height {height} is not above the latest stored height {latest}"
                )));
            }
            above = Some(height);
            let block = c.block.encode_to_vec();
            let cert = c.certificate.encode_to_vec();
            encoded.push((height, hash, block, cert));
        }
        let top = check_committed(last)?.0;
        // The waiting WAL records go in first, so that the truncation below
        // also removes those of the heights this run decides.
        self.write_with_wal(Durability::Immediate, |txn| {
            let mut journaled = 0u64;
            for (c, (height, hash, block, cert)) in run.iter().zip(&encoded) {
                journaled += write_committed(txn, c, *height, hash, block, cert)?;
            }
            journal::account_and_fold(txn, journaled)?;
            txn.open_table(META)?
                .insert(META_LATEST, top.to_be_bytes().as_slice())?;
            txn.open_table(WAL)?
                .retain(|_, v| wal_height(v).is_none_or(|h| h > top))?;
            Ok(())
        })
    }
}

/// The height and hash of a block to store, after checking its certificate
/// commits that block.
fn check_committed(c: &CommittedBlock<'_>) -> Result<(u64, Hash), StorageError> {
    let header = c
        .block
        .header
        .as_ref()
        .ok_or_else(|| StorageError::Invalid("block without header".into()))?;
    let height = header.height;
    let hash = header_hash(header);
    if c.certificate.height != height || c.certificate.block_hash != hash {
        return Err(StorageError::Invalid(format!(
            "certificate is for height {} block {}, block is height {height} hash {}",
            c.certificate.height,
            hex::encode(&c.certificate.block_hash),
            hex::encode(hash)
        )));
    }
    Ok((height, hash))
}

/// The rows of one committed block (see [`Storage::commit_blocks`]); its
/// leaf changes and transaction outcomes go to the journals (one row each,
/// see [`journal`]). Returns the journal bytes it added.
fn write_committed(
    txn: &redb::WriteTransaction,
    c: &CommittedBlock<'_>,
    height: u64,
    hash: &Hash,
    block: &[u8],
    cert: &[u8],
) -> Result<u64, redb::Error> {
    txn.open_table(BLOCKS)?.insert(height, block)?;
    txn.open_table(BLOCK_HEIGHTS)?
        .insert(hash.as_slice(), height)?;
    txn.open_table(CERTIFICATES)?.insert(height, cert)?;
    txn.open_table(SEEDS)?.insert(height, c.seed.as_slice())?;
    // The leaf row is written even when empty: the journal's length counts
    // the heights since the last fold. A block without transactions has no
    // index row (a lookup has nothing to find in it).
    let leaf_row = journal::leaves::encode(c.state_changes);
    txn.open_table(journal::leaves::LEAF_JOURNAL)?
        .insert(height, leaf_row.as_slice())?;
    let mut journaled = leaf_row.len();
    if !c.txs.is_empty() {
        let tx_row = journal::txs::encode(height, c.txs);
        txn.open_table(journal::txs::TX_JOURNAL)?
            .insert(height, tx_row.as_slice())?;
        journaled += tx_row.len();
    }
    if let Some((from, set)) = c.validator_set {
        txn.open_table(sets::VALIDATOR_SETS)?.insert(from, set)?;
    }
    let mut pool = txn.open_table(EVIDENCE_POOL)?;
    for id in c.evidence_removed {
        pool.remove(id.as_slice())?;
    }
    Ok(journaled as u64)
}
