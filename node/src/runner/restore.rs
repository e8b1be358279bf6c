//! Restoring the engine after a start or a crash: the ledger, the tip and
//! the evidence pool from storage (or genesis before block 1), the signing
//! state from its file (moved there from an older store once) and the
//! signing gate it implies, then the current height started and its WAL
//! records replayed.

use agora_validator::consensus::{
    ConsensusConfig, SigningGate, SigningState, TimeoutConfig, WaitReason,
};
use agora_validator::crypto::{ZERO_HASH, vrf};
use agora_validator::engine::{BlockLimits, EngineConfig, Restored, Tip};
use agora_validator::ledger::Ledger;
use agora_validator::{Address, PublicKey};
use agora_validator::{CommitCertificate, block::header_hash};
use tracing::{info, warn};

use super::{ExecError, RunError, Runner};
use crate::config;
use crate::genesis::LoadedGenesis;
use crate::storage::signing_file::SigningFile;
use crate::storage::{PrunePolicy, PruneResolved, Storage};
use crate::wal;

/// The ledger after the last stored block, from the stored state leaves;
/// the genesis ledger before block 1.
pub(crate) fn stored_ledger(
    storage: &Storage,
    genesis: &LoadedGenesis,
) -> Result<Ledger, RunError> {
    let bad = |m: String| RunError::Restore(m);
    let Some(latest) = storage.latest_height()? else {
        return Ledger::from_genesis(&genesis.genesis).map_err(|e| bad(e.to_string()));
    };
    let leaves = storage.state_leaves()?;
    if leaves.is_empty() {
        return Err(bad(format!(
            "blocks up to height {latest} are stored but no state leaves"
        )));
    }
    Ledger::from_leaves(leaves).map_err(|e| bad(format!("stored state leaves: {e}")))
}

