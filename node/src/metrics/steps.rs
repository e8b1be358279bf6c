//! When each consensus step starts and ends, as the host sees it.
//!
//! The engine has no clock, so the node derives step transitions from the
//! engine's observable state ([`Phase::of`]), read each time the engine
//! has handled an input (before its actions run), and times them with its
//! own monotonic clock. Per round:
//!
//! - **propose** starts when the node enters the round (the height starts,
//!   or it moves to a later round) and ends when the core's step becomes
//!   prevote (it prevoted, or timed out and prevoted nil);
//! - **prevote** ends when the step becomes precommit;
//! - **precommit** ends when the height is decided;
//! - **commit** runs from the decision until the next height starts: the
//!   block is stored and `timeout_commit` waited.
//!
//! A step also ends when the node leaves it otherwise: a later round (a
//! timeout or a skip on > 1/3 of the power from it) or a decision from an
//! earlier step (a quorum of precommits, or a synced block). Steps the
//! engine passed through while handling a single input (a proposer
//! proposes and prevotes in one go) were entered and left at the same
//! instant of this clock and are recorded as 0 s, so every round entered
//! counts one propose sample. A height started and decided within one
//! input (block sync) has no step samples of its own, only its commit.

use std::time::{Duration, Instant};

use agora_validator::consensus::Step as CoreStep;
use agora_validator::engine::Engine;

use super::labels::Step;

/// What the engine is doing, as far as step timing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Deciding `height`, in `round`, at `step` (never [`Step::Commit`]).
    Deciding {
        /// The height being decided.
        height: u64,
        /// Its current round.
        round: u32,
        /// The core's step in that round.
        step: Step,
    },
    /// `height` is decided (committed) and the next one not started yet.
    Committing {
        /// The last decided height.
        height: u64,
    },
}

impl Phase {
    /// The phase of `engine` now.
    pub fn of<P: Copy + Ord + std::fmt::Debug>(engine: &Engine<P>) -> Phase {
        let core = engine.core();
        if engine.awaiting_start() || core.is_decided() {
            return Phase::Committing {
                height: engine.tip_height(),
            };
        }
        let step = match core.step() {
            CoreStep::Propose => Step::Propose,
            CoreStep::Prevote => Step::Prevote,
            CoreStep::Precommit => Step::Precommit,
        };
        Phase::Deciding {
            height: core.height(),
            round: core.round(),
            step,
        }
    }

    fn step(self) -> Step {
        match self {
            Phase::Deciding { step, .. } => step,
            Phase::Committing { .. } => Step::Commit,
        }
    }
}

/// Turns the phases observed over time into step durations.
#[derive(Debug, Default)]
pub struct StepClock {
    /// The phase last observed and when it was entered.
    current: Option<(Phase, Instant)>,
}

impl StepClock {
    /// Records that the engine is in `phase` at `now`; returns the steps
    /// that ended since the last observation, with their durations.
    pub fn observe(&mut self, phase: Phase, now: Instant) -> Vec<(Step, Duration)> {
        let mut ended = Vec::new();
        let Some((last, since)) = self.current else {
            // The first observation (at boot): the node enters it now.
            self.current = Some((phase, now));
            return ended;
        };
        if last == phase {
            return ended;
        }
        ended.push((last.step(), now.saturating_duration_since(since)));
        if let Phase::Deciding {
            height,
            round,
            step,
        } = phase
        {
            // The steps of this round before `step` that were passed through
            // within the input just handled took no time on this clock.
            let from = match last {
                Phase::Deciding {
                    height: h,
                    round: r,
                    step: s,
                } if h == height && r == round => s as usize + 1,
                _ => Step::Propose as usize,
            };
            let passed = Step::ALL.get(from..step as usize).unwrap_or_default();
            ended.extend(passed.iter().map(|s| (*s, Duration::ZERO)));
        }
        self.current = Some((phase, now));
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deciding(height: u64, round: u32, step: Step) -> Phase {
        Phase::Deciding {
            height,
            round,
            step,
        }
    }

    /// Feeds `(ms after t0, phase)` in order; returns every ended step.
    fn run(phases: &[(u64, Phase)]) -> Vec<(Step, u64)> {
        let t0 = Instant::now();
        let mut clock = StepClock::default();
        phases
            .iter()
            .flat_map(|(ms, p)| clock.observe(*p, t0 + Duration::from_millis(*ms)))
            .map(|(s, d)| (s, d.as_millis() as u64))
            .collect()
    }

    #[test]
    fn a_round_seen_step_by_step_times_each_step() {
        use Step::*;
        let got = run(&[
            (0, Phase::Committing { height: 4 }),
            (10, deciding(5, 0, Propose)),
            (110, deciding(5, 0, Prevote)),
            (150, deciding(5, 0, Precommit)),
            (150, deciding(5, 0, Precommit)),
            (200, Phase::Committing { height: 5 }),
            (400, deciding(6, 0, Propose)),
        ]);
        assert_eq!(
            got,
            [
                (Commit, 10),
                (Propose, 100),
                (Prevote, 40),
                (Precommit, 50),
                (Commit, 200)
            ]
        );
    }

    #[test]
    fn steps_passed_within_one_input_take_zero() {
        use Step::*;
        // A proposer proposes and prevotes while the height starts; a
        // quorum of prevotes and precommits can arrive in one input.
        let got = run(&[
            (0, Phase::Committing { height: 1 }),
            (20, deciding(2, 0, Prevote)),
            (70, Phase::Committing { height: 2 }),
        ]);
        assert_eq!(got, [(Commit, 20), (Propose, 0), (Prevote, 50)]);
        let got = run(&[
            (0, deciding(2, 0, Propose)),
            (30, deciding(2, 0, Precommit)),
        ]);
        assert_eq!(got, [(Propose, 30), (Prevote, 0)]);
    }

    #[test]
    fn a_later_round_ends_the_step_and_starts_at_propose() {
        use Step::*;
        let got = run(&[
            (0, deciding(3, 0, Prevote)),
            (500, deciding(3, 1, Propose)),
            (600, deciding(3, 2, Prevote)),
        ]);
        // Round 1's propose ended at the skip to round 2, whose propose
        // was passed through within that input.
        assert_eq!(got, [(Prevote, 500), (Propose, 100), (Propose, 0)]);
    }

    #[test]
    fn a_decision_from_any_step_ends_it_and_sync_only_times_commits() {
        use Step::*;
        let got = run(&[
            (0, deciding(7, 0, Propose)),
            (40, Phase::Committing { height: 7 }),
            // Heights 8 and 9 started and decided by synced blocks.
            (45, Phase::Committing { height: 8 }),
            (47, Phase::Committing { height: 9 }),
        ]);
        assert_eq!(got, [(Propose, 40), (Commit, 5), (Commit, 2)]);
    }
}
