//! Block rewards, fees and commission (DESIGN §8, "Rewards, fees,
//! commission"): who is paid what at the end of a block, and how a
//! delegator's share is computed without touching every delegator.
//!
//! # The rule
//!
//! The pool of block h is `block_reward` (minted) plus the fees its
//! transactions paid. `floor(pool · proposer_bonus / 10_000)` goes to the
//! proposer of h; the rest goes to the validators whose precommits are in the
//! certificate block h carries (of block h−1, over the set of h−1), each
//! `floor(rest · power / signed_power)`. The validator's commission,
//! `floor(amount · rate / 10_000)`, is paid to its operator's account at
//! once; the remainder is credited to its delegators.
//!
//! # Delegators without per-delegator work (F1, with shares)
//!
//! Every delegator of a validator holds shares, and slashing changes the
//! validator's tokens, never its shares, so "pro rata to stake" is exactly
//! "pro rata to shares". Each validator therefore keeps one cumulative
//! number, `reward_per_share` (scaled by [`REWARD_SCALE`]), raised by
//! `floor(credit · SCALE / shares)` at each credit, and each delegation
//! remembers the value at its last settlement (`reward_entry`). What a
//! delegation is owed is `floor(shares · (reward_per_share − entry) / SCALE)`.
//! A slash lowers the validator's power and so every later credit, and
//! leaves rewards already accrued untouched: slashed stake earns nothing
//! afterwards and earlier rewards are kept. Settlement happens whenever a
//! delegation's shares change (bond, unbond, redelegate, slash of a
//! redelegation) and on `WithdrawRewards`; the owed amount is paid to the
//! delegator's account.
//!
//! # Rounding
//!
//! Every division rounds down, so no one is paid more than its exact share:
//! the sum paid to a validator's delegators never exceeds what was credited
//! to it (`outstanding_rewards` never goes negative), and what division
//! leaves over stays unclaimed — in `outstanding_rewards`, or in the
//! community pool for the pro-rata split among signers and for a pool that
//! has no recipient. No operation creates tokens.

use super::amount::{AmountError, fraction_bps, mul_div_floor, parse_amount};
use super::state::{Delegation, State, ValidatorRecord};
use crate::types::{Address, Power};
use agora_proto::v1 as pb;

/// Fixed-point scale of `reward_per_share`.
pub const REWARD_SCALE: u128 = 1_000_000_000_000_000_000;

/// What a delegation is owed: `floor(shares · (rps − entry) / SCALE)`,
/// never more than the validator holds for its delegators.
pub fn pending(v: &ValidatorRecord, d: &Delegation) -> u128 {
    owed(
        d.shares,
        d.reward_entry,
        v.reward_per_share,
        v.outstanding_rewards,
    )
}

/// [`pending`]'s formula over the four numbers it reads.
fn owed(shares: u128, reward_entry: u128, reward_per_share: u128, outstanding: u128) -> u128 {
    // Wrapping difference: the cumulative value may wrap, the accrued span cannot.
    let delta = reward_per_share.wrapping_sub(reward_entry);
    mul_div_floor(shares, delta, REWARD_SCALE)
        .unwrap_or(u128::MAX)
        .min(outstanding)
}

/// A leaf field that is not an amount.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct LeafAmountError {
    /// The leaf field.
    pub field: &'static str,
    /// Why it is not an amount.
    pub source: AmountError,
}

/// [`pending`] from the values of a validator's and a delegation's state
/// leaves (`state.proto`), for a light client that proved both at one
/// height: a delegator checks what it is owed against a certified app
/// hash, trusting no node for the figure.
pub fn pending_from_leaves(
    v: &pb::ValidatorLeaf,
    d: &pb::DelegationLeaf,
) -> Result<u128, LeafAmountError> {
    let read = |field, s: &str| parse_amount(s).map_err(|source| LeafAmountError { field, source });
    Ok(owed(
        read("delegation shares", &d.shares)?,
        read("delegation reward_entry", &d.reward_entry)?,
        read("validator reward_per_share", &v.reward_per_share)?,
        read("validator outstanding_rewards", &v.outstanding_rewards)?,
    ))
}

/// Settles a delegation in a planned change: returns what it is owed and
/// takes that from the validator's outstanding rewards. The caller pays it
/// to the delegator and sets the new `reward_entry` to
/// `v.reward_per_share`.
pub fn settle(v: &mut ValidatorRecord, d: Option<&Delegation>) -> u128 {
    let owed = d.map_or(0, |d| pending(v, d));
    // owed ≤ outstanding by `pending`.
    v.outstanding_rewards -= owed;
    owed
}

/// Credits `amount` to a validator: commission to its operator's account,
/// the rest to its delegators. Returns the part nobody can receive (the
/// validator has no shares), which the caller puts in the community pool.
fn credit(state: &mut State, validator: Address, amount: u128) -> u128 {
    let Some(v) = state.validators.get_mut(&validator) else {
        return amount;
    };
    let commission = fraction_bps(amount, v.commission.rate_bps);
    let to_delegators = amount - commission;
    let operator = v.operator;
    let mut unassigned = 0;
    if to_delegators > 0 {
        match mul_div_floor(to_delegators, REWARD_SCALE, v.shares) {
            Some(inc) if v.shares > 0 => {
                v.reward_per_share = v.reward_per_share.wrapping_add(inc);
                // Bounded by the supply, which fits in u128.
                v.outstanding_rewards = v.outstanding_rewards.saturating_add(to_delegators);
            }
            _ => unassigned = to_delegators,
        }
    }
    if commission > 0 {
        let acct = state.accounts.entry(operator).or_default();
        acct.balance = acct.balance.saturating_add(commission);
    }
    unassigned
}

/// Pays the pool of one block: the proposer's bonus, then the signers'
/// pro-rata part. `signers` are the validators in the block's certificate
/// with their power in the certified set. Rounding remainders, and the
/// whole pool when nobody can receive it, go to the community pool.
/// Returns what each validator was credited (commission included), in the
/// order credited.
pub fn distribute(
    state: &mut State,
    pool: u128,
    proposer: Option<Address>,
    signers: &[(Address, Power)],
) -> Vec<(Address, u128)> {
    let mut paid = Vec::with_capacity(signers.len() + 1);
    if pool == 0 {
        return paid;
    }
    let signed_power: u128 = signers.iter().map(|(_, p)| u128::from(*p)).sum();
    let proposer = proposer.filter(|p| state.validators.contains_key(p));
    let (bonus, rest) = match (proposer, signed_power) {
        (None, 0) => {
            state.community_pool = state.community_pool.saturating_add(pool);
            return paid;
        }
        // No certificate (block 1): the proposer takes the whole pool.
        (Some(_), 0) => (pool, 0),
        (None, _) => (0, pool),
        (Some(_), _) => {
            let bonus = fraction_bps(pool, state.params.proposer_bonus_bps);
            (bonus, pool - bonus)
        }
    };
    let mut leftover = rest;
    for (addr, power) in signers {
        // power ≤ signed_power, so the share ≤ rest and always fits.
        let share = mul_div_floor(rest, u128::from(*power), signed_power).unwrap_or(0);
        leftover -= share;
        let unassigned = credit(state, *addr, share);
        leftover += unassigned;
        paid.push((*addr, share - unassigned));
    }
    if let Some(p) = proposer {
        let unassigned = credit(state, p, bonus);
        leftover += unassigned;
        paid.push((p, bonus - unassigned));
    }
    state.community_pool = state.community_pool.saturating_add(leftover);
    paid
}
