//! A decided height: the engine already applied the block to its ledger
//! and hands over one [`CommitRecord`]; here it is written in one durable
//! transaction, the mempool is re-checked against the new state, the API
//! snapshot is published, peers hear our new height, and the next height
//! is scheduled `timeout_commit` later (late commit: slow precommits still
//! arrive and widen the certificate our next proposal carries). Blocks
//! applied by sync are written as one run (`flush_synced`, see `sync.rs`).

use agora_validator::Hash;
use agora_validator::engine::CommitRecord;
use agora_validator::ledger::TxOutcome as LedgerOutcome;
use agora_validator::ledger::recheck;
use prost::Message;
use tracing::info;

use super::requests::verified_checker;
use super::{RunError, Runner};
use crate::mempool::Changed;
use crate::metrics::Metrics;
use crate::storage::{CommittedBlock, TxOutcome, TxRecord};

impl Runner {
    /// Stores and publishes a decided height (see the module docs).
    pub(super) fn commit(&mut self, rec: CommitRecord) -> Result<(), RunError> {
        debug_assert_eq!(
            self.engine.tip_height(),
            rec.height,
            "the engine's ledger is at the record"
        );
        let recs = [rec];
        self.store(&recs)?;
        self.acknowledge(&recs)?;
        self.watch_lag(&recs[0]);
        Ok(())
    }

    /// The ahead check of our clock (`clock.rs`) takes the blocks another
    /// validator proposed and this node decided live in the round that
    /// proposed them: their lag at commit is a round's latency when our
    /// clock is right. Synced blocks never come here.
    fn watch_lag(&mut self, rec: &CommitRecord) {
        let Some(header) = rec.block.header.as_ref() else {
            return;
        };
        if header.proposal_round != rec.round || header.proposer_address == self.me.0.as_slice() {
            return;
        }
        let now = self.clock.now_ms();
        self.clock_watch
            .report_lag(rec.height, header.time_ms, now, &self.metrics);
    }

    /// Stores the synced heights applied since the last call in one durable
    /// transaction, then acknowledges them (see `sync.rs` for when).
    pub(super) fn flush_synced(&mut self) -> Result<(), RunError> {
        if self.synced.is_empty() {
            return Ok(());
        }
        let recs = std::mem::take(&mut self.synced);
        self.store(&recs)?;
        self.acknowledge(&recs)
    }

    /// After the records are durable, and only then: the mempool re-checked
    /// against the new state, metrics, our height announced, the gRPC
    /// snapshot published, the next height scheduled.
    fn acknowledge(&mut self, recs: &[CommitRecord]) -> Result<(), RunError> {
        let Some(last) = recs.last() else {
            return Ok(());
        };
        let h = last.height;
        // The receipts hold each transaction's hash, one per transaction
        // of the block: no need to encode and hash them again.
        let included: Vec<Hash> = recs
            .iter()
            .flat_map(|r| {
                debug_assert_eq!(r.result.receipts.len(), r.block.txs.len());
                r.result.receipts.iter().map(|t| t.hash)
            })
            .collect();
        // Only senders whose inputs the run changed are re-checked
        // (`ledger::recheck`): accounts are all a transfer's verdict reads.
        let changed = recheck::changed_accounts(recs.iter().flat_map(|r| &r.state_changes));
        let dropped = self.mempool.update(
            &included,
            Changed::Accounts(&changed),
            &verified_checker(self.engine.ledger()),
        );
        self.unpublish_pending(included.iter().chain(dropped.iter().map(|(h, _)| h)));
        self.publish_next_nonces();
        for (hash, reason) in dropped {
            self.shared.remember_rejection(hash, reason);
        }
        Metrics::set(&self.metrics.height, h);
        self.standing.update(self.engine.ledger(), h, &self.metrics);
        if let Some(stood) = self.stall.committed(std::time::Instant::now()) {
            super::stall::info_resumed(h, stood);
        }
        let mut pause = self.commit_delay;
        if let Some(header) = recs.last().and_then(|r| r.block.header.as_ref()) {
            let now = self.clock.now_ms();
            self.clock_watch
                .report(h, header.time_ms, now, &self.metrics);
            let ms = u64::try_from(self.commit_delay.as_millis()).unwrap_or(u64::MAX);
            let pause_ms = self.engine.start_pause_ms(ms, header.time_ms, now);
            pause = std::time::Duration::from_millis(pause_ms);
        }
        Metrics::set(&self.metrics.mempool_txs, self.mempool.len() as u64);
        Metrics::set(&self.metrics.mempool_bytes, self.mempool.bytes() as u64);
        for rec in recs {
            self.metrics
                .committed(rec.round.saturating_add(1), rec.block.evidence.len());
            info!(
                height = rec.height,
                round = rec.round,
                txs = rec.block.txs.len(),
                evidence = rec.block.evidence.len(),
                hash = %hex::encode(&rec.block_hash[..8]),
                "committed"
            );
        }
        self.update_peer_metrics();
        self.transport.set_height(h);
        self.transport.announce_height();
        self.next_start = Some(tokio::time::Instant::now() + pause);
        self.publish(recs);
        self.maybe_snapshot(h, false);
        self.prune_old_blocks(h)
    }

