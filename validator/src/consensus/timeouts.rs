//! Round timeouts that grow linearly with the round (DESIGN §6), so that once
//! the network is synchronous again every honest validator eventually waits
//! long enough to hear a quorum.

use crate::types::{Height, Round};

/// The step a timeout belongs to (Algorithm 1: OnTimeoutPropose/Prevote/Precommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutStep {
    /// Waiting for the round's proposal.
    Propose,
    /// Waiting for prevotes after seeing 2f+1 of any value.
    Prevote,
    /// Waiting for precommits after seeing 2f+1 of any value.
    Precommit,
}

/// A timeout the host must fire back (as `Input::TimeoutFired`) after its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout {
    /// Height the timeout was scheduled at.
    pub height: Height,
    /// Round the timeout was scheduled at.
    pub round: Round,
    /// Which step it ends.
    pub step: TimeoutStep,
}

/// `base + increment · round` milliseconds, per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Propose timeout at round 0 (ms).
    pub propose_base_ms: u64,
    /// Added to the propose timeout per round (ms).
    pub propose_increment_ms: u64,
    /// Prevote timeout at round 0 (ms).
    pub prevote_base_ms: u64,
    /// Added to the prevote timeout per round (ms).
    pub prevote_increment_ms: u64,
    /// Precommit timeout at round 0 (ms).
    pub precommit_base_ms: u64,
    /// Added to the precommit timeout per round (ms).
    pub precommit_increment_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            propose_base_ms: 3000,
            propose_increment_ms: 500,
            prevote_base_ms: 1000,
            prevote_increment_ms: 500,
            precommit_base_ms: 1000,
            precommit_increment_ms: 500,
        }
    }
}

impl TimeoutConfig {
    /// Duration of the timeout of `step` in `round`, saturating instead of overflowing.
    pub fn duration_ms(&self, step: TimeoutStep, round: Round) -> u64 {
        let (base, inc) = match step {
            TimeoutStep::Propose => (self.propose_base_ms, self.propose_increment_ms),
            TimeoutStep::Prevote => (self.prevote_base_ms, self.prevote_increment_ms),
            TimeoutStep::Precommit => (self.precommit_base_ms, self.precommit_increment_ms),
        };
        base.saturating_add(inc.saturating_mul(u64::from(round)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_grow_with_round() {
        let c = TimeoutConfig::default();
        for step in [
            TimeoutStep::Propose,
            TimeoutStep::Prevote,
            TimeoutStep::Precommit,
        ] {
            assert!(c.duration_ms(step, 1) > c.duration_ms(step, 0));
            assert!(c.duration_ms(step, 10) > c.duration_ms(step, 9));
        }
        assert_eq!(
            c.duration_ms(TimeoutStep::Propose, u32::MAX),
            3000 + 500 * u64::from(u32::MAX)
        );
    }
}
