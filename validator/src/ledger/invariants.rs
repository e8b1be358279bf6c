//! The invariants that tie the state's collections together, checked
//! whenever a state is rebuilt from bytes that came from outside the
//! ledger: a snapshot ([`super::snapshot::decode`]) or the stored leaves
//! ([`super::merkle::decode`]). One function for both, so the two ways of
//! restoring a state accept exactly the same states.
//!
//! The decoders check the form of each item (lengths, order, canonical
//! encodings); this module checks what only the whole state can tell.

use super::state::State;
use crate::types::{Address, Height};
use std::collections::BTreeMap;

/// A state whose parts disagree (tampered or corrupt input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvariantError(pub String);

fn bad(s: impl Into<String>) -> InvariantError {
    InvariantError(s.into())
}

/// Checks every cross-collection invariant of a restored state, its
/// derived indices included.
pub(crate) fn check(s: &State) -> Result<(), InvariantError> {
    s.params.validate().map_err(|e| bad(e.to_string()))?;
    check_validators(s)?;
    check_delegations(s)?;
    check_entries(s)?;
    check_delegators_have_accounts(s)?;
    check_signing(s)?;
    check_slash_events(s)?;
    check_sets(s)?;
    let supply = s.supply().ok_or_else(|| bad("supply overflow"))?;
    if !supply.balances_out() {
        return Err(bad(
            "balances do not add up to the genesis supply plus the minted rewards",
        ));
    }
    debug_assert_eq!(
        s.maturity.len(),
        s.unbonding.len(),
        "maturity index rebuilt"
    );
    debug_assert_eq!(
        s.redelegation_maturity.len(),
        s.redelegations.len(),
        "redelegation maturity index rebuilt"
    );
    Ok(())
}

fn check_validators(s: &State) -> Result<(), InvariantError> {
    for (a, v) in s.validators.iter() {
        if v.address != *a || Address::of(&v.public_key) != *a {
            return Err(bad(format!(
                "validator {a}: address does not match its key"
            )));
        }
        if v.tombstoned && !v.jailed {
            return Err(bad(format!("validator {a}: tombstoned but not jailed")));
        }
        super::staking::check_commission(&v.commission)
            .map_err(|e| bad(format!("validator {a}: {e}")))?;
    }
    Ok(())
}

/// Every delegator (of a delegation, an unbonding or a redelegation
/// entry) has an account: its leaf carries the delegator's counts
/// (`merkle::delegator_counts`), which a proven list relies on.
fn check_delegators_have_accounts(s: &State) -> Result<(), InvariantError> {
    let delegators = (s.delegations.keys().map(|k| k.0))
        .chain(s.unbonding.keys().map(|k| k.0))
        .chain(s.redelegations.keys().map(|k| k.0));
    for d in delegators {
        if !s.accounts.contains_key(&d) {
            return Err(bad(format!("delegator {d} has no account")));
        }
    }
    Ok(())
}

/// Every delegation is of a known validator and not empty, and a
/// validator's shares are the sum of its delegations'.
fn check_delegations(s: &State) -> Result<(), InvariantError> {
    let mut sums: BTreeMap<Address, u128> = BTreeMap::new();
    for ((d, v), del) in s.delegations.iter() {
        if del.shares == 0 || !s.validators.contains_key(v) {
            return Err(bad(format!(
                "delegation {d} → {v}: empty or of an unknown validator"
            )));
        }
        let sum = sums.entry(*v).or_insert(0);
        *sum = sum
            .checked_add(del.shares)
            .ok_or_else(|| bad("shares overflow"))?;
    }
    for v in s.validators.values() {
        if sums.get(&v.address).copied().unwrap_or(0) != v.shares {
            return Err(bad(format!("shares of {} do not add up", v.address)));
        }
    }
    Ok(())
}

/// Unbonding and redelegation entries: filed under their own key, ids
/// already handed out, not yet complete, of known validators.
fn check_entries(s: &State) -> Result<(), InvariantError> {
    let pending = |completion: Height| completion > s.height;
    for (k, e) in s.unbonding.iter() {
        if *k != (e.delegator, e.validator, e.id)
            || e.balance > e.initial_balance
            || e.id >= s.next_unbonding_id
            || !pending(e.completion_height)
            || !s.validators.contains_key(&e.validator)
        {
            return Err(bad(format!("impossible unbonding entry {}", e.id)));
        }
    }
    for (k, e) in s.redelegations.iter() {
        if *k != (e.delegator, e.src, e.dst, e.id)
            || e.id >= s.next_redelegation_id
            || !pending(e.completion_height)
            || !s.validators.contains_key(&e.src)
            || !s.validators.contains_key(&e.dst)
        {
            return Err(bad(format!("impossible redelegation entry {}", e.id)));
        }
    }
    Ok(())
}

/// Each missed-precommit window has the window's size and counts its bits.
fn check_signing(s: &State) -> Result<(), InvariantError> {
    let window = s.params.signed_blocks_window;
    let bytes = usize::try_from(window.div_ceil(8)).map_err(|_| bad("window"))?;
    for (a, info) in s.signing.iter() {
        let set_bits: u64 = info.bits.iter().map(|b| u64::from(b.count_ones())).sum();
        if info.bits.len() != bytes
            || info.missed != set_bits
            || info.missed > window.min(info.counted)
        {
            return Err(bad(format!("signing window of {a} does not add up")));
        }
    }
    Ok(())
}

/// Slash events are numbered by position and their parts add up.
fn check_slash_events(s: &State) -> Result<(), InvariantError> {
    for (i, e) in s.slash_events.iter().enumerate() {
        let parts = e
            .from_bonded
            .checked_add(e.from_unbonding)
            .and_then(|a| a.checked_add(e.from_redelegations));
        if e.id != i as u64 || parts != Some(e.amount) {
            return Err(bad(format!("slash event {i} does not add up")));
        }
    }
    Ok(())
}

/// Every set names known validators by their keys, and the set two
/// heights ahead (computed by the last block) is there.
fn check_sets(s: &State) -> Result<(), InvariantError> {
    for (h, set) in s.validator_sets.iter() {
        for m in set.validators() {
            if s.validators.get(&m.address).map(|r| r.public_key) != Some(m.public_key) {
                return Err(bad(format!(
                    "the validator set of height {h} names an unknown validator {}",
                    m.address
                )));
            }
        }
    }
    if !s.validator_sets.contains_key(&s.height.saturating_add(2)) {
        return Err(bad("the validator set two heights ahead is missing"));
    }
    Ok(())
}
