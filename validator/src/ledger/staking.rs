//! The staking rules of DESIGN §8: Transfer, CreateValidator, Bond, Unbond,
//! Unjail, and the payout of matured unbonding entries.
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
//! operation can ever create tokens.

use super::amount::mul_div_floor;
use super::state::{Account, State, UnbondingEntry, ValidatorRecord};
use super::tx::{TxError, TxKind};
use crate::types::{Address, Height};

/// Every value an operation writes, computed in advance by [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effect {
    /// Accounts with their new balances (nonces are the ledger's business).
    pub accounts: Vec<(Address, u128)>,
    /// Validators in their new form.
    pub validators: Vec<ValidatorRecord>,
    /// Delegations with their new share count (zero deletes).
    pub delegations: Vec<((Address, Address), u128)>,
    /// A new unbonding entry (its id is assigned on apply).
    pub unbonding: Option<UnbondingEntry>,
}

/// The token value of `shares` of a validator, rounded down.
pub fn shares_to_tokens(v: &ValidatorRecord, shares: u128) -> u128 {
    if v.shares == 0 {
        return 0;
    }
    // shares ≤ v.shares, so the quotient ≤ v.tokens and always fits.
    mul_div_floor(shares, v.tokens, v.shares).unwrap_or(0)
}

fn validator<'a>(state: &'a State, a: &Address) -> Result<&'a ValidatorRecord, TxError> {
    state.validators.get(a).ok_or(TxError::UnknownValidator(*a))
}

