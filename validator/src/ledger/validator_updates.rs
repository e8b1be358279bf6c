//! The active validator set: the top `max_validators` validators by bonded
//! tokens that are neither jailed nor tombstoned and hold at least one unit
//! of voting power; ties are broken by ascending address. The set computed at
//! the end of height h is in effect at height h+2 (DESIGN §6).

use super::params::Params;
use super::state::State;
use crate::types::Power;
use crate::validator_set::{Validator, ValidatorSet};

/// Voting power of `tokens` bonded tokens: `tokens / power_reduction`,
/// saturating at `u64::MAX` (genesis bounds the supply so it never does).
pub fn voting_power(tokens: u128, params: &Params) -> Power {
    let p = tokens / params.power_reduction.max(1);
    Power::try_from(p).unwrap_or(Power::MAX)
}

/// Computes the active set from the current state. `None` when no validator
/// qualifies; the caller then keeps the previous set, since a chain cannot
/// run without validators.
pub fn compute_active_set(state: &State) -> Option<ValidatorSet> {
    let mut candidates: Vec<_> = state
        .validators
        .values()
        .filter(|v| !v.jailed && !v.tombstoned && voting_power(v.tokens, &state.params) > 0)
        .collect();
    // Most tokens first; equal stake is ordered by address so every node agrees.
    candidates.sort_by(|a, b| b.tokens.cmp(&a.tokens).then(a.address.cmp(&b.address)));
    candidates.truncate(state.params.max_validators as usize);
    let validators: Vec<Validator> = candidates
        .into_iter()
        .map(|v| Validator {
            address: v.address,
            public_key: v.public_key.clone(),
            power: voting_power(v.tokens, &state.params),
        })
        .collect();
    ValidatorSet::new(validators).ok()
}
