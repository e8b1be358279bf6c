//! The staking rules of DESIGN §8: Transfer, CreateValidator, Bond, Unbond,
//! Unjail, Redelegate, WithdrawRewards, EditValidator, and the completion
//! of matured unbonding and redelegation entries.
//!
//! Each operation is split in two: [`plan`] reads the state, checks every
//! rule and computes the final value of everything it will write, and
//! [`apply`] only writes those values. A failing transaction therefore never
//! leaves a half-applied change, and the mempool can run [`plan`] alone.
//!
//! Share arithmetic rounds down, i.e. in the chain's favour: a bond gets
//! `floor(amount · shares / tokens)` shares and an unbond gets
//! `floor(shares · tokens / total_shares)` tokens. The remainder stays in the
//! validator's tokens and benefits the delegators who remain, so no
//! operation can ever create tokens. Every operation that changes a
//! delegation's shares first settles its rewards (see `rewards`), paying
//! what it is owed to the delegator's account, and [`plan`] records what
//! the operation did for its receipt (`Done`). Unbond and Redelegate, which
//! take shares out of a validator, are in `unbond`.

use super::amount::mul_div_floor;
use super::done::Done;
use super::rewards;
use super::state::{
    Commission, Delegation, JailReason, RedelegationEntry, State, UnbondingEntry, ValidatorRecord,
};
use super::tx::{TxError, TxKind};
use crate::types::{Address, Height};
use unbond::{plan_redelegate, plan_unbond};

mod unbond;

/// Every value an operation writes, computed in advance by [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effect {
    /// Accounts with their new balances (nonces are the ledger's business).
    pub accounts: Vec<(Address, u128)>,
    /// Validators in their new form.
    pub validators: Vec<ValidatorRecord>,
    /// Delegations in their new form (zero shares deletes).
    pub delegations: Vec<((Address, Address), Delegation)>,
    /// A new unbonding entry (its id is assigned on apply).
    pub unbonding: Option<UnbondingEntry>,
    /// A new redelegation entry (its id is assigned on apply).
    pub redelegation: Option<RedelegationEntry>,
    /// What the receipt tells people (amounts the transaction did not carry).
    pub done: Done,
}

/// The token value of `shares` of a validator, rounded down.
pub fn shares_to_tokens(v: &ValidatorRecord, shares: u128) -> u128 {
    if v.shares == 0 {
        return 0;
    }
    // shares ≤ v.shares, so the quotient ≤ v.tokens and always fits.
    mul_div_floor(shares, v.tokens, v.shares).unwrap_or(0)
}

/// Shares that `amount` tokens buy from a validator, rounded down (the
/// first bond into an empty validator buys one share per token).
fn tokens_to_shares(v: &ValidatorRecord, amount: u128) -> Result<u128, TxError> {
    if v.shares == 0 {
        Ok(amount)
    } else if v.tokens == 0 {
        Err(TxError::ValidatorInsolvent(v.address))
    } else {
        mul_div_floor(amount, v.shares, v.tokens).ok_or(TxError::Overflow)
    }
}

fn validator<'a>(state: &'a State, a: &Address) -> Result<&'a ValidatorRecord, TxError> {
    state.validators.get(a).ok_or(TxError::UnknownValidator(*a))
}

/// Checks commission parameters given at registration.
pub fn check_commission(c: &Commission) -> Result<(), TxError> {
    if c.max_rate_bps > 10_000 {
        return Err(TxError::InvalidCommission(format!(
            "maximum rate {} bps is above 10000 (100%)",
            c.max_rate_bps
        )));
    }
    if c.rate_bps > c.max_rate_bps {
        return Err(TxError::CommissionAboveMax {
            rate: c.rate_bps,
            max: c.max_rate_bps,
        });
    }
    if c.max_change_bps > c.max_rate_bps {
        return Err(TxError::InvalidCommission(format!(
            "maximum change {} bps is above the maximum rate {} bps",
            c.max_change_bps, c.max_rate_bps
        )));
    }
    Ok(())
}

