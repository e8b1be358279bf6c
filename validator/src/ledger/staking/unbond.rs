//! Stake leaving a validator: Unbond (the tokens are paid after the
//! unbonding period) and Redelegate (they buy shares of another validator
//! at once, and stay slashable for the source until the same period ends).
//! Both take shares out the same way ([`withdraw_shares`]).

use super::{Effect, add, jail_if_self_bond_low, shares_to_tokens, tokens_to_shares, validator};
use crate::ledger::done::Done;
use crate::ledger::rewards;
use crate::ledger::state::{Delegation, RedelegationEntry, State, UnbondingEntry, ValidatorRecord};
use crate::ledger::tx::TxError;
use crate::types::{Address, Height};

/// Takes `shares` of `va` from the signer's delegation: the validator with
/// fewer shares and tokens, the new delegation, the tokens they were worth
/// and the rewards the delegation was owed.
struct Withdrawal {
    validator: ValidatorRecord,
    delegation: Delegation,
    tokens: u128,
    owed: u128,
}

fn withdraw_shares(
    state: &State,
    signer: Address,
    va: Address,
    shares: u128,
    height: Height,
) -> Result<Withdrawal, TxError> {
    if shares == 0 {
        return Err(TxError::ZeroAmount);
    }
    let mut nv = validator(state, &va)?.clone();
    let held = state
        .delegations
        .get(&(signer, va))
        .ok_or(TxError::NoDelegation {
            delegator: signer,
            validator: va,
        })?;
    let left = held
        .shares
        .checked_sub(shares)
        .ok_or(TxError::InsufficientShares {
            need: shares,
            have: held.shares,
        })?;
    let tokens = shares_to_tokens(&nv, shares);
    if tokens == 0 {
        return Err(TxError::UnbondTooSmall { shares });
    }
    let owed = rewards::settle(&mut nv, Some(held));
    // shares ≤ held ≤ nv.shares and tokens ≤ nv.tokens by the rounding above.
    nv.shares -= shares;
    nv.tokens -= tokens;
    jail_if_self_bond_low(state, &mut nv, signer, left, height);
    let delegation = Delegation {
        shares: left,
        reward_entry: nv.reward_per_share,
    };
    Ok(Withdrawal {
        validator: nv,
        delegation,
        tokens,
        owed,
    })
}

pub(super) fn plan_unbond(
    state: &State,
    signer: Address,
    va: Address,
    shares: u128,
    height: Height,
    balance: u128,
) -> Result<Effect, TxError> {
    let p = &state.params;
    let pending = state.entries_of_pair(signer, va).count();
    if pending >= p.max_unbonding_entries as usize {
        return Err(TxError::TooManyUnbondingEntries {
            max: p.max_unbonding_entries,
        });
    }
    let w = withdraw_shares(state, signer, va, shares, height)?;
    let completion_height = height.saturating_add(p.unbonding_period);
    Ok(Effect {
        accounts: vec![(signer, add(balance, w.owed)?)],
        validators: vec![w.validator],
        delegations: vec![((signer, va), w.delegation)],
        unbonding: Some(UnbondingEntry {
            delegator: signer,
            validator: va,
            id: 0,
            creation_height: height,
            completion_height,
            initial_balance: w.tokens,
            balance: w.tokens,
        }),
        redelegation: None,
        done: Done::Unbonding {
            validator: va,
            tokens: w.tokens,
            completion_height,
            rewards_paid: w.owed,
        },
    })
}

pub(super) fn plan_redelegate(
    state: &State,
    signer: Address,
    (src, dst): (Address, Address),
    shares: u128,
    height: Height,
    balance: u128,
) -> Result<Effect, TxError> {
    let p = &state.params;
    if src == dst {
        return Err(TxError::SameValidator(src));
    }
    let mut nd = validator(state, &dst)?.clone();
    if nd.tombstoned {
        return Err(TxError::Tombstoned(dst));
    }
    if state.is_redelegating_into(signer, src) {
        return Err(TxError::RedelegationInProgress { validator: src });
    }
    if state.redelegations_of(signer, src, dst).count() >= p.max_redelegation_entries as usize {
        return Err(TxError::TooManyRedelegationEntries {
            max: p.max_redelegation_entries,
        });
    }
    let w = withdraw_shares(state, signer, src, shares, height)?;
    let new_shares = tokens_to_shares(&nd, w.tokens)?;
    if new_shares == 0 {
        return Err(TxError::BondTooSmall { amount: w.tokens });
    }
    let held = state.delegations.get(&(signer, dst));
    let owed_dst = rewards::settle(&mut nd, held);
    nd.tokens = add(nd.tokens, w.tokens)?;
    nd.shares = add(nd.shares, new_shares)?;
    let d_dst = Delegation {
        shares: add(held.map_or(0, |d| d.shares), new_shares)?,
        reward_entry: nd.reward_per_share,
    };
    let completion_height = height.saturating_add(p.unbonding_period);
    let rewards_paid = add(w.owed, owed_dst)?;
    Ok(Effect {
        accounts: vec![(signer, add(balance, rewards_paid)?)],
        validators: vec![w.validator, nd],
        delegations: vec![((signer, src), w.delegation), ((signer, dst), d_dst)],
        unbonding: None,
        redelegation: Some(RedelegationEntry {
            delegator: signer,
            src,
            dst,
            id: 0,
            creation_height: height,
            completion_height,
            initial_balance: w.tokens,
            shares_dst: new_shares,
        }),
        done: Done::Redelegated {
            src,
            dst,
            tokens: w.tokens,
            shares_dst: new_shares,
            completion_height,
            rewards_paid,
        },
    })
}
