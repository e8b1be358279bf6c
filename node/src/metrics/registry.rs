//! [`Metrics`]: every value the node exports, in atomics shared between
//! the runner, the transport, the gRPC server and the `/metrics` server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_validator::engine::CertificatesVerified;

use super::histogram::{Histogram, Rounds, StepSeconds};
use super::labels::{
    BUDGET_NAMES, BudgetKind, CERTIFICATE_SOURCE_NAMES, CertificateSource, GRPC_REFUSAL_NAMES,
    GrpcRefusal, PEER_KIND_NAMES, PENALTY_NAMES, PeerKind, PenaltyReason, STEP_NAMES, Step,
};
use crate::transport::ChargeReason;

pub(super) const CHARGE_COUNT: usize = ChargeReason::ALL.len();

/// The node's metrics. Share it in an `Arc`; every update is one atomic op
/// (a histogram observation a few).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Latest committed height.
    pub height: AtomicU64,
    /// Current consensus round.
    pub round: AtomicU64,
    /// Votes the core holds for the height being decided, every round and
    /// type (`Consensus::stored_votes`).
    pub votes_stored: AtomicU64,
    /// Transactions in the mempool.
    pub mempool_txs: AtomicU64,
    /// Bytes in the mempool.
    pub mempool_bytes: AtomicU64,
    /// Distinct pieces of evidence seen.
    pub evidence_seen: AtomicU64,
    /// Peer messages received.
    pub messages_received: AtomicU64,
    /// 1 when this validator may sign, 0 while its signing gate waits or
    /// after a double-sign alarm.
    pub signing_enabled: AtomicU64,
    /// Quiet heights the signing gate still waits for (0 when not waiting).
    pub signing_wait_remaining: AtomicU64,
    /// Messages signed by our key that this instance did not sign, seen
    /// while signing: another instance runs the key.
    pub double_sign_alarms: AtomicU64,
    /// 1 when this node's validator key is in the most recently computed
    /// active set.
    pub(crate) validator_active: AtomicU64,
    /// 1 when this node's validator key is jailed (tombstoned included).
    pub(crate) validator_jailed: AtomicU64,
    /// Precommits of this node's key missing from the current signing
    /// window (a downtime jail falls past half the window).
    pub(crate) validator_missed_blocks: AtomicU64,
    /// How far the last committed block's time was ahead of this node's
    /// clock (0 when it was not): past `max_clock_drift_ms`, proposals are
    /// refused as from the future (`runner/clock.rs`).
    pub(crate) clock_behind_ms: AtomicU64,
    /// The median, over the last 16 blocks others proposed and this node
    /// decided live in their proposal's round, of this node's clock at
    /// the commit minus the block's time: a round's latency on a healthy
    /// chain, past `max_clock_drift_ms` when this clock runs ahead
    /// (`runner/clock.rs`).
    pub(crate) block_lag_ms: AtomicU64,
    /// Connections a peer closed because another process presenting this
    /// node's TLS identity connected to it.
    pub(super) connections_superseded: AtomicU64,
    /// Connections from an incarnation of a peer that this node had
    /// superseded earlier: two processes present that peer's identity.
    pub(super) peer_copies_seen: AtomicU64,
    /// Incoming connections answered with a QUIC Retry (stateless address
    /// validation) before any handshake place was given.
    pub(super) address_validations: AtomicU64,
    /// Connected peers, by [`PeerKind`].
    pub(super) peers: [AtomicU64; PEER_KIND_NAMES.len()],
    /// Commit certificates verified and valid, by [`CertificateSource`].
    pub(super) certificates_verified: [AtomicU64; CERTIFICATE_SOURCE_NAMES.len()],
    /// Pieces of evidence in the blocks this node committed.
    pub(super) evidence_included: AtomicU64,
    /// Peers charged, by [`PenaltyReason`].
    pub(super) penalties: [AtomicU64; PENALTY_NAMES.len()],
    /// Charges to peers' scores, by [`ChargeReason`].
    pub(super) charges: [AtomicU64; CHARGE_COUNT],
    /// Bans, by the [`ChargeReason`] that reached the threshold.
    pub(super) bans: [AtomicU64; CHARGE_COUNT],
    /// Work dropped for a budget, by [`BudgetKind`].
    pub(super) budget_drops: [AtomicU64; BUDGET_NAMES.len()],
    /// Step durations, by [`Step`].
    pub(super) steps: [Histogram<StepSeconds>; STEP_NAMES.len()],
    /// Rounds each committed height took.
    pub(super) height_rounds: Histogram<Rounds>,
    /// gRPC refusals, by [`GrpcRefusal`].
    pub(super) grpc_refused: [AtomicU64; GRPC_REFUSAL_NAMES.len()],
}