/// Checks an operation by `signer` at `height` against the state and
/// computes its effect, without changing anything.
pub fn plan(
    state: &State,
    signer: Address,
    kind: &TxKind,
    height: Height,
) -> Result<Effect, TxError> {
    let p = &state.params;
    let balance = state.account(&signer).balance;
    match kind {
        TxKind::Transfer { to, amount } => {
            let amount = *amount;
            if amount == 0 {
                return Err(TxError::ZeroAmount);
            }
            let from_after = balance
                .checked_sub(amount)
                .ok_or(TxError::InsufficientBalance {
                    need: amount,
                    have: balance,
                })?;
            if *to == signer {
                return Ok(Effect {
                    accounts: vec![(signer, balance)],
                    ..Effect::default()
                });
            }
            let to_after = state
                .account(to)
                .balance
                .checked_add(amount)
                .ok_or(TxError::Overflow)?;
            Ok(Effect {
                accounts: vec![(signer, from_after), (*to, to_after)],
                ..Effect::default()
            })
        }
        TxKind::CreateValidator {
            consensus_key,
            proof_of_possession,
            self_bond,
        } => {
            let address = Address::of(consensus_key);
            if state.validators.contains_key(&address) {
                return Err(TxError::ValidatorExists(address));
            }
            if *self_bond < p.min_self_bond {
                return Err(TxError::SelfBondTooSmall {
                    min: p.min_self_bond,
                    got: *self_bond,
                });
            }
            let after = balance
                .checked_sub(*self_bond)
                .ok_or(TxError::InsufficientBalance {
                    need: *self_bond,
                    have: balance,
                })?;
            // The pairing comes last: it is by far the most expensive check.
            consensus_key
                .verify_possession(proof_of_possession)
                .map_err(|_| TxError::BadProofOfPossession)?;
            Ok(Effect {
                accounts: vec![(signer, after)],
                validators: vec![ValidatorRecord {
                    address,
                    operator: signer,
                    public_key: consensus_key.clone(),
                    tokens: *self_bond,
                    shares: *self_bond,
                    jailed: false,
                    jailed_until: 0,
                    tombstoned: false,
                }],
                delegations: vec![((signer, address), *self_bond)],
                unbonding: None,
            })
        }
        TxKind::Bond {
            validator: va,
            amount,
        } => {
            let amount = *amount;
            if amount == 0 {
                return Err(TxError::ZeroAmount);
            }
            let v = validator(state, va)?;
            if v.tombstoned {
                return Err(TxError::Tombstoned(*va));
            }
            let after = balance
                .checked_sub(amount)
                .ok_or(TxError::InsufficientBalance {
                    need: amount,
                    have: balance,
                })?;
            let shares = if v.shares == 0 {
                amount
            } else if v.tokens == 0 {
                return Err(TxError::ValidatorInsolvent(*va));
            } else {
                mul_div_floor(amount, v.shares, v.tokens).ok_or(TxError::Overflow)?
            };
            if shares == 0 {
                return Err(TxError::BondTooSmall { amount });
            }
            let mut nv = v.clone();
            nv.tokens = nv.tokens.checked_add(amount).ok_or(TxError::Overflow)?;
            nv.shares = nv.shares.checked_add(shares).ok_or(TxError::Overflow)?;
            let key = (signer, *va);
            let held = state.delegations.get(&key).copied().unwrap_or(0);
            Ok(Effect {
                accounts: vec![(signer, after)],
                validators: vec![nv],
                delegations: vec![(key, held.checked_add(shares).ok_or(TxError::Overflow)?)],
                unbonding: None,
            })
        }
        TxKind::Unbond {
            validator: va,
            shares,
        } => {
            let shares = *shares;
            if shares == 0 {
                return Err(TxError::ZeroAmount);
            }
            let v = validator(state, va)?;
            let key = (signer, *va);
            let held = state
                .delegations
                .get(&key)
                .copied()
                .ok_or(TxError::NoDelegation {
                    delegator: signer,
                    validator: *va,
                })?;
            let left = held
                .checked_sub(shares)
                .ok_or(TxError::InsufficientShares {
                    need: shares,
                    have: held,
                })?;
            let pending = state.entries_of_pair(signer, *va).count();
            if pending >= p.max_unbonding_entries as usize {
                return Err(TxError::TooManyUnbondingEntries {
                    max: p.max_unbonding_entries,
                });
            }
            let tokens = shares_to_tokens(v, shares);
            if tokens == 0 {
                return Err(TxError::UnbondTooSmall { shares });
            }
            let mut nv = v.clone();
            // shares ≤ held ≤ v.shares and tokens ≤ v.tokens by the rounding above.
            nv.shares = nv.shares.checked_sub(shares).ok_or(TxError::Overflow)?;
            nv.tokens = nv.tokens.checked_sub(tokens).ok_or(TxError::Overflow)?;
            // An operator whose self-bond falls below the minimum is jailed:
            // a validator must keep its own stake at risk.
            if signer == nv.operator && !nv.jailed && shares_to_tokens(&nv, left) < p.min_self_bond
            {
                nv.jailed = true;
                nv.jailed_until = height.saturating_add(p.jail_period);
            }
            Ok(Effect {
                accounts: Vec::new(),
                validators: vec![nv],
                delegations: vec![(key, left)],
                unbonding: Some(UnbondingEntry {
                    delegator: signer,
                    validator: *va,
                    id: 0,
                    creation_height: height,
                    completion_height: height.saturating_add(p.unbonding_period),
                    initial_balance: tokens,
                    balance: tokens,
                }),
            })
        }
        TxKind::Unjail { validator: va } => {
            let v = validator(state, va)?;
            if v.operator != signer {
                return Err(TxError::NotOperator {
                    validator: *va,
                    operator: v.operator,
                });
            }
            if v.tombstoned {
                return Err(TxError::Tombstoned(*va));
            }
            if !v.jailed {
                return Err(TxError::NotJailed(*va));
            }
            if height < v.jailed_until {
                return Err(TxError::StillJailed {
                    until: v.jailed_until,
                    now: height,
                });
            }
            let own = state.delegations.get(&(signer, *va)).copied().unwrap_or(0);
            let own_tokens = shares_to_tokens(v, own);
            if own_tokens < p.min_self_bond {
                return Err(TxError::SelfBondTooSmall {
                    min: p.min_self_bond,
                    got: own_tokens,
                });
            }
            let mut nv = v.clone();
            nv.jailed = false;
            nv.jailed_until = 0;
            Ok(Effect {
                validators: vec![nv],
                ..Effect::default()
            })
        }
    }
}

/// Writes an effect computed by [`plan`] on the same state.
pub fn apply(state: &mut State, effect: Effect) {
    for (a, balance) in effect.accounts {
        state
            .accounts
            .entry(a)
            .or_insert_with(Account::default)
            .balance = balance;
    }
    for v in effect.validators {
        state.validators.insert(v.address, v);
    }
    for (k, shares) in effect.delegations {
        if shares == 0 {
            state.delegations.remove(&k);
        } else {
            state.delegations.insert(k, shares);
        }
    }
    if let Some(mut e) = effect.unbonding {
        e.id = state.next_unbonding_id;
        state.next_unbonding_id = state.next_unbonding_id.saturating_add(1);
        state.insert_unbonding(e);
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
