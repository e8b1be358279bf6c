//! This validator's standing in the ledger, told to its operator: whether
//! its key is in the active set, jailed (why, and from when an unjail is
//! accepted) or tombstoned, and how many precommits it missed in the
//! current signing window.
//!
//! A jailed key signs nothing the chain counts, and nothing else in the
//! node says so: the process runs, commits blocks and looks healthy while
//! the validator earns nothing. So every change is one log line (warn when
//! jailed, error when tombstoned, info otherwise) and the gauges
//! `agora_validator_active`, `agora_validator_jailed` and
//! `agora_validator_missed_blocks` are set after every commit. A downtime
//! jail is seen coming: a warning when the missed count passes half of
//! what the window allows (`Params::max_missed_per_window`; with the
//! defaults 25 of 100, the jail falls past 50).
//!
//! The standing is read from the ledger the engine just applied (one map
//! lookup and one search of the latest set per commit); nothing here
//! decides anything.

use agora_validator::ledger::{JailReason, Ledger};
use agora_validator::{Address, Height};
use tracing::{error, info, warn};

use crate::metrics::Metrics;

/// What the ledger says of one validator key at a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Standing {
    /// A validator record exists for the key.
    registered: bool,
    /// In the most recently computed active set.
    active: bool,
    jailed: bool,
    tombstoned: bool,
    /// First height an unjail is accepted (meaningful when jailed).
    jailed_until: Height,
    reason: JailReason,
    /// Precommits missing from the current signing window.
    missed: u64,
    /// Most precommits the window may miss without a jail
    /// (`Params::max_missed_per_window`).
    allowed: u64,
}

impl Standing {
    /// The standing of `me` in `ledger` (all false for a key that never
    /// registered: a full node, or a validator before `create-validator`).
    pub(super) fn of(ledger: &Ledger, me: &Address) -> Self {
        ledger.validator(me).map_or_else(Self::default, |v| Self {
            registered: true,
            active: v.active,
            jailed: v.jailed,
            tombstoned: v.tombstoned,
            jailed_until: v.jailed_until,
            reason: v.jail_reason,
            missed: v.missed_blocks,
            allowed: ledger.params().max_missed_per_window(),
        })
    }

    /// Past half of what the window allows: a downtime jail is coming if
    /// this goes on.
    fn missing_many(&self) -> bool {
        self.registered && !self.jailed && self.missed > self.allowed / 2
    }

    fn set_gauges(&self, metrics: &Metrics) {
        Metrics::set(&metrics.validator_active, u64::from(self.active));
        Metrics::set(&metrics.validator_jailed, u64::from(self.jailed));
        Metrics::set(&metrics.validator_missed_blocks, self.missed);
    }
}

/// A change of standing worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Tombstoned for double signing: it never validates again.
    Tombstoned,
    /// Jailed for `reason`; an unjail is accepted from `until`.
    Jailed { reason: JailReason, until: Height },
    /// No longer jailed (an unjail transaction went through).
    Unjailed,
    /// Entered the active set.
    Joined,
    /// Left the active set while not jailed (its power fell below the set's
    /// cut, or it unbonded).
    Left,
    /// Missed more than half of the precommits the window allows.
    MissingMany { missed: u64, allowed: u64 },
}

/// The changes from `before` to `after`, most serious first. Jailing and
/// tombstoning take the key out of the set; that is said once, as the
/// jail, not again as leaving.
pub(super) fn changes(before: &Standing, after: &Standing) -> Vec<Change> {
    let mut out = Vec::new();
    if after.tombstoned && !before.tombstoned {
        out.push(Change::Tombstoned);
    } else if after.jailed && !before.jailed {
        out.push(Change::Jailed {
            reason: after.reason,
            until: after.jailed_until,
        });
    } else if before.jailed && !after.jailed && after.registered {
        out.push(Change::Unjailed);
    }
    if after.active && !before.active {
        out.push(Change::Joined);
    } else if before.active && !after.active && !after.jailed {
        out.push(Change::Left);
    }
    if after.missing_many() && !before.missing_many() {
        out.push(Change::MissingMany {
            missed: after.missed,
            allowed: after.allowed,
        });
    }
    out
}

/// The standing last reported, and the key it is about.
#[derive(Debug)]
pub(super) struct Reported {
    me: Address,
    last: Standing,
}

impl Reported {
    /// Reports the standing at start: the gauges, and a line if the key
    /// is jailed or tombstoned already (an operator restarting a jailed
    /// validator learns it at once).
    pub(super) fn new(ledger: &Ledger, me: Address, metrics: &Metrics) -> Self {
        let mut r = Self {
            me,
            last: Standing::default(),
        };
        r.update(ledger, ledger.height(), metrics);
        r
    }