/// What the engine needs from the store: `ledger` (the one
/// [`stored_ledger`] read, built once per start), the last stored block as
/// the tip, and the persisted evidence pool. Before block 1 the genesis
/// state's leaves are (re)written, so that block 1's changes apply to them.
pub(super) fn restored(
    storage: &Storage,
    genesis: &LoadedGenesis,
    ledger: Ledger,
) -> Result<Restored, RunError> {
    let bad = |m: String| RunError::Restore(m);
    let latest = storage.latest_height()?.unwrap_or(0);
    if latest == 0 {
        storage.reset_state_leaves(&ledger.leaves())?;
    }
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

/// `storage.keep_blocks` against the chain's unbonding period (see
/// `storage::prune`): None keeps every block; a value below the evidence
/// window is raised to it, with a warning.
pub(super) fn prune_policy(keep_blocks: u64, unbonding_period: u64) -> Option<PrunePolicy> {
    match PrunePolicy::resolve(keep_blocks, unbonding_period) {
        PruneResolved::KeepAll => None,
        PruneResolved::Keep(p) => {
            info!(
                keep_blocks = p.keep(),
                "pruning blocks older than the last keep_blocks heights"
            );
            Some(p)
        }
        PruneResolved::Raised { policy, configured } => {
            warn!(
                configured,
                keep_blocks = policy.keep(),
                unbonding_period,
                "storage.keep_blocks is below the evidence window (unbonding_period + {}); keeping {} heights instead",
                crate::storage::prune::EVIDENCE_MARGIN,
                policy.keep()
            );
            Some(policy)
        }
    }
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

/// The signing state persisted before the last stop, for the engine: the
/// file's, or, when there is no file yet, the one an older node kept in
/// the store, which is then moved to the file (written durably first,
/// removed from the store after, so a crash in between loses nothing).
pub fn restore_signing_state(
    storage: &Storage,
    file: &SigningFile,
) -> Result<Option<SigningState>, ExecError> {
    if let Some(s) = file.load().map_err(crate::storage::StorageError::from)? {
        return Ok(Some(s));
    }
    let Some(bytes) = storage.signing_state()? else {
        return Ok(None);
    };
    let s =
        SigningState::from_bytes(&bytes).map_err(|e| crate::storage::StorageError::Corrupt {
            path: storage.path().to_path_buf(),
            what: "signing state",
            detail: e.to_string(),
        })?;
    file.save(&s).map_err(crate::storage::StorageError::from)?;
    storage.remove_signing_state()?;
    info!(file = %file.path().display(), height = s.height, "moved the signing state from the database to its own file");
    Ok(Some(s))
}

/// Most stored certificates read at start to see whether our key signed
/// above our signing state (the rest is watched as blocks arrive).
const STALE_SCAN_HEIGHTS: u64 = 10_000;

/// The signing gate for what was restored (see
/// `agora_validator::consensus::signing_gate`):
///
/// - no state, no block: a fresh chain or a wiped validator; the first
///   peer status decides (a chain whose only validator is us opens at once:
///   there is nobody to hear from);
/// - no state but blocks: the state was lost; wait;
/// - a state older than stored certificates that carry our signature: the
///   state is stale (a backup, a copy); wait;
/// - otherwise open.
pub(super) fn signing_gate(
    storage: &Storage,
    genesis: &LoadedGenesis,
    restored: &Restored,
    state: Option<&SigningState>,
    key: &PublicKey,
    required: u64,
) -> Result<SigningGate, RunError> {
    let latest = storage.latest_height()?.unwrap_or(0);
    let me = Address::of(key);
    let gate = match state {
        None if latest == 0 => {
            // Alone holding a quorum (a one-validator chain, or one whose
            // others are too small to matter): no peer can tell the chain's
            // height, and no block can have been made without this key.
            let solo = restored.ledger.validator_set(1).is_some_and(|set| {
                set.get(&me)
                    .is_some_and(|v| 3 * u128::from(v.power) > 2 * u128::from(set.total_power()))
            });
            if solo {
                SigningGate::open(required)
            } else {
                SigningGate::unknown(required)
            }
        }
        None => SigningGate::waiting(required, WaitReason::MissingState),
        Some(s) => match signed_above(storage, genesis, &me, s.height, latest)? {
            Some(h) => SigningGate::waiting(
                required,
                WaitReason::StaleState {
                    signed: s.height,
                    observed: h,
                },
            ),
            None => SigningGate::open_on_state(required, s.height),
        },
    };
    Ok(gate)
}

/// The highest stored height above `signed` whose certificate carries our
/// signature (the last [`STALE_SCAN_HEIGHTS`] heights are read).
fn signed_above(
    storage: &Storage,
    genesis: &LoadedGenesis,
    me: &Address,
    signed: u64,
    latest: u64,
) -> Result<Option<u64>, RunError> {
    let from = signed.max(latest.saturating_sub(STALE_SCAN_HEIGHTS)) + 1;
    if from > latest {
        return Ok(None);
    }
    // The set of each height: the genesis set, then every stored change.
    let Some(genesis_set) = Ledger::from_genesis(&genesis.genesis)
        .ok()
        .and_then(|l| l.validator_set(1).cloned())
    else {
        return Ok(None);
    };
    let sets = storage.set_changes(genesis_set)?;
    for h in (from..=latest).rev() {
        let Some(cert) = storage.certificate(h)? else {
            continue;
        };
        let Some((_, set)) = sets.range(..=h).next_back() else {
            continue;
        };
        if set
            .index_of(me)
            .is_some_and(|i| agora_validator::certificate::bit(&cert.signers, i))
        {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// Logs the gate's state at start (one warn line when it holds signing back).
pub(super) fn announce_gate(gate: &SigningGate, file: &SigningFile) {
    use agora_validator::consensus::GateStatus;
    match gate.status() {
        GateStatus::Open => info!(file = %file.path().display(), "signing enabled"),
        GateStatus::Unknown => warn!(
            file = %file.path().display(),
            "signing paused: no signing state and no blocks; waiting for the first peer to tell whether the chain is new (height 0) or running"
        ),
        GateStatus::Waiting { reason, remaining } => warn!(
            file = %file.path().display(),
            remaining_heights = remaining,
            "signing paused: {reason}; following the chain without signing until {remaining} heights pass without any message of this key"
        ),
        GateStatus::Alarmed { .. } => {}
    }
}

impl Runner {
    /// Starts the first undecided height and replays its WAL records
    /// ([`agora_validator::engine::Engine::resume`]): the core rebuilds its
    /// vote sets, locks and round, and its double-sign guard (the restored
    /// signing state, advanced past any signature of ours the WAL holds)
    /// refuses to sign anything different from what it signed before the
    /// stop. The records are read before the start, which logs our own new
    /// template.
    pub(super) fn begin(&mut self) -> Result<(), RunError> {
        let h = self.engine.height();
        let replay = wal::replay_entries(&self.storage.wal_entries()?, h, self.storage.path())?;
        self.maybe_snapshot(self.engine.tip_height(), true);
        if !replay.is_empty() {
            info!(height = h, inputs = replay.len(), "replaying WAL");
        }
        self.next_start = None;
        let actions = self
            .engine
            .resume(replay, self.clock.now_ms(), &self.mempool)?;
        self.execute(actions)
    }

    /// Starts deciding the next height (nothing if the engine already did).
    pub(super) fn start_height(&mut self) -> Result<(), RunError> {
        self.next_start = None;
        let actions = self
            .engine
            .start_height(self.clock.now_ms(), &self.mempool)?;
        self.execute(actions)
    }
}
