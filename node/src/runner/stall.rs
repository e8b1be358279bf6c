//! A chain that stopped deciding, told to the operator with what this node
//! can see of why.
//!
//! When heights stop (validators down, peers unreachable or misconfigured,
//! a split network) a node said nothing above debug level: rounds time out
//! and grow, quietly. So when no block was committed for
//! `consensus.stall_warning_ms` (30 s by default; 0 switches it off), and
//! again every such period while it lasts, one warning gives the height,
//! round and step being decided, the voting power of the validators this
//! node is connected to (its own key included) against the quorum, and
//! whether it may sign; the first commit after a warning gets an info line
//! saying how long the chain stood. Before block 1 this is the testnet
//! that does not start.
//!
//! What the connected power tells: at most two thirds means no quorum can
//! form around this node (find the missing validators: down, or not
//! reachable from here); more means the votes exist but are not counted
//! (validators connected but not signing, or a round that keeps failing).

use std::time::{Duration, Instant};

use agora_validator::{Address, ValidatorSet};
use tracing::{info, warn};

/// Voting power of the validators this node can hear, against the set's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reach {
    /// Power of the set's validators connected to this node, its own key
    /// included.
    pub(super) connected: u64,
    pub(super) total: u64,
    /// Validators of the set that count toward `connected`.
    pub(super) validators: usize,
    pub(super) of: usize,
}

impl Reach {
    /// The power of `set` held by `me` (when in it) and by the `connected`
    /// peers' proven validator keys (each counted once).
    pub(super) fn of(set: &ValidatorSet, me: &Address, connected: &[Address]) -> Self {
        let (mut power, mut count) = (0u64, 0usize);
        for v in set.validators() {
            if v.address == *me || connected.contains(&v.address) {
                power = power.saturating_add(v.power);
                count += 1;
            }
        }
        Self {
            connected: power,
            total: set.total_power(),
            validators: count,
            of: set.validators().len(),
        }
    }

    /// More than two thirds of the power: a quorum could form here.
    pub(super) fn can_form_quorum(&self) -> bool {
        u128::from(self.connected) * 3 > u128::from(self.total) * 2
    }

    fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.connected as f64 * 100.0 / self.total as f64
    }
}

/// When the last commit and the last stall warning were.
#[derive(Debug, Clone, Copy)]
pub(super) struct StallWatch {
    /// `None`: the warning is off.
    after: Option<Duration>,
    last_commit: Instant,
    last_warning: Option<Instant>,
}

impl StallWatch {
    /// A watch that warns after `after_ms` without a commit (0: never),
    /// counting from `now` (the node's start).
    pub(super) fn new(after_ms: u64, now: Instant) -> Self {
        Self {
            after: (after_ms > 0).then(|| Duration::from_millis(after_ms)),
            last_commit: now,
            last_warning: None,
        }
    }

    /// A block was committed at `now`: how long the chain had stood, when
    /// a warning was given about it.
    pub(super) fn committed(&mut self, now: Instant) -> Option<Duration> {
        let stood = self
            .last_warning
            .take()
            .map(|_| now.saturating_duration_since(self.last_commit));
        self.last_commit = now;
        stood
    }

    /// How long nothing was committed, when a warning is due at `now`:
    /// one period after the last commit, then one per period.
    pub(super) fn due(&mut self, now: Instant) -> Option<Duration> {
        let after = self.after?;
        let since = self.last_warning.unwrap_or(self.last_commit);
        if now.saturating_duration_since(since) < after {
            return None;
        }
        self.last_warning = Some(now);
        Some(now.saturating_duration_since(self.last_commit))
    }
}

/// Where the node is in deciding a height, for the warning.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deciding {
    pub(super) height: u64,
    pub(super) round: u32,
    pub(super) step: &'static str,
    pub(super) may_sign: bool,
}

/// The warning (see the module doc).
pub(super) fn warn_stalled(stood: Duration, at: Deciding, reach: Reach) {
    let hint = if reach.can_form_quorum() {
        "enough power is connected: are those validators signing (their logs, agora_signing_enabled)?"
    } else {
        "no quorum can form here: start the missing validators or check p2p.peers and the network between them"
    };
    warn!(
        height = at.height,
        round = at.round,
        step = at.step,
        signing = at.may_sign,
        connected_validators = reach.validators,
        validators = reach.of,
        "no block committed for {} s: the validators connected to this node (it included) hold {:.1}% of the voting power, a quorum needs more than 66.7%; {hint}",
        stood.as_secs(),
        reach.percent(),
    );
}

/// The line after a stall ends.
pub(super) fn info_resumed(height: u64, stood: Duration) {
    info!(
        height,
        stood_s = stood.as_secs(),
        "committing again after the stall"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::SecretKey;
    use agora_validator::validator_set::Validator;

    fn set(powers: &[u64]) -> ValidatorSet {
        let vs = powers
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let sk = SecretKey::from_seed(&[i as u8 + 1; 32]).unwrap();
                Validator::new(sk.public_key(), p)
            })
            .collect();
        ValidatorSet::new(vs).unwrap()
    }

    #[test]
    fn reach_counts_this_key_and_connected_validators_once() {
        let s = set(&[10, 10, 10, 10]);
        let a: Vec<Address> = s.validators().iter().map(|v| v.address).collect();
        let me = a[0];
        let r = Reach::of(&s, &me, &[a[1]]);
        assert_eq!((r.connected, r.total, r.validators, r.of), (20, 40, 2, 4));
        assert!(!r.can_form_quorum());
        // Exactly two thirds is not a quorum; one more unit is.
        let s = set(&[1, 1, 1]);
        let a: Vec<Address> = s.validators().iter().map(|v| v.address).collect();
        assert!(!Reach::of(&s, &a[0], &[a[1], a[1]]).can_form_quorum());
        assert!(Reach::of(&s, &a[0], &[a[1], a[2]]).can_form_quorum());
        // A key outside the set (a full node) counts only its peers.
        let outsider = Address::of(&SecretKey::from_seed(&[99; 32]).unwrap().public_key());
        assert_eq!(Reach::of(&s, &outsider, &[a[2]]).connected, 1);
    }

    #[test]
    fn a_stall_is_told_once_per_period_and_its_end_once() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut w = StallWatch::new(1_000, t0);
        assert_eq!(w.due(s(999)), None);
        assert_eq!(w.committed(s(900)), None, "no warning was given");
        assert_eq!(w.due(s(1_800)), None, "counted from the last commit");
        assert_eq!(w.due(s(1_900)), Some(Duration::from_millis(1_000)));
        assert_eq!(w.due(s(2_500)), None);
        assert_eq!(w.due(s(2_900)), Some(Duration::from_millis(2_000)));
        assert_eq!(w.committed(s(3_000)), Some(Duration::from_millis(2_100)));
        assert_eq!(w.due(s(3_500)), None);
        let mut off = StallWatch::new(0, t0);
        assert_eq!(off.due(s(1_000_000)), None);
    }
}
