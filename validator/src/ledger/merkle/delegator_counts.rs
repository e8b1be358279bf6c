//! How many delegations, unbonding entries and redelegations an address
//! holds as delegator: the counts its account leaf carries (`AccountLeaf`
//! in `state.proto`), so that a client shown a proof of that leaf and of as
//! many distinct leaves of a kind knows the list it was given is complete.
//!
//! The counts are derived from the three maps whenever an account leaf is
//! written, never kept: nothing can drift. All three maps are keyed by
//! delegator first, so one delegator's entries are one contiguous range.

use std::collections::BTreeMap;

use super::super::state::State;
use crate::types::Address;

const LOW: Address = Address([0; 20]);

/// The leaves of the delegator kinds (0x03, 0x04, 0x05) one address holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelegatorCounts {
    /// Delegation leaves (0x03).
    pub delegations: u64,
    /// Unbonding entry leaves (0x04).
    pub unbonding_entries: u64,
    /// Redelegation entry leaves (0x05).
    pub redelegations: u64,
}

impl DelegatorCounts {
    /// The counts of delegator `d`: one search per map (an open range
    /// finds one end only), then its entries.
    pub fn of(s: &State, d: &Address) -> Self {
        let count = |n: usize| n as u64;
        Self {
            delegations: count(
                (s.delegations.range((*d, LOW)..))
                    .take_while(|(k, _)| k.0 == *d)
                    .count(),
            ),
            unbonding_entries: count(
                (s.unbonding.range((*d, LOW, 0)..))
                    .take_while(|(k, _)| k.0 == *d)
                    .count(),
            ),
            redelegations: count(
                (s.redelegations.range((*d, LOW, LOW, 0)..))
                    .take_while(|(k, _)| k.0 == *d)
                    .count(),
            ),
        }
    }

    /// Every delegator's counts, in one pass over each map (for building a
    /// state's leaves whole).
    pub fn all(s: &State) -> BTreeMap<Address, Self> {
        let mut out: BTreeMap<Address, Self> = BTreeMap::new();
        for (d, _) in s.delegations.keys() {
            out.entry(*d).or_default().delegations += 1;
        }
        for (d, _, _) in s.unbonding.keys() {
            out.entry(*d).or_default().unbonding_entries += 1;
        }
        for (d, _, _, _) in s.redelegations.keys() {
            out.entry(*d).or_default().redelegations += 1;
        }
        out
    }
}