/// Adds to a balance, failing on overflow.
fn add(a: u128, b: u128) -> Result<u128, TxError> {
    a.checked_add(b).ok_or(TxError::Overflow)
}

/// Jails a validator whose operator's remaining self-bond (`own_shares`)
/// fell below the minimum: a validator must keep its own stake at risk.
fn jail_if_self_bond_low(
    state: &State,
    v: &mut ValidatorRecord,
    signer: Address,
    own_shares: u128,
    height: Height,
) {
    let p = &state.params;
    if signer == v.operator && !v.jailed && shares_to_tokens(v, own_shares) < p.min_self_bond {
        v.jailed = true;
        v.jail_reason = JailReason::SelfBond;
        v.jailed_until = height.saturating_add(p.jail_period);
    }
}

/// Checks an operation by `signer` at `height` against the state and
/// computes its effect, without changing anything. `fee` is what the signer
/// pays before the operation runs (the ledger deducts it from the state
/// before calling with 0; the mempool's check passes the fee itself).
pub fn plan(
    state: &State,
    signer: Address,
    kind: &TxKind,
    height: Height,
    fee: u128,
) -> Result<Effect, TxError> {
    let have = state.account(&signer).balance;
    let balance = have
        .checked_sub(fee)
        .ok_or(TxError::CannotPayFee { fee, have })?;
    match kind {
        TxKind::Transfer { to, amount } => plan_transfer(state, signer, *to, *amount, balance),
        TxKind::CreateValidator {
            consensus_key,
            proof_of_possession,
            self_bond,
            commission,
        } => {
            let new = NewValidator {
                consensus_key,
                proof_of_possession,
                self_bond: *self_bond,
                commission,
            };
            plan_create_validator(state, signer, &new, height, balance)
        }
        TxKind::Bond {
            validator: va,
            amount,
        } => plan_bond(state, signer, *va, *amount, balance),
        TxKind::Unbond {
            validator: va,
            shares,
        } => plan_unbond(state, signer, *va, *shares, height, balance),
        TxKind::Redelegate { src, dst, shares } => {
            plan_redelegate(state, signer, (*src, *dst), *shares, height, balance)
        }
        TxKind::WithdrawRewards { validator: va } => {
            plan_withdraw_rewards(state, signer, *va, balance)
        }
        TxKind::EditValidator {
            validator: va,
            rate_bps,
        } => plan_edit_validator(state, signer, *va, *rate_bps, height, balance),
        TxKind::Unjail { validator: va } => plan_unjail(state, signer, *va, height, balance),
    }
}

/// What the signer has left after spending `amount` of `balance`.
fn spend(balance: u128, amount: u128) -> Result<u128, TxError> {
    balance
        .checked_sub(amount)
        .ok_or(TxError::InsufficientBalance {
            need: amount,
            have: balance,
        })
}

fn plan_transfer(
    state: &State,
    signer: Address,
    to: Address,
    amount: u128,
    balance: u128,
) -> Result<Effect, TxError> {
    if amount == 0 {
        return Err(TxError::ZeroAmount);
    }
    let from_after = spend(balance, amount)?;
    if to == signer {
        return Ok(Effect {
            accounts: vec![(signer, balance)],
            ..Effect::default()
        });
    }
    let to_after = add(state.account(&to).balance, amount)?;
    Ok(Effect {
        accounts: vec![(signer, from_after), (to, to_after)],
        ..Effect::default()
    })
}

/// The fields of a create-validator transaction.
struct NewValidator<'a> {
    consensus_key: &'a crate::crypto::PublicKey,
    proof_of_possession: &'a crate::crypto::Signature,
    self_bond: u128,
    commission: &'a Commission,
}

