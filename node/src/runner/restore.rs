//! Restoring the engine after a start or a crash: the ledger, the tip and
//! the evidence pool from storage (or genesis before block 1), the signing
//! state, then the current height started and its WAL records replayed.

use agora_validator::consensus::{ConsensusConfig, SigningState, TimeoutConfig};
use agora_validator::crypto::{ZERO_HASH, vrf};
use agora_validator::engine::{BlockLimits, EngineConfig, Restored, Tip};
use agora_validator::ledger::Ledger;
use agora_validator::{CommitCertificate, block::header_hash};
use tracing::info;

use super::{ExecError, RunError, Runner, now_ms};
use crate::config;
use crate::genesis::LoadedGenesis;
use crate::storage::Storage;
use crate::wal;

/// What the engine needs from the store: the ledger after the last stored
/// block, that block as the tip, and the persisted evidence pool.
pub(super) fn restored(storage: &Storage, genesis: &LoadedGenesis) -> Result<Restored, RunError> {
    let bad = |m: String| RunError::Restore(m);
    let ledger = match storage.latest_state()? {
        Some((_, bytes)) => Ledger::decode(&bytes).map_err(|e| bad(e.to_string()))?,
        None => Ledger::from_genesis(&genesis.genesis).map_err(|e| bad(e.to_string()))?,
    };
    let latest = storage.latest_height()?.unwrap_or(0);
    let tip = if latest == 0 {
        Tip {
            seed: vrf::genesis_seed(&genesis.file_hash),
            block_hash: ZERO_HASH,
            time_ms: 0,
            certificate: None,
        }
    } else {
        let missing = |what: &str| bad(format!("{what} of height {latest} missing"));
        let block = storage.block(latest)?.ok_or_else(|| missing("block"))?;
        let header = block.header.as_ref().ok_or_else(|| missing("header"))?;
        let cert = storage
            .certificate(latest)?
            .ok_or_else(|| missing("certificate"))?;
        let cert = CommitCertificate::from_proto(&cert)
            .map_err(|e| bad(format!("stored certificate {latest}: {e}")))?;
        Tip {
            seed: storage.seed(latest)?.ok_or_else(|| missing("seed"))?,
            block_hash: header_hash(header),
            time_ms: header.time_ms,
            certificate: Some(cert),
        }
    };
    if ledger.height() != latest {
        return Err(bad(format!(
            "stored state is at height {}, blocks at {latest}",
            ledger.height()
        )));
    }
    Ok(Restored {
        ledger,
        tip,
        evidence: storage.pool_evidence()?,
    })
}

/// The engine's configuration from the node's `[consensus]` section.
pub(super) fn engine_config(c: &config::ConsensusConfig) -> EngineConfig {
    EngineConfig {
        consensus: ConsensusConfig {
            timeouts: TimeoutConfig {
                propose_base_ms: c.timeout_propose_ms,
                propose_increment_ms: c.timeout_propose_delta_ms,
                prevote_base_ms: c.timeout_prevote_ms,
                prevote_increment_ms: c.timeout_prevote_delta_ms,
                precommit_base_ms: c.timeout_precommit_ms,
                precommit_increment_ms: c.timeout_precommit_delta_ms,
            },
            ..Default::default()
        },
        limits: BlockLimits {
            max_block_bytes: c.max_block_bytes,
            max_block_txs: c.max_block_txs,
            max_clock_drift_ms: c.max_clock_drift_ms,
        },
    }
}

/// The signing state persisted before the last stop, for the engine.
pub fn restore_signing_state(storage: &Storage) -> Result<Option<SigningState>, ExecError> {
    storage
        .signing_state()?
        .map(|b| {
            SigningState::from_bytes(&b).map_err(|e| {
                ExecError::Storage(crate::storage::StorageError::Corrupt {
                    path: storage.path().to_path_buf(),
                    what: "signing state",
                    detail: e.to_string(),
                })
            })
        })
        .transpose()
}

impl Runner {
    /// Starts the first undecided height and replays its WAL records: the
    /// core rebuilds its vote sets, locks and round, and its double-sign
    /// guard (restored from the signing state) refuses to sign anything
    /// different from what it signed before the stop. The records are read
    /// before the start, which logs our own new template.
    pub(super) fn begin(&mut self) -> Result<(), RunError> {
        let h = self.engine.height();
        let replay = wal::replay(&self.storage.wal_records()?, h)
            .map_err(|e| RunError::Restore(e.to_string()))?;
        self.start_height()?;
        if !replay.is_empty() {
            info!(height = h, inputs = replay.len(), "replaying WAL");
        }
        for input in replay {
            let actions = self.engine.replay(input, now_ms(), &self.mempool)?;
            self.execute(actions)?;
        }
        Ok(())
    }

    /// Starts deciding the next height (nothing if the engine already did).
    pub(super) fn start_height(&mut self) -> Result<(), RunError> {
        self.next_start = None;
        if self.engine.awaiting_start() {
            self.height_started = std::time::Instant::now();
        }
        let actions = self.engine.start_height(now_ms(), &self.mempool)?;
        self.execute(actions)
    }
}
