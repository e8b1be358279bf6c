//! The pause between a commit and the next height's start: the operator's
//! `timeout_commit`, and never less than the clock needs to come within
//! half the allowed drift of the decided block's time.
//!
//! Why the second term: a proposer dates its block `max(now, parent + 1)`
//! (`block_rules::template`), so a chain that decides more than one height
//! a millisecond dates each block a millisecond after its parent, ahead of
//! every clock, until its proposals are later than the drift the others
//! accept (`block_rules::check_time`, 2 s by default) and its own blocks
//! break the time rule. The simulator found it (seed 9,128,453): once
//! three equivocators were slashed, one honest validator held 10 of 12
//! power, decided alone in no simulated time, and committed 2,000 heights
//! at one instant, the last dated 5.8 s ahead of its clock. On real
//! hardware a height costs fsyncs, about a millisecond, but a validator
//! holding more than 2/3 of the power on a fast disk could get there too.
//! With the pause, an honest block is dated at most half the drift (and
//! a millisecond) ahead of its proposer's clock, which the others accept.
//!
//! Why half the drift and not the clock itself: a node whose clock lags the
//! proposers' (by less than the drift, which the others tolerate) sees
//! every block dated ahead, and would otherwise wait that lag after each
//! commit, as proposer too. A block dated ahead by a Byzantine proposer
//! (up to the drift) delays the next start by at most half the drift; the
//! next block must be dated after it anyway. A node still starts early on
//! a proposal (`early_start.rs`).

use super::Engine;

/// Milliseconds from now (`now_ms`) until the next height may start, after
/// a block dated `block_time_ms`, with `timeout_commit_ms` configured and
/// blocks allowed `max_clock_drift_ms` ahead of a clock.
pub fn start_pause_ms(
    timeout_commit_ms: u64,
    block_time_ms: u64,
    now_ms: u64,
    max_clock_drift_ms: u64,
) -> u64 {
    let allowed = now_ms.saturating_add(max_clock_drift_ms / 2);
    let until_within = block_time_ms.saturating_add(1).saturating_sub(allowed);
    timeout_commit_ms.max(until_within)
}

impl<P> Engine<P> {
    /// [`start_pause_ms`] with this engine's drift limit.
    pub fn start_pause_ms(&self, timeout_commit_ms: u64, block_time_ms: u64, now_ms: u64) -> u64 {
        let drift = self.config.limits.max_clock_drift_ms;
        start_pause_ms(timeout_commit_ms, block_time_ms, now_ms, drift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_is_timeout_commit_unless_the_block_is_dated_too_far_ahead() {
        let p = |commit, block, now| start_pause_ms(commit, block, now, 2_000);
        assert_eq!(p(0, 999, 1_000), 0, "dated in the past");
        assert_eq!(p(300, 999, 1_000), 300);
        assert_eq!(p(0, 1_999, 1_000), 0, "ahead, within half the drift");
        assert_eq!(p(0, 2_000, 1_000), 1, "a millisecond past it");
        assert_eq!(p(0, 2_500, 1_000), 501);
        assert_eq!(p(800, 2_500, 1_000), 800);
        assert_eq!(p(0, u64::MAX, 0), u64::MAX - 1_000);
    }
}