fn plan_create_validator(
    state: &State,
    signer: Address,
    new: &NewValidator<'_>,
    height: Height,
    balance: u128,
) -> Result<Effect, TxError> {
    let address = crate::types::Address::of(new.consensus_key);
    if state.validators.contains_key(&address) {
        return Err(TxError::ValidatorExists(address));
    }
    let min = state.params.min_self_bond;
    if new.self_bond < min {
        return Err(TxError::SelfBondTooSmall {
            min,
            got: new.self_bond,
        });
    }
    check_commission(new.commission)?;
    let after = spend(balance, new.self_bond)?;
    // The pairing comes last: it is by far the most expensive check.
    new.consensus_key
        .verify_possession(new.proof_of_possession)
        .map_err(|_| TxError::BadProofOfPossession)?;
    Ok(Effect {
        accounts: vec![(signer, after)],
        validators: vec![ValidatorRecord {
            address,
            operator: signer,
            public_key: *new.consensus_key,
            tokens: new.self_bond,
            shares: new.self_bond,
            jailed: false,
            jailed_until: 0,
            tombstoned: false,
            jail_reason: JailReason::None,
            commission: Commission {
                changed_at: height,
                ..*new.commission
            },
            reward_per_share: 0,
            outstanding_rewards: 0,
        }],
        delegations: vec![(
            (signer, address),
            Delegation {
                shares: new.self_bond,
                reward_entry: 0,
            },
        )],
        done: Done::CreatedValidator {
            validator: address,
            self_bond: new.self_bond,
        },
        ..Effect::default()
    })
}

fn plan_bond(
    state: &State,
    signer: Address,
    va: Address,
    amount: u128,
    balance: u128,
) -> Result<Effect, TxError> {
    if amount == 0 {
        return Err(TxError::ZeroAmount);
    }
    let mut nv = validator(state, &va)?.clone();
    if nv.tombstoned {
        return Err(TxError::Tombstoned(va));
    }
    let after = spend(balance, amount)?;
    let shares = tokens_to_shares(&nv, amount)?;
    if shares == 0 {
        return Err(TxError::BondTooSmall { amount });
    }
    let key = (signer, va);
    let held = state.delegations.get(&key);
    let owed = rewards::settle(&mut nv, held);
    let d = Delegation {
        shares: add(held.map_or(0, |d| d.shares), shares)?,
        reward_entry: nv.reward_per_share,
    };
    nv.tokens = add(nv.tokens, amount)?;
    nv.shares = add(nv.shares, shares)?;
    Ok(Effect {
        accounts: vec![(signer, add(after, owed)?)],
        validators: vec![nv],
        delegations: vec![(key, d)],
        done: Done::Bonded {
            validator: va,
            amount,
            shares,
            rewards_paid: owed,
        },
        ..Effect::default()
    })
}

fn plan_withdraw_rewards(
    state: &State,
    signer: Address,
    va: Address,
    balance: u128,
) -> Result<Effect, TxError> {
    let mut nv = validator(state, &va)?.clone();
    let key = (signer, va);
    let d = state.delegations.get(&key).ok_or(TxError::NoDelegation {
        delegator: signer,
        validator: va,
    })?;
    let owed = rewards::settle(&mut nv, Some(d));
    let d = Delegation {
        shares: d.shares,
        reward_entry: nv.reward_per_share,
    };
    Ok(Effect {
        accounts: vec![(signer, add(balance, owed)?)],
        validators: vec![nv],
        delegations: vec![(key, d)],
        done: Done::Withdrew {
            validator: va,
            amount: owed,
        },
        ..Effect::default()
    })
}

fn plan_edit_validator(
    state: &State,
    signer: Address,
    va: Address,
    rate_bps: u32,
    height: Height,
    balance: u128,
) -> Result<Effect, TxError> {
    let mut nv = operated(state, signer, &va)?;
    let c = nv.commission;
    if rate_bps > c.max_rate_bps {
        return Err(TxError::CommissionAboveMax {
            rate: rate_bps,
            max: c.max_rate_bps,
        });
    }
    if rate_bps.abs_diff(c.rate_bps) > c.max_change_bps {
        return Err(TxError::CommissionChangeTooLarge {
            from: c.rate_bps,
            to: rate_bps,
            max_change: c.max_change_bps,
        });
    }
    let next = c.changed_at.saturating_add(state.params.commission_epoch);
    if height < next {
        return Err(TxError::CommissionTooSoon {
            changed_at: c.changed_at,
            next,
        });
    }
    nv.commission.rate_bps = rate_bps;
    nv.commission.changed_at = height;
    Ok(Effect {
        accounts: vec![(signer, balance)],
        validators: vec![nv],
        done: Done::CommissionSet {
            validator: va,
            rate_bps,
        },
        ..Effect::default()
    })
}

