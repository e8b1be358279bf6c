//! The node's driver of the engine ([`agora_validator::engine::Engine`]).
//!
//! The engine decides everything about blocks: templates, content rules,
//! sync acceptance, the evidence pool, what a commit writes. The runner
//! only moves bytes and time: it feeds the engine what arrives (peer
//! messages, fired timeouts, a tick every `engine::TICK_MS`, API requests,
//! WAL records after a restart) with the local clock, and executes the
//! [`Action`]s it returns, in order. One job per file:
//!
//! - `restore.rs` — the engine rebuilt from storage (or genesis), the
//!   signing state from its file and the signing gate it implies, then the
//!   current height started and its WAL replayed;
//! - `gate.rs` — the signing gate's state in the log and the metrics;
//! - `main_loop.rs` — the select loop and the dispatch of transport events;
//! - `execute.rs` — executing actions: the persist-before-send rule, WAL
//!   appends, timers, gossip, block requests, penalties;
//! - `commit.rs` — a decided height: its record written in one durable
//!   transaction, the mempool re-checked, the API snapshot published, our
//!   new height announced, the next height started `timeout_commit` later
//!   (the consensus steps are timed in `Runner::execute`, by
//!   [`crate::metrics::StepClock`]);
//! - `sync.rs` — serving block requests and feeding responses to the engine;
//! - `requests.rs` — API writes (transactions, evidence) and the admission
//!   of transactions checked by the verifier thread;
//! - `standing.rs` — this validator's standing in the ledger, told;
//! - `clock.rs` — the runner's clock, and a warning when it is behind the
//!   chain's;
//! - `stall.rs` — a warning when no block was committed for a while, with
//!   the voting power this node can hear;
//! - `testing.rs` — the `[testing]` switches (Byzantine behaviour on purpose).

mod clock;
mod commit;
mod execute;
mod gate;
mod main_loop;
mod requests;
mod restore;
mod snapshots;
mod stall;
mod standing;
mod sync;
mod testing;

pub use execute::{DurableStore, ExecError, Executed, Executor, Network, NodeStore};
pub use restore::restore_signing_state;
pub(crate) use restore::stored_ledger;
pub use testing::{DoubleSigner, forge_bodies};

use std::sync::Arc;
use std::time::Duration;

use agora_validator::engine::{Action, Engine, EngineError};
use agora_validator::ledger::DecodedTx;
use tokio::sync::mpsc;

use crate::api::Shared;
use crate::mempool::Mempool;
use crate::metrics::{Metrics, Phase, StepClock};
use crate::node::Node;
use crate::storage::Storage;
use crate::transport::{PeerId, Transport};
use crate::tx_verifier::{Checked, TxVerifier};