    /// Deletes heights below the kept window when due (`storage::prune`),
    /// after the commit, in a transaction of its own. A synced run may
    /// step over a multiple of `PRUNE_EVERY`; the next one due catches up.
    fn prune_old_blocks(&self, tip: u64) -> Result<(), RunError> {
        let Some(policy) = &self.prune else {
            return Ok(());
        };
        let deleted = self.storage.prune(policy, tip)?;
        if deleted > 0 {
            tracing::debug!(tip, deleted, "pruned old blocks");
        }
        Ok(())
    }

    /// FSYNC: one `Durability::Immediate` transaction (Storage::commit_blocks)
    /// holding, for each record, the block, certificate, the state leaves
    /// it changed (applied to `state_leaves` in order), seed,
    /// transaction outcomes, the validator-set change and the evidence-pool
    /// removals, and truncating the WAL up to the last one. A live commit
    /// is one record, durable before the next height starts; a run of
    /// synced blocks is one transaction for the run.
    fn store(&self, recs: &[CommitRecord]) -> Result<(), RunError> {
        let txs: Vec<_> = recs.iter().map(tx_records).collect();
        let certs: Vec<_> = recs.iter().map(|r| r.certificate.to_proto()).collect();
        let sets: Vec<_> = recs
            .iter()
            .map(|r| {
                r.validator_set_change
                    .as_ref()
                    .map(|(from, set)| (*from, set.to_proto().encode_to_vec()))
            })
            .collect();
        let run: Vec<CommittedBlock<'_>> = recs
            .iter()
            .enumerate()
            .map(|(i, rec)| CommittedBlock {
                block: &rec.block,
                certificate: &certs[i],
                state_changes: &rec.state_changes,
                seed: &rec.seed,
                txs: &txs[i],
                validator_set: sets[i].as_ref().map(|(h, b)| (*h, b.as_slice())),
                evidence_removed: &rec.evidence_removed,
            })
            .collect();
        self.storage.commit_blocks(&run)?;
        Ok(())
    }

    /// The post-commit snapshot the gRPC services read (brought up to the
    /// engine's ledger once for the whole run).
    fn publish(&self, recs: &[CommitRecord]) {
        let s = &self.shared;
        let Some(last) = recs.last() else { return };
        if let Ok(mut c) = s.set_changes.write() {
            for rec in recs {
                if let Some((from, set)) = &rec.validator_set_change {
                    c.insert(*from, set.clone());
                }
            }
        }
        if let Ok(mut l) = s.ledger.write() {
            // The gRPC copy follows with the run's leaf changes: O(changes),
            // where a fresh clone would copy the whole state every block.
            let leader = self.engine.ledger();
            let changes = recs.iter().map(|r| r.state_changes.as_slice());
            if !l.follow(changes, leader) {
                *l = leader.clone();
            }
        }
        if let Ok(mut l) = s.latest.write() {
            *l = (last.height, last.block_hash);
        }
        for rec in recs {
            let _ = s.commits.send(rec.height);
        }
    }
}

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
            // A plain "ok" is implied by an empty reason (most of a busy
            // block's transactions are transfers); anything more is kept.
            let reason = r.detail().unwrap_or_default().to_owned();
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
