//! Applying a decided block: the ledger executes it and the engine gathers
//! the one record the host writes durably.

use super::actions::CommitRecord;
use super::block_rules::{MempoolView, Tip};
use super::{Engine, EngineError};
use crate::consensus::Decision;
use crate::crypto::sha3_256_parts;
use crate::ledger::{BlockInfo, KnownTxs};

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// Executes `d` on the ledger (transactions the mempool view holds are
    /// not decoded or verified again), prunes the evidence pool, moves the
    /// tip and returns what must be stored.
    pub(super) fn commit(
        &mut self,
        d: Decision,
        mempool: &dyn MempoolView,
    ) -> Result<CommitRecord, EngineError> {
        let h = d.height;
        debug_assert_eq!(h, self.height(), "the core decides the height we started");
        // Batch-verification scalars: secret and different per height. Under
        // ZIP-215 the verdicts never depend on them.
        let batch_seed =
            sha3_256_parts(&[b"agora-engine-batch", &self.entropy[..], &h.to_be_bytes()]);
        let mut result = self
            .ledger
            .apply_block_with_decoded(
                h,
                &BlockInfo::of_block(&d.block),
                &d.block.txs,
                &d.block.evidence,
                &batch_seed,
                KnownTxs {
                    hashes: self.bodies.tx_hashes(&d.block_hash),
                    decoded: &|hash| mempool.decoded(hash),
                },
            )
            .map_err(|e| EngineError::Apply {
                height: h,
                reason: e.to_string(),
            })?;
        let validator_set_change = match (
            self.ledger.validator_set(h + 1),
            self.ledger.validator_set(h + 2),
        ) {
            (prev, Some(next)) if prev.map(|p| p.hash()) != Some(next.hash()) => {
                Some((h + 2, next.clone()))
            }
            _ => None,
        };
        let evidence_removed = self.pool.on_commit(&self.ledger, &d.block.evidence);
        if let Some(set) = self.ledger.validator_set(h) {
            self.late.reset(&d.certificate, set);
        }
        self.tip = Tip {
            seed: d.seed,
            block_hash: d.block_hash,
            time_ms: d.block.header.as_ref().map_or(0, |hd| hd.time_ms),
            certificate: Some(d.certificate.clone()),
        };
        self.started = false;
        self.bodies.clear();
        Ok(CommitRecord {
            height: h,
            round: d.round,
            app_hash: result.end.app_hash,
            // Moved, not copied: the record carries them once.
            state_changes: std::mem::take(&mut result.end.state_changes),
            block: d.block,
            block_hash: d.block_hash,
            certificate: d.certificate,
            seed: d.seed,
            result,
            validator_set_change,
            evidence_removed,
        })
    }
}
