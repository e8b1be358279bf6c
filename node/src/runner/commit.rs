//! A decided height: the engine already applied the block to its ledger
//! and hands over one [`CommitRecord`]; here it is written in one durable
//! transaction, the mempool is re-checked against the new state, the API
//! snapshot is published, peers hear our new height, and the next height
//! is scheduled `timeout_commit` later (late commit: slow precommits still
//! arrive and widen the certificate our next proposal carries).

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::Hash;
use agora_validator::block::tx_hash;
use agora_validator::engine::CommitRecord;
use agora_validator::ledger::TxOutcome as LedgerOutcome;
use prost::Message;
use tracing::info;

use super::requests::verified_checker;
use super::{RunError, Runner};
use crate::metrics::Metrics;
use crate::storage::{CommittedBlock, TxOutcome, TxRecord};

impl Runner {
    /// Stores and publishes a decided height (see the module docs).
    pub(super) fn commit(&mut self, rec: CommitRecord) -> Result<(), RunError> {
        let h = rec.height;
        debug_assert_eq!(
            self.engine.tip_height(),
            h,
            "the engine's ledger is at the record"
        );
        self.store(&rec)?;
        let included: Vec<Hash> = rec.block.txs.iter().map(tx_hash).collect();
        let dropped = self
            .mempool
            .update(&included, &verified_checker(self.engine.ledger()));
        for (hash, reason) in dropped {
            self.shared.remember_rejection(hash, reason);
        }
        Metrics::set(&self.metrics.height, h);
        Metrics::set(&self.metrics.mempool_txs, self.mempool.len() as u64);
        Metrics::set(&self.metrics.mempool_bytes, self.mempool.bytes() as u64);
        self.metrics
            .committed(rec.round.saturating_add(1), rec.block.evidence.len());
        self.update_peer_metrics();
        info!(
            height = h,
            round = rec.round,
            txs = rec.block.txs.len(),
            evidence = rec.block.evidence.len(),
            hash = %hex::encode(&rec.block_hash[..8]),
            "committed"
        );
        self.transport.set_height(h);
        self.transport.broadcast(&PeerMessage {
            kind: Some(Kind::Status(pb::StatusUpdate { latest_height: h })),
        });
        self.next_start = Some(tokio::time::Instant::now() + self.commit_delay);
        self.publish(&rec);
        self.prune_states(h)?;
        Ok(())
    }

    /// Drops state snapshots older than the last `keep_states`, every
    /// [`PRUNE_EVERY`] heights (so the store keeps at most `keep_states +
    /// PRUNE_EVERY` of them). Only the latest snapshot is ever read, to
    /// restart, and it is never dropped. Not fsynced on its own: a crash
    /// before the next durable commit brings old snapshots back, harmlessly.
    fn prune_states(&self, h: u64) -> Result<(), RunError> {
        if self.keep_states == 0 || !h.is_multiple_of(PRUNE_EVERY) || h <= self.keep_states {
            return Ok(());
        }
        debug_assert!(h + 1 - self.keep_states <= h, "the latest snapshot stays");
        self.storage.prune_states_below(h + 1 - self.keep_states)?;
        Ok(())
    }

    /// FSYNC: one `Durability::Immediate` transaction (Storage::commit_block)
    /// holding the block, certificate, state, seed, transaction outcomes,
    /// the validator-set change and the evidence-pool removals, and
    /// truncating the height's WAL. Durable before the next height starts.
    fn store(&self, rec: &CommitRecord) -> Result<(), RunError> {
        let txs = tx_records(rec);
        let cert = rec.certificate.to_proto();
        let set = rec
            .validator_set_change
            .as_ref()
            .map(|(from, set)| (*from, set.to_proto().encode_to_vec()));
        self.storage.commit_block(CommittedBlock {
            block: &rec.block,
            certificate: &cert,
            state: &rec.state,
            seed: &rec.seed,
            txs: &txs,
            validator_set: set.as_ref().map(|(h, b)| (*h, b.as_slice())),
            evidence_removed: &rec.evidence_removed,
        })?;
        Ok(())
    }

    /// The post-commit snapshot the gRPC services read.
    fn publish(&self, rec: &CommitRecord) {
        let s = &self.shared;
        if let Some((from, set)) = &rec.validator_set_change
            && let Ok(mut c) = s.set_changes.write()
        {
            c.insert(*from, set.clone());
        }
        if let Ok(mut l) = s.ledger.write() {
            *l = self.engine.ledger().clone();
        }
        if let Ok(mut l) = s.latest.write() {
            *l = (rec.height, rec.block_hash);
        }
        self.publish_pending();
        let _ = s.commits.send(rec.height);
    }
}

/// Heights between two prunings of old state snapshots.
pub(super) const PRUNE_EVERY: u64 = 16;

/// The transaction index entries of a committed block.
fn tx_records(rec: &CommitRecord) -> Vec<(Hash, TxRecord)> {
    rec.result
        .receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let outcome = match r.outcome {
                LedgerOutcome::Ok => TxOutcome::Committed,
                LedgerOutcome::Failed(_) => TxOutcome::Failed,
                LedgerOutcome::Rejected(_) => TxOutcome::Rejected,
            };
            let reason = if r.is_ok() {
                String::new()
            } else {
                r.log.clone()
            };
            let rec = TxRecord {
                height: rec.height,
                index: i as u32,
                outcome: outcome as i32,
                reason,
            };
            (r.hash, rec)
        })
        .collect()
}
