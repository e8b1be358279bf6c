//! The signing gate: may this validator sign at all right now?
//!
//! The double-sign guard ([`super::signing_state`]) only knows what *this*
//! key signed according to the state the host restored. Operators lose that
//! state (a wiped or emptied data directory, a restored backup, a validator
//! moved between machines) or run two instances of one key. The gate covers
//! those cases by watching the chain:
//!
//! - **Open**: signing allowed (a fresh validator at genesis, or a restored
//!   signing state that is not older than the chain).
//! - **Unknown**: no signing state and no stored block. This is either a
//!   fresh chain or a wiped validator; the first chain height the host
//!   observes (a peer's status) decides: 0 opens the gate, anything above
//!   starts the wait.
//! - **Waiting**: the state is missing or stale. Nothing is signed until
//!   `required` heights were decided live (by this node following
//!   consensus, not by block sync) without any message or certificate
//!   signature of our key that this instance did not produce. Seeing one
//!   starts the count again.
//! - **Alarmed**: while open, a message validly signed by our key arrived
//!   that this instance never signed: another instance runs the same key.
//!   Signing stops for good (until the process restarts and an operator
//!   has looked). A waiting gate raises the same alarm when a foreign
//!   signature is for a height above the first one this process decided
//!   live, and so does evidence against our key at such a height, or above
//!   the current signing state the gate opened on, whatever the status
//!   (`SigningGate::signed_by_a_live_instance`): such a signature cannot be
//!   an earlier life's, so another instance is signing.
//!
//! Pure: the engine consults it before every signature and feeds it what it
//! sees; the host feeds it peer heights. It never reads a clock.

use crate::types::Height;

/// Why the gate is waiting (for the log line and the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// No signing state, but the store holds blocks (or peers report them).
    MissingState,
    /// The signing state is older than the chain this node observes.
    StaleState {
        /// Height of the last signature in the state.
        signed: Height,
        /// The height observed above it.
        observed: Height,
    },
    /// A message or certificate signature of our key arrived that this
    /// instance did not produce.
    ForeignSignature {
        /// The height it was for.
        height: Height,
    },
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::MissingState => write!(
                f,
                "the validator key exists but its signing state is missing while the chain has blocks"
            ),
            WaitReason::StaleState { signed, observed } => write!(
                f,
                "the signing state (last signed height {signed}) is older than the chain (height {observed})"
            ),
            WaitReason::ForeignSignature { height } => write!(
                f,
                "a signature of this validator's key that this node did not make was seen at height {height}"
            ),
        }
    }
}

/// What the gate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateStatus {
    /// Signing allowed.
    Open,
    /// No state, no blocks: waiting for the first observed chain height.
    Unknown,
    /// Waiting for `remaining` more quiet heights.
    Waiting {
        /// Why.
        reason: WaitReason,
        /// Quiet heights still needed.
        remaining: u64,
    },
    /// Another instance signs with our key; never signing again in this process.
    Alarmed {
        /// The height of the message that raised the alarm.
        height: Height,
    },
}

/// The signing gate (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningGate {
    status: GateStatus,
    /// Quiet heights needed before signing; 0 disables the wait (never the alarm).
    required: u64,
    /// Quiet heights counted so far while waiting.
    quiet: u64,
    /// Alarms raised (at most one per process, since an alarm is final).
    alarms: u64,
    /// The first height this process decided live (followed consensus at
    /// the chain's tip), whatever the status was then.
    first_live: Option<Height>,
    /// The height of the signing state this process opened on, while that
    /// state is believed current: the state is written before each
    /// signature leaves, so every signature an earlier life of this key
    /// made is at or below it. Cleared as soon as the gate waits (the state
    /// proved stale, or a foreign signature was seen).
    state_height: Option<Height>,
}

impl Default for SigningGate {
    /// An open gate that needs no quiet heights (tests, the simulator).
    fn default() -> Self {
        Self::open(0)
    }
}

impl SigningGate {
    /// Open: the restored signing state is trustworthy.
    pub fn open(required: u64) -> Self {
        Self {
            status: GateStatus::Open,
            required,
            quiet: 0,
            alarms: 0,
            first_live: None,
            state_height: None,
        }
    }

    /// Open on a restored signing state whose last signature is at
    /// `signed`, found current (no stored certificate carries our key
    /// above it).
    pub fn open_on_state(required: u64, signed: Height) -> Self {
        Self {
            state_height: Some(signed),
            ..Self::open(required)
        }
    }

    /// No signing state and no stored block: a fresh chain or a wiped
    /// validator, decided by the first observed height.
    pub fn unknown(required: u64) -> Self {
        let mut g = Self::open(required);
        if required > 0 {
            g.status = GateStatus::Unknown;
        }
        g
    }

