//! The demo's staking-economics steps (DESIGN §8, "Rewards, fees,
//! commission, redelegation, downtime"): a delegator's rewards grow and are
//! withdrawn to the token; a validator stopped for longer than the signing
//! window is jailed for downtime, slashed 0.01% (its delegators with it),
//! restarted and unjailed by its operator; stake redelegated away from the
//! double signer around its infraction is slashed at the destination.
//!
//! One submodule per step: [`rewards`] (step 4), [`downtime`] (step 5) and
//! [`redelegation`] (step 8), whose redelegations [`mover`] makes on its own
//! thread during step 6. This module holds what the testnet must be
//! generated with for them.

/// Signing window of the demo's genesis, in certificates. More than 30
/// misses jail a validator: short enough for a quick step, long enough that
/// node3's restart into double-signing mode does not. Its evidence usually
/// lands a few heights after the restart, but once 23: with a window of 40
/// node3 was jailed for downtime (more than 20 misses) before that. 30
/// misses match the mover's budget ([`mover::MOVER_BOND`] /
/// [`mover::SLICE`] heights).
pub(super) const SIGNED_BLOCKS_WINDOW: u64 = 60;
/// Downtime jail of the demo's genesis, in heights.
pub(super) const DOWNTIME_JAIL_HEIGHTS: u64 = 30;
/// The delegator that redelegates away from the double signer.
pub(super) const MOVER: usize = 3;

mod downtime;
mod mover;
mod redelegation;
mod rewards;

pub(super) use mover::Moves;
