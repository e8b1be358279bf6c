//! What a run can find wrong: one variant per property the checker
//! ([`super::checks`]) or the event loop reports.

use agora_validator::{Height, Round};

/// A property that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators committed different blocks at one height.
    Agreement {
        /// The height decided twice.
        height: Height,
        /// The first honest decider and the hash of its block.
        first: (usize, String),
        /// The honest node that committed another block, and its hash.
        second: (usize, String),
    },
    /// A committed block was not created by a lottery winner with a valid VRF proof.
    Validity {
        /// The height of the block.
        height: Height,
        /// The honest node that committed it.
        node: usize,
    },
    /// An honest node's chain fails the chain verifier from genesis.
    Chain {
        /// The node whose chain fails.
        node: usize,
        /// The verifier's error.
        error: String,
    },
    /// App hashes disagree, or a header does not carry the app hash its
    /// committing node computed after the parent.
    AppHash {
        /// The height committed.
        height: Height,
        /// The committing node.
        node: usize,
        /// The hashes that differ, and whose.
        detail: String,
    },
    /// An honest node applied a block whose body does not match its header.
    BodyMismatch {
        /// The height of the block.
        height: Height,
        /// The node that applied it.
        node: usize,
        /// The commitment that fails.
        error: String,
    },
    /// A committed header's `time_ms` breaks the time rule.
    Time {
        /// The height of the block.
        height: Height,
        /// The node that committed it.
        node: usize,
        /// Which rule it breaks, with the times.
        detail: String,
    },
    /// An equivocation an honest validator received did not become evidence there.
    MissingEvidence {
        /// The honest validator that received both halves.
        node: usize,
        /// The infraction (its key, printed).
        key: String,
    },
    /// Evidence that does not verify or names an honest validator.
    BadEvidence {
        /// The honest node whose engine found it.
        node: usize,
        /// Why it is bad.
        reason: String,
    },
    /// An equivocation that reached an honest validator was not included
    /// (its offender slashed) within [`super::EVIDENCE_BOUND`].
    EvidenceNotIncluded {
        /// The infraction (its key, printed).
        key: String,
        /// The height it was due by (None: the chain never got there).
        due: Option<Height>,
    },
    /// A slashed offender is not tombstoned in an honest node's ledger.
    NotTombstoned {
        /// The node whose ledger misses the tombstone.
        node: usize,
        /// The offender's address.
        offender: String,
    },
    /// A committed block slashed an honest validator.
    HonestSlashed {
        /// The height of the block.
        height: Height,
        /// The honest validator's address.
        validator: String,
    },
    /// An honest engine charged an honest peer with a fault.
    HonestPenalized {
        /// The node whose engine charged it.
        node: usize,
        /// The honest peer charged.
        peer: usize,
        /// The fault charged.
        fault: String,
    },
    /// An honest node found invalid a block an honest node created and
    /// proposed (block validity is a function of the chain but for the
    /// clock rule, so this is clocks too far apart, or a rule that is not
    /// deterministic).
    HonestBlockRefused {
        /// The node that refused it.
        node: usize,
        /// The block's height.
        height: Height,
        /// The round it was proposed in.
        round: Round,
        /// The rule it broke there.
        error: String,
    },
    /// An honest engine failed (it could not apply a decided block).
    Engine {
        /// The node whose engine failed.
        node: usize,
        /// The engine's error.
        error: String,
    },
    /// An honest validator did not reach the target height (and the
    /// heights deciding each equivocation's inclusion) in time.
    Liveness {
        /// The validator that fell short.
        node: usize,
        /// Its height at the end.
        reached: Height,
    },
    /// An honest validator's signing gate raised the double-sign alarm
    /// (another instance of its key seemed to sign), which stops it for
    /// good; the simulator runs one instance per key, so it never should.
    HonestAlarm {
        /// The validator whose gate alarmed.
        node: usize,
        /// The height the gate names.
        height: Height,
    },
    /// A node that started late never joined by state sync, or joined and,
    /// a member of its chain's validator set, never signed.
    Join {
        /// The joiner.
        node: usize,
        /// The height of the snapshot it installed (None: it installed none).
        joined_at: Option<Height>,
    },
    /// The run needed more events than the budget.
    EventBudget,
}

impl Violation {
    /// Whether this is a safety violation (what honest nodes committed is wrong).
    pub fn is_safety(&self) -> bool {
        matches!(
            self,
            Self::Agreement { .. }
                | Self::Validity { .. }
                | Self::Chain { .. }
                | Self::AppHash { .. }
                | Self::BodyMismatch { .. }
                | Self::Time { .. }
        )
    }
}