    /// Waiting from the start (missing or stale state).
    pub fn waiting(required: u64, reason: WaitReason) -> Self {
        let mut g = Self::open(required);
        g.wait(reason);
        g
    }

    /// What the gate says now.
    pub fn status(&self) -> GateStatus {
        self.status
    }

    /// Whether a signature may be made now.
    pub fn may_sign(&self) -> bool {
        self.status == GateStatus::Open
    }

    /// Alarms raised so far (0 or 1).
    pub fn alarms(&self) -> u64 {
        self.alarms
    }

    /// Quiet heights needed before signing (0: the wait is disabled).
    pub fn required(&self) -> u64 {
        self.required
    }

    fn wait(&mut self, reason: WaitReason) {
        self.state_height = None;
        if self.required == 0 {
            self.status = GateStatus::Open;
            return;
        }
        self.quiet = 0;
        self.status = GateStatus::Waiting {
            reason,
            remaining: self.required,
        };
    }

    /// The host saw the chain at `height` (a peer's status): decides an
    /// unknown gate. Any other status ignores it: a peer ahead of a
    /// validator that was merely down says nothing about its key.
    pub fn observe_chain_height(&mut self, height: Height) {
        if self.status != GateStatus::Unknown {
            return;
        }
        if height == 0 {
            self.status = GateStatus::Open;
        } else {
            self.wait(WaitReason::MissingState);
        }
    }

    /// A height was committed. `live`: decided by following consensus (not
    /// fetched by block sync); `our_signature`: its certificate holds a
    /// signature of our key; `signed_up_to`: the height of our last
    /// signature (None: never signed).
    pub fn on_commit(
        &mut self,
        height: Height,
        live: bool,
        our_signature: bool,
        signed_up_to: Option<Height>,
    ) {
        self.observe_commit(height, live, our_signature, signed_up_to);
        if live {
            self.first_live.get_or_insert(height);
        }
    }

    fn observe_commit(
        &mut self,
        height: Height,
        live: bool,
        our_signature: bool,
        signed_up_to: Option<Height>,
    ) {
        let waiting = matches!(
            self.status,
            GateStatus::Unknown | GateStatus::Waiting { .. }
        );
        // Only while not signing: an open gate's own signatures are in its
        // certificates (one it did not make is the stale case below).
        if waiting && our_signature && self.signed_by_a_live_instance(height) {
            self.alarm(height);
            return;
        }
        match self.status {
            GateStatus::Unknown if height > 0 => self.wait(WaitReason::MissingState),
            GateStatus::Open
                if our_signature
                    && signed_up_to.is_none_or(|s| height > s)
                    && self.required > 0 =>
            {
                // Our key signed a height we have no record of signing: the
                // state we run with is older than the chain.
                self.wait(WaitReason::StaleState {
                    signed: signed_up_to.unwrap_or(0),
                    observed: height,
                });
            }
            GateStatus::Waiting { reason, .. } => {
                if our_signature {
                    self.wait(WaitReason::ForeignSignature { height });
                } else if live {
                    self.quiet += 1;
                    if self.quiet >= self.required {
                        self.status = GateStatus::Open;
                    } else {
                        self.status = GateStatus::Waiting {
                            reason,
                            remaining: self.required - self.quiet,
                        };
                    }
                }
            }
            _ => {}
        }
    }

    /// A message validly signed by our key arrived that this instance did
    /// not sign. Open: another instance runs the key, raise the alarm and
    /// stop for good. Waiting or unknown: start the count again (it may be
    /// our own earlier life's message, still gossiped), unless it is for a
    /// height above the first one this process decided live: the alarm.
    pub fn on_foreign_signature(&mut self, height: Height) {
        match self.status {
            GateStatus::Open => self.alarm(height),
            GateStatus::Unknown | GateStatus::Waiting { .. } => {
                if self.signed_by_a_live_instance(height) {
                    self.alarm(height);
                } else {
                    self.wait(WaitReason::ForeignSignature { height })
                }
            }
            GateStatus::Alarmed { .. } => {}
        }
    }

    /// Evidence that our key signed two conflicting messages at `height`:
    /// this instance signs one message per position, so one of the two is
    /// another holder's, fresh or an earlier life's. Fresh (above the first
    /// height decided live, or above the current signing state the gate
    /// opened on): the alarm, whatever the status. Otherwise a
    /// waiting gate starts its count again, and an open gate ignores it:
    /// evidence outlives the instance that caused it (it is gossiped until
    /// included), so an operator who stopped the other instance and
    /// restarted this one must not be alarmed again by the old evidence.
    pub fn on_evidence_against_us(&mut self, height: Height) {
        match self.status {
            GateStatus::Alarmed { .. } => {}
            _ if self.signed_by_a_live_instance(height) => self.alarm(height),
            GateStatus::Unknown | GateStatus::Waiting { .. } => {
                self.wait(WaitReason::ForeignSignature { height })
            }
            GateStatus::Open => {}
        }
    }

