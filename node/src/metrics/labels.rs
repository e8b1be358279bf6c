//! The label values of the node's labelled metrics: one enum per label,
//! its discriminant indexing the counters, its names in the same order.

/// Consensus steps whose durations are recorded (the `step` label of
/// `agora_step_duration_seconds`; see [`super::steps`] for when each one
/// starts and ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// From entering a round until the engine's step becomes prevote.
    Propose = 0,
    /// From prevote until the step becomes precommit.
    Prevote = 1,
    /// From precommit until the height is decided.
    Precommit = 2,
    /// From the decision until the next height starts (block stored,
    /// `timeout_commit` waited).
    Commit = 3,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 4] = [Step::Propose, Step::Prevote, Step::Precommit, Step::Commit];

    /// The `step` label value.
    pub fn label(self) -> &'static str {
        STEP_NAMES[self as usize]
    }
}

/// `step` label values, by [`Step`].
pub(super) const STEP_NAMES: [&str; 4] = ["propose", "prevote", "precommit", "commit"];

/// Why a peer was charged (the `reason` label of `agora_peer_penalties_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PenaltyReason {
    /// A proposal or vote the consensus core rejected (counted, not banned).
    Consensus = 0,
    /// A block breaking a content rule (relayed proposal body or sync).
    BadBlock = 1,
    /// A block response nobody asked for.
    Unsolicited = 2,
    /// A claimed height it did not serve.
    FalseHeight = 3,
    /// Evidence that does not verify.
    BadEvidence = 4,
    /// A structurally broken message.
    Malformed = 5,
}

/// `reason` label values, by [`PenaltyReason`].
pub(super) const PENALTY_NAMES: [&str; 6] = [
    "consensus",
    "bad_block",
    "unsolicited",
    "false_height",
    "bad_evidence",
    "malformed",
];

/// Why the gRPC server refused a connection or a request (the `reason`
/// label of `agora_grpc_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcRefusal {
    /// The server held its maximum number of connections.
    Connections = 0,
    /// That client address held its maximum number of connections.
    ConnectionsPerIp = 1,
    /// The maximum number of certificate streams was open.
    CertificateStreams = 2,
    /// The maximum number of block-range reads was running.
    BlockRanges = 3,
    /// The maximum number of evidence checks was running.
    EvidenceChecks = 4,
    /// The maximum number of requests was being answered (answers count
    /// until sent).
    Requests = 5,
    /// That client address held its share of the requests being answered.
    RequestsPerIp = 6,
    /// The maximum number of single-block answers was being read or sent.
    LargeAnswers = 7,
    /// That client address held its share of the block-range answers.
    BlockRangesPerIp = 8,
    /// That client address held its share of the single-block answers.
    LargeAnswersPerIp = 9,
    /// That client address held its share of the certificate streams.
    CertificateStreamsPerIp = 10,
}

/// `reason` label values, by [`GrpcRefusal`].
pub(super) const GRPC_REFUSAL_NAMES: [&str; 11] = [
    "connections",
    "connections_per_ip",
    "certificate_streams",
    "block_ranges",
    "evidence_checks",
    "requests",
    "requests_per_ip",
    "large_answers",
    "block_ranges_per_ip",
    "large_answers_per_ip",
    "certificate_streams_per_ip",
];

/// What a dropped piece of work exceeded (the `kind` label of
/// `agora_budget_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// A message over its peer's signature-check bucket.
    Checks = 0,
    /// A block request over its peer's serving bucket.
    Serve = 1,
    /// A frame over its peer's outbound queue (frames or bytes).
    Outbound = 2,
    /// An incoming connection beyond the handshakes in progress.
    Handshakes = 3,
    /// An incoming connection from a stranger with no stranger slot left.
    Slots = 4,
    /// An incoming connection from a banned address.
    Banned = 5,
    /// A peer's transaction dropped unverified because the signature
    /// checker's queue was full (nothing re-sends it: the node then lacks
    /// it, and refuses its account's later nonces as gaps, until a block
    /// carries it).
    TxVerifier = 6,
    /// An incoming connection from a stranger whose network (IPv4 address
    /// or IPv6 /64) holds its share of the stranger slots already.
    NetworkSlots = 7,
    /// An incoming connection from a network with its share (a quarter) of
    /// the handshake places in progress already.
    NetworkHandshakes = 8,
    /// An incoming connection from a stranger network that started its
    /// rate's worth of handshakes already.
    HandshakeRate = 9,
}

/// `kind` label values, by [`BudgetKind`].
pub(super) const BUDGET_NAMES: [&str; 10] = [
    "checks",
    "serve",
    "outbound",
    "handshakes",
    "slots",
    "banned_address",
    "tx_verifier",
    "network_slots",
    "network_handshakes",
    "handshake_rate",
];

/// What a connected peer is (the `kind` label of `agora_peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// It proved, in its Hello, a BLS key in the validator set of the
    /// height being decided.
    Validator = 0,
    /// Any other peer: no key proved, or a key outside the set.
    Full = 1,
}

/// `kind` label values, by [`PeerKind`].
pub(super) const PEER_KIND_NAMES: [&str; 2] = ["validator", "full"];

/// Where a verified commit certificate came from (the `source` label of
/// `agora_certificates_verified_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource {
    /// Carried by a live proposal for its parent block.
    Carried = 0,
    /// Delivered by block sync with the block it commits.
    Synced = 1,
}

/// `source` label values, by [`CertificateSource`].
pub(super) const CERTIFICATE_SOURCE_NAMES: [&str; 2] = ["carried", "synced"];
