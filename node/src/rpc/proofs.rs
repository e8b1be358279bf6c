//! The state keys (`state.proto`) of what a query returns, so a `prove`
//! request gets one proof per returned item, all of one height.
//!
//! A key is made from the item the answer carries, never from the request
//! alone: the client checks that the proof is for the item it was shown.

use super::api::NodeApi;
use agora_proto::v1 as pb;
use agora_validator::Address;
use agora_validator::ledger::merkle::leaves;
use tonic::Status;

fn addr(b: &[u8]) -> Result<Address, Status> {
    Address::from_slice(b).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The key of the chain-wide leaf.
pub fn globals() -> Vec<u8> {
    leaves::globals_key()
}

/// The key of an account.
pub fn account(a: &[u8]) -> Result<Vec<u8>, Status> {
    Ok(leaves::account_key(&addr(a)?))
}

/// The key of a validator.
pub fn validator(a: &[u8]) -> Result<Vec<u8>, Status> {
    Ok(leaves::validator_key(&addr(a)?))
}

/// The key of a validator's downtime record.
pub fn signing_info(a: &[u8]) -> Result<Vec<u8>, Status> {
    Ok(leaves::signing_info_key(&addr(a)?))
}

/// The key of a delegation.
pub fn delegation(d: &[u8], v: &[u8]) -> Result<Vec<u8>, Status> {
    Ok(leaves::delegation_key(&addr(d)?, &addr(v)?))
}

/// The key of an unbonding entry.
pub fn unbonding(e: &pb::UnbondingEntry) -> Result<Vec<u8>, Status> {
    Ok(leaves::unbonding_key(
        &addr(&e.delegator)?,
        &addr(&e.validator)?,
        e.id,
    ))
}

/// The key of a redelegation entry.
pub fn redelegation(e: &pb::RedelegationEntry) -> Result<Vec<u8>, Status> {
    Ok(leaves::redelegation_key(
        &addr(&e.delegator)?,
        &addr(&e.src_validator)?,
        &addr(&e.dst_validator)?,
        e.id,
    ))
}

/// The key of a slash event.
pub fn slash_event(e: &pb::SlashingEvent) -> Result<Vec<u8>, Status> {
    Ok(leaves::slash_event_key(e.id))
}

/// A proven page of a list: one proof per item, then the proof of the
/// leaf that counts the list (see `count_proof` in `services.proto`).
pub struct ProvenPage {
    /// The items' proofs, in order.
    pub items: Vec<pb::StateProof>,
    /// The counting leaf's proof.
    pub count: Option<pb::StateProof>,
}

/// When `prove` is set, proofs of the keys of `items` and of `count_key`
/// (on every page, an empty one too) from one call, so all are of one
/// height: what lets a client tell a complete list. Nothing otherwise.
pub fn of_page<T>(
    api: &impl NodeApi,
    prove: bool,
    items: &[T],
    key: impl Fn(&T) -> Result<Vec<u8>, Status>,
    count_key: Vec<u8>,
) -> Result<ProvenPage, Status> {
    let mut proofs = of_keys(api, prove, || {
        let mut keys = items.iter().map(key).collect::<Result<Vec<_>, _>>()?;
        keys.push(count_key);
        Ok(keys)
    })?;
    let count = proofs.pop();
    debug_assert!(!prove || proofs.len() == items.len(), "a proof per key");
    Ok(ProvenPage {
        items: proofs,
        count,
    })
}

/// The proof of one key when `prove` is set.
pub fn of_key(
    api: &impl NodeApi,
    prove: bool,
    key: impl FnOnce() -> Result<Vec<u8>, Status>,
) -> Result<Option<pb::StateProof>, Status> {
    Ok(of_keys(api, prove, || Ok(vec![key()?]))?.pop())
}

/// Proofs of several keys in order when `prove` is set (none otherwise):
/// one call, so all are of one height.
pub fn of_keys(
    api: &impl NodeApi,
    prove: bool,
    keys: impl FnOnce() -> Result<Vec<Vec<u8>>, Status>,
) -> Result<Vec<pb::StateProof>, Status> {
    if !prove {
        return Ok(Vec::new());
    }
    Ok(api.prove(&keys()?)?)
}