    /// Whether a signature of our key at `height`, not made by this
    /// instance, must come from another instance running now.
    ///
    /// An earlier life of this validator (the process that ran before a
    /// restart from a stale or missing state) stopped before this process
    /// started, when the chain's tip was some T; it signed nothing above
    /// T + 1. This process decided `first_live` by following consensus, so
    /// the chain had reached that height after this process started:
    /// `first_live` ≥ T + 1. A signature above it is therefore fresh.
    /// (This leans on "live" meaning "at the tip", the same assumption the
    /// quiet count makes; a peer lagging far behind could bend it, and the
    /// cost would be an alarm, never a signature.)
    ///
    /// A gate opened on a current signing state knows more: an earlier life
    /// signed nothing above the state's height, so a signature above it is
    /// fresh too, even before this process decided a height live. Two
    /// instances started from one copied state sign at the very next
    /// heights, so this is the only rule that sees them when the evidence
    /// is for the first height either decides live.
    fn signed_by_a_live_instance(&self, height: Height) -> bool {
        self.first_live.is_some_and(|live| height > live)
            || self.state_height.is_some_and(|signed| height > signed)
    }

    fn alarm(&mut self, height: Height) {
        debug_assert!(!matches!(self.status, GateStatus::Alarmed { .. }));
        self.alarms += 1;
        self.status = GateStatus::Alarmed { height };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remaining(g: &SigningGate) -> u64 {
        match g.status() {
            GateStatus::Waiting { remaining, .. } => remaining,
            other => panic!("not waiting: {other:?}"),
        }
    }

    #[test]
    fn fresh_chain_opens_on_height_zero_and_wiped_node_waits() {
        let mut fresh = SigningGate::unknown(3);
        assert!(!fresh.may_sign());
        fresh.observe_chain_height(0);
        assert!(fresh.may_sign());
        // Later statuses do not close an open gate (a validator that was down).
        fresh.observe_chain_height(50);
        assert!(fresh.may_sign());

        let mut wiped = SigningGate::unknown(3);
        wiped.observe_chain_height(40);
        assert!(!wiped.may_sign());
        assert_eq!(remaining(&wiped), 3);
        // A synced block is no proof of quiet.
        wiped.on_commit(1, false, false, None);
        assert_eq!(remaining(&wiped), 3);
    }

    #[test]
    fn waits_for_quiet_live_heights_and_restarts_the_count() {
        let mut g = SigningGate::waiting(3, WaitReason::MissingState);
        // Our key in a synced certificate: start again (an earlier life's
        // signature, as far as the gate can tell).
        g.on_commit(10, false, true, None);
        assert!(matches!(
            g.status(),
            GateStatus::Waiting {
                reason: WaitReason::ForeignSignature { height: 10 },
                remaining: 3
            }
        ));
        g.on_commit(11, true, false, None);
        g.on_commit(12, true, false, None);
        assert_eq!(remaining(&g), 1);
        // A message of our key at the first height decided live: again.
        g.on_foreign_signature(11);
        assert_eq!(remaining(&g), 3);
        for h in 13..16 {
            assert!(!g.may_sign());
            g.on_commit(h, true, false, None);
        }
        assert!(g.may_sign());
        assert_eq!(g.alarms(), 0);
    }

    #[test]
    fn a_fresh_signature_above_a_live_height_is_the_alarm_while_waiting() {
        // A message: the first live height is the line.
        let mut g = SigningGate::waiting(3, WaitReason::MissingState);
        g.on_foreign_signature(5);
        g.on_commit(5, true, true, None);
        g.on_foreign_signature(5);
        assert_eq!(g.alarms(), 0, "{:?}", g.status());
        g.on_foreign_signature(6);
        assert_eq!(g.status(), GateStatus::Alarmed { height: 6 });
        assert_eq!(g.alarms(), 1);
        // A certificate, even a synced one, above a live height.
        let mut c = SigningGate::waiting(3, WaitReason::MissingState);
        c.on_commit(5, true, false, None);
        c.on_commit(6, false, true, None);
        assert_eq!(c.status(), GateStatus::Alarmed { height: 6 });
        // Negative control: without a live height nothing is provably fresh,
        // however many of our signatures sync brings.
        let mut s = SigningGate::waiting(3, WaitReason::MissingState);
        for h in 1..50 {
            s.on_commit(h, false, true, None);
            s.on_foreign_signature(h + 1);
        }
        assert_eq!(s.alarms(), 0);
        assert!(!s.may_sign());
    }

    #[test]
    fn evidence_against_us_alarms_only_when_fresh() {
        let mut g = SigningGate::open(2);
        // No height decided live yet: maybe an earlier life's, ignored.
        g.on_evidence_against_us(4);
        assert_eq!(g.status(), GateStatus::Open);
        g.on_commit(5, true, false, Some(5));
        g.on_evidence_against_us(5);
        assert_eq!(g.status(), GateStatus::Open);
        g.on_evidence_against_us(6);
        assert_eq!(g.status(), GateStatus::Alarmed { height: 6 });
        g.on_evidence_against_us(7);
        assert_eq!(g.alarms(), 1);
        // A waiting gate starts its count again on old evidence.
        let mut w = SigningGate::waiting(2, WaitReason::MissingState);
        w.on_commit(5, true, false, None);
        assert_eq!(remaining(&w), 1);
        w.on_evidence_against_us(3);
        assert_eq!(remaining(&w), 2);
    }

    /// Two instances started from one copied signing state (last signature
    /// at 6) both sign at the next heights; a real-process run saw its only
    /// evidence at height 10, which the live rule did not cover (no alarm,
    /// then the key was jailed). Here it comes before any height is decided
    /// live, and at the first live height itself. Negative controls:
    /// evidence at or below the state's height (an earlier life's), a state
    /// that proved stale (the certificate of height 8 carries our
    /// signature), and an open gate with no state height.
    #[test]
    fn evidence_above_a_current_restored_state_alarms_before_any_live_height() {
        let mut g = SigningGate::open_on_state(2, 6);
        g.on_evidence_against_us(6);
        assert_eq!(g.status(), GateStatus::Open);
        g.on_commit(7, false, false, Some(6));
        g.on_evidence_against_us(10);
        assert_eq!(g.status(), GateStatus::Alarmed { height: 10 });

        let mut live = SigningGate::open_on_state(2, 6);
        live.on_commit(10, true, true, Some(10));
        live.on_evidence_against_us(10);
        assert_eq!(live.status(), GateStatus::Alarmed { height: 10 });

        let mut stale = SigningGate::open_on_state(2, 6);
        stale.on_commit(8, false, true, Some(6));
        assert!(!stale.may_sign(), "waits: the state was stale");
        stale.on_evidence_against_us(9);
        assert_eq!(
            remaining(&stale),
            2,
            "an earlier life's: the count starts again"
        );
        assert_eq!(stale.alarms(), 0);

        let mut plain = SigningGate::open(2);
        plain.on_evidence_against_us(10);
        assert_eq!(plain.status(), GateStatus::Open, "no state height known");
    }

    #[test]
    fn foreign_signature_while_open_is_a_final_alarm() {
        let mut g = SigningGate::open(3);
        g.on_foreign_signature(7);
        assert_eq!(g.status(), GateStatus::Alarmed { height: 7 });
        assert_eq!(g.alarms(), 1);
        for h in 8..20 {
            g.on_commit(h, true, false, Some(7));
            g.observe_chain_height(0);
        }
        assert!(!g.may_sign());
        g.on_foreign_signature(30);
        assert_eq!(g.alarms(), 1);
    }

    #[test]
    fn alarm_holds_even_with_the_wait_disabled() {
        let mut g = SigningGate::open(0);
        g.on_foreign_signature(2);
        assert!(!g.may_sign());
    }

    #[test]
    fn zero_disables_the_wait() {
        let mut g = SigningGate::unknown(0);
        assert!(g.may_sign());
        let mut w = SigningGate::waiting(0, WaitReason::MissingState);
        assert!(w.may_sign());
        w.on_commit(5, true, true, Some(1));
        assert!(w.may_sign());
        g.observe_chain_height(9);
        assert!(g.may_sign());
    }

    #[test]
    fn our_signature_above_our_state_means_stale_state() {
        let mut g = SigningGate::open(2);
        // Our own signature at a height we signed: normal.
        g.on_commit(5, true, true, Some(5));
        assert!(g.may_sign());
        // At a height above our last signature: someone signed for us.
        g.on_commit(6, false, true, Some(5));
        assert!(matches!(
            g.status(),
            GateStatus::Waiting {
                reason: WaitReason::StaleState {
                    signed: 5,
                    observed: 6
                },
                remaining: 2
            }
        ));
        g.on_commit(7, true, false, Some(5));
        g.on_commit(8, true, false, Some(5));
        assert!(g.may_sign());
    }
}