impl Metrics {
    /// New metrics, all zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Increments a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the connected peers of each kind.
    pub fn set_peers(&self, validators: u64, full: u64) {
        Self::set(&self.peers[PeerKind::Validator as usize], validators);
        Self::set(&self.peers[PeerKind::Full as usize], full);
    }

    /// Connected peers of `kind`.
    pub fn peers(&self, kind: PeerKind) -> u64 {
        self.peers[kind as usize].load(Ordering::Relaxed)
    }

    /// Connected peers of every kind.
    pub fn peers_total(&self) -> u64 {
        self.peers.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }

    /// Takes the engine's running totals of verified certificates (they
    /// only grow while the process lives, as a counter must).
    pub fn set_certificates_verified(&self, c: CertificatesVerified) {
        Self::set(
            &self.certificates_verified[CertificateSource::Carried as usize],
            c.carried,
        );
        Self::set(
            &self.certificates_verified[CertificateSource::Synced as usize],
            c.synced,
        );
    }

    /// Certificates from `source` verified and found valid.
    pub fn certificates_verified(&self, source: CertificateSource) -> u64 {
        self.certificates_verified[source as usize].load(Ordering::Relaxed)
    }

    /// Counts a committed block: the rounds its height took (its
    /// certificate's round + 1) and the evidence it included.
    pub fn committed(&self, rounds: u32, evidence: usize) {
        self.height_rounds.observe(f64::from(rounds));
        self.evidence_included
            .fetch_add(evidence as u64, Ordering::Relaxed);
    }

    /// Evidence included in committed blocks so far.
    pub fn evidence_included(&self) -> u64 {
        self.evidence_included.load(Ordering::Relaxed)
    }

    /// Counts a connection a peer closed for another process presenting
    /// our identity.
    pub fn connection_superseded(&self) {
        Self::inc(&self.connections_superseded);
    }

    /// Connections peers closed for another process presenting our identity.
    pub fn connections_superseded(&self) -> u64 {
        self.connections_superseded.load(Ordering::Relaxed)
    }

    /// Counts an incoming connection asked to prove its address (a Retry).
    pub fn address_validation(&self) {
        Self::inc(&self.address_validations);
    }

    /// Incoming connections asked to prove their address (Retries sent).
    pub fn address_validations(&self) -> u64 {
        self.address_validations.load(Ordering::Relaxed)
    }

    /// Counts a peer identity seen from an incarnation it had superseded.
    pub fn peer_copy_seen(&self) {
        Self::inc(&self.peer_copies_seen);
    }

    /// Times a peer identity came back from an incarnation it had superseded.
    pub fn peer_copies_seen(&self) -> u64 {
        self.peer_copies_seen.load(Ordering::Relaxed)
    }

    /// Counts a peer charged for `reason`.
    pub fn penalty(&self, reason: PenaltyReason) {
        Self::inc(&self.penalties[reason as usize]);
    }

    /// How many peers were charged for `reason`.
    pub fn penalties(&self, reason: PenaltyReason) -> u64 {
        self.penalties[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a gRPC connection or request refused for `reason`.
    pub fn grpc_refused(&self, reason: GrpcRefusal) {
        Self::inc(&self.grpc_refused[reason as usize]);
    }

    /// How many gRPC connections or requests were refused for `reason`.
    pub fn grpc_refusals(&self, reason: GrpcRefusal) -> u64 {
        self.grpc_refused[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a charge to a peer's score.
    pub fn charge(&self, reason: ChargeReason) {
        Self::inc(&self.charges[reason as usize]);
    }

    /// Charges so far for `reason`.
    pub fn charges(&self, reason: ChargeReason) -> u64 {
        self.charges[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a ban.
    pub fn ban(&self, reason: ChargeReason) {
        Self::inc(&self.bans[reason as usize]);
    }

    /// Bans so far for `reason`.
    pub fn bans(&self, reason: ChargeReason) -> u64 {
        self.bans[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts work dropped for a budget.
    pub fn budget_drop(&self, kind: BudgetKind) {
        Self::inc(&self.budget_drops[kind as usize]);
    }

    /// Work dropped so far for `kind`.
    pub fn budget_drops(&self, kind: BudgetKind) -> u64 {
        self.budget_drops[kind as usize].load(Ordering::Relaxed)
    }

    /// Records how long a consensus step took.
    pub fn observe_step(&self, step: Step, d: Duration) {
        self.steps[step as usize].observe(d.as_secs_f64());
    }

    /// Durations recorded for `step` so far.
    pub fn step_count(&self, step: Step) -> u64 {
        self.steps[step as usize].snapshot().count
    }
}