    /// Sets the gauges and logs what changed since the last call; `height`
    /// is the ledger's height, for the log.
    pub(super) fn update(&mut self, ledger: &Ledger, height: Height, metrics: &Metrics) {
        let now = Standing::of(ledger, &self.me);
        if now == self.last {
            return;
        }
        now.set_gauges(metrics);
        for c in changes(&self.last, &now) {
            log(c, height);
        }
        self.last = now;
    }
}

fn log(c: Change, height: Height) {
    match c {
        Change::Tombstoned => error!(
            height,
            "this validator is tombstoned for double signing: its key can never validate again (its delegators were slashed; they can redelegate)"
        ),
        Change::Jailed { reason, until } => warn!(
            height,
            reason = ?reason,
            unjail_from = until,
            "this validator is jailed: out of the active set, it earns nothing; from height {until}, fix the cause and send `agora tx unjail`"
        ),
        Change::Unjailed => info!(height, "this validator is no longer jailed"),
        Change::Joined => info!(height, "this validator is in the active set"),
        Change::MissingMany { missed, allowed } => warn!(
            height,
            missed,
            allowed,
            "this validator's precommits are missing from {missed} certificates of the signing window; more than {allowed} jails it (is it signing? see agora_signing_enabled, its peers and its clock)"
        ),
        Change::Left => warn!(
            height,
            "this validator left the active set (its power is below the set's cut, or it unbonded)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> Standing {
        Standing {
            registered: true,
            active: true,
            ..Standing::default()
        }
    }

    #[test]
    fn a_jail_is_said_once_as_the_jail_not_as_leaving_the_set() {
        let jailed = Standing {
            active: false,
            jailed: true,
            jailed_until: 700,
            reason: JailReason::Downtime,
            missed: 51,
            ..active()
        };
        assert_eq!(
            changes(&active(), &jailed),
            vec![Change::Jailed {
                reason: JailReason::Downtime,
                until: 700
            }]
        );
        // Still jailed at the next height: nothing new.
        assert_eq!(changes(&jailed, &jailed), vec![]);
        // Unjailed, then back in the set at the next set change.
        let unjailed = Standing {
            active: false,
            ..active()
        };
        assert_eq!(changes(&jailed, &unjailed), vec![Change::Unjailed]);
        assert_eq!(changes(&unjailed, &active()), vec![Change::Joined]);
    }

    #[test]
    fn tombstoning_outranks_the_jail_and_leaving_unjailed_is_said() {
        let tomb = Standing {
            active: false,
            jailed: true,
            tombstoned: true,
            reason: JailReason::DoubleSign,
            ..active()
        };
        assert_eq!(changes(&active(), &tomb), vec![Change::Tombstoned]);
        let out = Standing {
            active: false,
            ..active()
        };
        assert_eq!(changes(&active(), &out), vec![Change::Left]);
        // A key that never registered says nothing, and a first look at a
        // registered but inactive key says nothing either.
        assert_eq!(changes(&Standing::default(), &Standing::default()), vec![]);
        assert_eq!(changes(&Standing::default(), &out), vec![]);
    }

    #[test]
    fn missed_precommits_are_said_once_past_half_of_what_the_window_allows() {
        let a = Standing {
            allowed: 50,
            ..active()
        };
        let b = Standing { missed: 3, ..a };
        assert_ne!(a, b, "the gauges are refreshed");
        assert_eq!(changes(&a, &b), vec![], "a few misses say nothing");
        let at_half = Standing { missed: 25, ..a };
        assert_eq!(changes(&b, &at_half), vec![]);
        let past = Standing { missed: 26, ..a };
        let warned = vec![Change::MissingMany {
            missed: 26,
            allowed: 50,
        }];
        assert_eq!(changes(&at_half, &past), warned);
        // Once, not at every further miss; again after it recovered.
        assert_eq!(changes(&past, &Standing { missed: 40, ..a }), vec![]);
        assert_eq!(changes(&past, &at_half), vec![]);
        assert_eq!(changes(&at_half, &past), warned);
        // A jailed key is told about its jail, not its misses.
        let jailed = Standing {
            missed: 51,
            jailed: true,
            active: false,
            reason: JailReason::Downtime,
            ..a
        };
        assert_eq!(
            changes(&past, &jailed),
            vec![Change::Jailed {
                reason: JailReason::Downtime,
                until: 0
            }]
        );
    }
}