fn plan_unjail(
    state: &State,
    signer: Address,
    va: Address,
    height: Height,
    balance: u128,
) -> Result<Effect, TxError> {
    let mut nv = operated(state, signer, &va)?;
    if nv.tombstoned {
        return Err(TxError::Tombstoned(va));
    }
    if !nv.jailed {
        return Err(TxError::NotJailed(va));
    }
    if height < nv.jailed_until {
        return Err(TxError::StillJailed {
            until: nv.jailed_until,
            now: height,
        });
    }
    let own_tokens = shares_to_tokens(&nv, state.shares_of(signer, va));
    let min = state.params.min_self_bond;
    if own_tokens < min {
        return Err(TxError::SelfBondTooSmall {
            min,
            got: own_tokens,
        });
    }
    nv.jailed = false;
    nv.jailed_until = 0;
    nv.jail_reason = JailReason::None;
    Ok(Effect {
        accounts: vec![(signer, balance)],
        validators: vec![nv],
        done: Done::Unjailed { validator: va },
        ..Effect::default()
    })
}

/// The validator `va`, if `signer` is its operator.
fn operated(state: &State, signer: Address, va: &Address) -> Result<ValidatorRecord, TxError> {
    let v = validator(state, va)?;
    if v.operator != signer {
        return Err(TxError::NotOperator {
            validator: *va,
            operator: v.operator,
        });
    }
    Ok(v.clone())
}

/// Writes an effect computed by [`plan`] on the same state.
pub fn apply(state: &mut State, effect: Effect) {
    for (a, balance) in effect.accounts {
        state.accounts.entry(a).or_default().balance = balance;
    }
    for v in effect.validators {
        state.validators.insert(v.address, v);
    }
    for (k, d) in effect.delegations {
        if d.shares == 0 {
            state.delegations.remove(&k);
        } else {
            state.delegations.insert(k, d);
        }
    }
    if let Some(mut e) = effect.unbonding {
        e.id = state.next_unbonding_id;
        state.next_unbonding_id = state.next_unbonding_id.saturating_add(1);
        state.insert_unbonding(e);
    }
    if let Some(mut e) = effect.redelegation {
        e.id = state.next_redelegation_id;
        state.next_redelegation_id = state.next_redelegation_id.saturating_add(1);
        state.insert_redelegation(e);
    }
}

/// Drops redelegation entries whose completion height is `height` or
/// earlier: their stake is no longer slashable for the source validator.
pub fn mature_redelegations(state: &mut State, height: Height) {
    let last = Address([0xff; 20]);
    let due: Vec<_> = state
        .redelegation_maturity
        .range(..=(height, (last, last, last, u64::MAX)))
        .copied()
        .collect();
    for item in due {
        state.redelegation_maturity.remove(&item);
        state.redelegations.remove(&item.1);
    }
}

/// Pays out every unbonding entry whose completion height is `height`
/// (and, defensively, any earlier one still pending). Returns the entries paid.
pub fn mature_unbonding(state: &mut State, height: Height) -> Vec<UnbondingEntry> {
    let due: Vec<_> = state
        .maturity
        .range(..=(height, (Address([0xff; 20]), Address([0xff; 20]), u64::MAX)))
        .copied()
        .collect();
    let mut paid = Vec::with_capacity(due.len());
    for item in due {
        state.maturity.remove(&item);
        if let Some(e) = state.unbonding.remove(&item.1) {
            let acct = state.accounts.entry(e.delegator).or_default();
            // Cannot overflow: the total supply fits in u128 and the entry's
            // balance is part of it.
            acct.balance = acct.balance.saturating_add(e.balance);
            paid.push(e);
        }
    }
    paid
}
