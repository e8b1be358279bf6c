//! A read-only copy of a ledger kept up to date with the leaf changes of
//! the blocks the original executed: O(changes) per block instead of a
//! whole copy, for the ledger the node's gRPC services read.

use super::super::state::State;
use super::decode::LeafError;
use super::decode::{AddError, Leaf, addr, amount, parse_key, parse_with, u64_at, value_error};
use super::leaves::{self, LeafChange, LeafKind};
use crate::crypto::PublicKey;
use crate::types::Address;

/// Applies one block's changes (from `EndBlock::state_changes`) to `state`.
pub(crate) fn apply(state: &mut State, changes: &[LeafChange]) -> Result<(), LeafError> {
    for (k, v) in changes {
        let r = match v {
            Some(v) => put(state, k, v),
            None => remove(state, k),
        };
        r.map_err(|e| value_error(k, e))?;
    }
    // This copy never moves a tree of its own: what it touched is not news.
    leaves::clear_changes(state);
    Ok(())
}

/// The key with these bytes if a validator of `s` holds it. The changes
/// come from the ledger this copy follows, and every block rewrites the
/// validators' records and the next set; decoding their keys again was a
/// subgroup check per key per block (a quarter of a catching-up node's CPU).
fn known_key(s: &State, bytes: &[u8]) -> Option<PublicKey> {
    let r = s.validators.get(&Address::of_key_bytes(bytes))?;
    (r.public_key.to_bytes().as_slice() == bytes).then_some(r.public_key)
}

fn put(s: &mut State, k: &[u8], v: &[u8]) -> Result<(), AddError> {
    let leaf = parse_with(k, v, &|b| known_key(s, b))?;
    match leaf {
        Leaf::Globals(g) => {
            s.height = g.height;
            s.genesis_supply = amount("genesis_supply", &g.genesis_supply)?;
            s.slashed_total = amount("slashed_total", &g.slashed_total)?;
            s.minted_total = amount("minted_total", &g.minted_total)?;
            s.community_pool = amount("community_pool", &g.community_pool)?;
            s.next_unbonding_id = g.next_unbonding_id;
            s.next_redelegation_id = g.next_redelegation_id;
        }
        Leaf::Account(a, acct) => {
            s.accounts.insert(a, acct);
        }
        Leaf::Validator(r) => {
            s.validators.insert(r.address, r);
        }
        Leaf::Delegation(key, d) => {
            s.delegations.insert(key, d);
        }
        Leaf::Unbonding(e) => {
            let key = (e.delegator, e.validator, e.id);
            if let Some(old) = s.unbonding.get(&key) {
                s.maturity.remove(&(old.completion_height, key));
            }
            s.insert_unbonding(e);
        }
        Leaf::Redelegation(e) => {
            let key = (e.delegator, e.src, e.dst, e.id);
            if let Some(old) = s.redelegations.get(&key) {
                s.redelegation_maturity
                    .remove(&(old.completion_height, key));
            }
            s.redelegation_maturity.insert((e.completion_height, key));
            s.redelegations.insert(key, e);
        }
        Leaf::SlashEvent(e) => match usize::try_from(e.id) {
            Ok(i) if i < s.slash_events.len() => s.slash_events[i] = e,
            Ok(i) if i == s.slash_events.len() => s.slash_events.push(e),
            _ => {
                return Err(AddError::Value(format!(
                    "slash event {} out of order",
                    e.id
                )));
            }
        },
        Leaf::ValidatorSet(h, set) => {
            s.validator_sets.insert(h, set);
        }
        Leaf::SigningInfo(a, i) => {
            s.signing.insert(a, i);
        }
    }
    Ok(())
}

fn remove(s: &mut State, k: &[u8]) -> Result<(), AddError> {
    let (kind, f) = parse_key(k)?;
    match kind {
        LeafKind::Globals | LeafKind::SlashEvent => {
            return Err(AddError::Value("this leaf is never removed".into()));
        }
        LeafKind::Account => {
            s.accounts.remove(&addr(f));
        }
        LeafKind::Validator => {
            s.validators.remove(&addr(f));
        }
        LeafKind::Delegation => {
            s.delegations.remove(&(addr(f), addr(&f[20..])));
        }
        LeafKind::Unbonding => {
            let key = (addr(f), addr(&f[20..]), u64_at(&f[40..]));
            if let Some(old) = s.unbonding.remove(&key) {
                s.maturity.remove(&(old.completion_height, key));
            }
        }
        LeafKind::Redelegation => {
            let key = (addr(f), addr(&f[20..]), addr(&f[40..]), u64_at(&f[60..]));
            if let Some(old) = s.redelegations.remove(&key) {
                s.redelegation_maturity
                    .remove(&(old.completion_height, key));
            }
        }
        LeafKind::ValidatorSet => {
            s.validator_sets.remove(&u64_at(f));
        }
        LeafKind::SigningInfo => {
            s.signing.remove(&addr(f));
        }
    }
    Ok(())
}