/// Why the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Executing an action failed (a failed signing-state write included).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The engine cannot go on.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The stored or genesis state is unusable.
    #[error("restoring the chain: {0}")]
    Restore(String),
    /// The WAL of the height being decided is corrupt.
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    /// The configured explorer could not start.
    #[error("explorer: {what}: {source}")]
    Explorer {
        /// What failed (binding its address, reading the genesis).
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The transaction verifier thread could not be started.
    #[error("starting the transaction verifier: {0}")]
    Verifier(std::io::Error),
    /// State sync could not fill the empty store.
    #[error(transparent)]
    StateSync(#[from] crate::state_sync::StateSyncError),
}

/// Transactions waiting for their signature check at most.
const VERIFY_QUEUE: usize = 4096;

/// The running driver.
pub struct Runner {
    engine: Engine<PeerId>,
    exec: Executor<NodeStore, Transport>,
    /// The signing gate's state as last reported (log and metrics).
    gate_seen: gate::Reported,
    /// This validator's standing in the ledger as last reported (log and
    /// metrics).
    standing: standing::Reported,
    storage: Arc<Storage>,
    transport: Transport,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    /// Pending transactions, kept decoded and verified (decode once); the
    /// engine reads it through `MempoolView`.
    mempool: Mempool<DecodedTx>,
    verifier: TxVerifier,
    checked: Option<mpsc::Receiver<Checked>>,
    timers: mpsc::Receiver<agora_validator::consensus::Timeout>,
    /// Admitted transactions waiting to be gossiped as one batch.
    tx_outbox: crate::tx_gossip::TxOutbox,
    /// When each validator was last handed the pending pool.
    handovers: crate::tx_gossip::Handovers,
    /// `testing.tamper_sync_bodies`.
    tamper: Option<testing::Tamper>,
    /// Block requests being served off the loop, and those waiting (see
    /// `sync::SERVE_TASKS`).
    serving: sync::ServeSlot,
    /// Block requests still to leave unanswered (`testing.drop_block_requests`).
    drop_block_requests: u32,
    /// `timeout_commit`: the pause between a commit and the next height.
    commit_delay: Duration,
    /// When the next height starts (set by a commit).
    next_start: Option<tokio::time::Instant>,
    /// Times the consensus steps from the engine's observed phases.
    steps: StepClock,
    /// Heights decided by sync, applied by the engine, not yet stored
    /// (see `sync.rs`: stored as one run before anything acknowledges them).
    synced: Vec<agora_validator::engine::CommitRecord>,
    /// The verdict of the certificate job running on a blocking thread
    /// (at most one; see `sync.rs`).
    certificate_job:
        Option<tokio::sync::oneshot::Receiver<agora_validator::engine::CertificateVerdict>>,
    /// `storage.keep_blocks` resolved (None: keep every block).
    prune: Option<crate::storage::PrunePolicy>,
    snapshots: crate::state_sync::Snapshots,
    snapshot_interval: u64,
    last_snapshot: u64,
    /// `testing.tamper_snapshot_chunks`.
    tamper_chunks: bool,
    /// `testing.withhold_snapshot_chunk`.
    withhold_chunk: bool,
    /// The engine's only notion of time (proposal `time_ms`, the drift
    /// check, sync timeouts).
    clock: clock::Clock,
    /// Whether that clock was last seen behind the chain's.
    clock_watch: clock::ClockWatch,
    /// When the last commit and the last stall warning were.
    stall: stall::StallWatch,
    /// This node's validator address (what its key would hold in a set).
    me: agora_validator::Address,
}

/// The engine as the store left it: the ledger restored (and replayed to
/// the stored tip), the signing state from its file, the signing gate; and
/// that file, for the executor to write.
fn restore_engine(
    node: &Node,
    ledger: agora_validator::ledger::Ledger,
) -> Result<(Engine<PeerId>, crate::storage::signing_file::SigningFile), RunError> {
    let storage = &node.storage;
    let restored = restore::restored(storage, &node.genesis, ledger)?;
    let file = crate::storage::signing_file::SigningFile::new(
        node.home.signing_state(),
        node.chain.clone(),
        node.key.public_key(),
    );
    let signing = restore_signing_state(storage, &file)?;
    let gate = restore::signing_gate(
        storage,
        &node.genesis,
        &restored,
        signing.as_ref(),
        &node.key.public_key(),
        node.config.consensus.double_sign_check_heights,
    )?;
    restore::announce_gate(&gate, &file);
    let engine = Engine::new(
        restore::engine_config(&node.config.consensus),
        Some(node.key.clone()),
        signing,
        restored,
        rand::random(),
    )
    .with_signing_gate(gate);
    Ok((engine, file))
}

/// The executor of the engine's actions over `node`'s store (with the
/// signing-state `file` restored alongside `engine`) and transport, with
/// the testing switches that act on what it sends.
fn executor(
    node: &Node,
    file: crate::storage::signing_file::SigningFile,
    engine: &Engine<PeerId>,
    timers: mpsc::Sender<agora_validator::consensus::Timeout>,
) -> Result<Executor<NodeStore, Transport>, RunError> {
    let mut exec = Executor::new(
        NodeStore::new(node.storage.clone(), file),
        node.transport.clone(),
        node.metrics.clone(),
        timers,
    )
    .with_restored_signing(engine.core().signing_state().as_ref());
    testing::warn_if_on(&node.config.testing);
    if let Some(d) = testing::double_signer(node)? {
        exec = exec.with_double_signer(d);
    }
    Ok(exec)
}

impl Runner {
    /// A runner over `node`'s store, transport and keys: the engine
    /// restored from storage (or genesis), its executor, the transaction
    /// verifier thread and the testing switches. `ledger` is the stored
    /// state ([`stored_ledger`]), read once per start and shared with the
    /// gRPC copy in `shared`.
    pub fn new(
        node: &Node,
        shared: Arc<Shared>,
        ledger: agora_validator::ledger::Ledger,
    ) -> Result<Self, RunError> {
        let storage = node.storage.clone();
        if node.config.storage.keep_states.is_some() {
            tracing::warn!(
                "storage.keep_states is obsolete and ignored: the store keeps one copy of the state (its leaves, updated by each block); remove it from config.toml"
            );
        }
        let (engine, file) = restore_engine(node, ledger)?;
        let prune = restore::prune_policy(
            node.config.storage.keep_blocks,
            engine.ledger().params().unbonding_period,
        );
        let gate_seen = gate::Reported::new(engine.signing_gate(), &node.metrics);
        let me = agora_validator::Address::of(&node.key.public_key());
        let standing = standing::Reported::new(engine.ledger(), me, &node.metrics);
        let (timer_tx, timers) = mpsc::channel(1024);
        let exec = executor(node, file, &engine, timer_tx)?;
        let (verifier, checked) =
            TxVerifier::start(node.chain.clone(), VERIFY_QUEUE).map_err(RunError::Verifier)?;
        Ok(Self {
            engine,
            exec,
            gate_seen,
            standing,
            storage,
            transport: node.transport.clone(),
            metrics: node.metrics.clone(),
            shared,
            mempool: Mempool::new(node.config.mempool),
            verifier,
            checked: Some(checked),
            timers,
            tx_outbox: Default::default(),
            handovers: Default::default(),
            tamper: node
                .config
                .testing
                .tamper_sync_bodies
                .then(testing::Tamper::default),
            serving: sync::ServeSlot::default(),
            drop_block_requests: node.config.testing.drop_block_requests,
            commit_delay: Duration::from_millis(node.config.consensus.timeout_commit_ms),
            next_start: None,
            prune,
            snapshots: crate::state_sync::Snapshots::default(),
            snapshot_interval: node.config.state_sync.snapshot_interval,
            last_snapshot: 0,
            tamper_chunks: node.config.testing.tamper_snapshot_chunks,
            withhold_chunk: node.config.testing.withhold_snapshot_chunk,
            steps: StepClock::default(),
            synced: Vec::new(),
            certificate_job: None,
            clock: clock::Clock::with_offset(node.config.testing.clock_offset_ms),
            clock_watch: clock::ClockWatch::new(node.config.consensus.max_clock_drift_ms),
            stall: stall::StallWatch::new(
                node.config.consensus.stall_warning_ms,
                std::time::Instant::now(),
            ),
            me,
        })
    }

    /// Executes the engine's actions in order. A commit is handled as soon
    /// as it comes, so everything after it sees the stored block.
    fn execute(&mut self, actions: Vec<Action<PeerId>>) -> Result<(), RunError> {
        self.observe_steps();
        for a in actions {
            if let Executed::Commit(record) = self.exec.execute(a)? {
                self.commit(*record)?;
            }
        }
        self.after_actions();
        Ok(())
    }

    /// What follows every batch of actions: votes the host signed itself,
    /// the signing gate and round metrics.
    fn after_actions(&mut self) {
        for v in self.exec.take_host_signed() {
            self.engine.record_own_vote(&v);
        }
        self.gate_seen
            .update(self.engine.signing_gate(), &self.metrics);
        let core = self.engine.core();
        Metrics::set(&self.metrics.round, u64::from(core.round()));
        Metrics::set(&self.metrics.votes_stored, core.stored_votes() as u64);
        self.metrics
            .set_certificates_verified(self.engine.certificates_verified());
    }

    /// Feeds the step clock the engine's phase right after it handled an
    /// input (every input's actions pass through [`Self::execute`]), before
    /// the actions run: a step ends when the engine leaves it, so the time
    /// to store a decided block counts in `commit`, not `precommit`.
    fn observe_steps(&mut self) {
        let phase = Phase::of(&self.engine);
        for (step, d) in self.steps.observe(phase, std::time::Instant::now()) {
            self.metrics.observe_step(step, d);
        }
    }
}
