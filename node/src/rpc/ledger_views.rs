//! Answers to the ledger half of [`NodeApi`](super::NodeApi), in protobuf
//! terms, with page tokens: an address for validators and delegations,
//! validator address ‖ entry id (u64) for unbonding entries, source ‖
//! destination ‖ entry id for redelegation entries, and the event id (u64)
//! for slashes. A page with no next token is the last one (the server may
//! return fewer items than asked for: it caps every page, proven ones more).

use super::ApiError;
use super::api::Page;
use agora_proto::v1 as pb;
use agora_validator::Address;
use agora_validator::ledger::Ledger;
use agora_validator::ledger::merkle::ProveError;

fn addr(bytes: &[u8]) -> Option<Address> {
    Address::from_slice(bytes).ok()
}

fn next_token<T>(items: &[T], limit: usize, key: impl Fn(&T) -> Vec<u8>) -> Vec<u8> {
    match items.last() {
        Some(last) if items.len() >= limit => key(last),
        _ => Vec::new(),
    }
}

/// One validator.
pub fn validator(l: &Ledger, a: &[u8]) -> Option<pb::ValidatorRecord> {
    l.validator(&addr(a)?).map(|v| v.to_proto())
}

/// A page of validators after the address `after`.
pub fn validators(l: &Ledger, after: &[u8], limit: usize) -> Page<pb::ValidatorRecord> {
    let views = l.validators(addr(after), limit);
    let next = next_token(&views, limit, |v| v.address.0.to_vec());
    (views.iter().map(|v| v.to_proto()).collect(), next)
}

/// An account (zero balance and nonce for an address never seen), with
/// `pending_nonce` its committed nonce: the host raises it past the
/// account's pending transactions, which the ledger does not see.
pub fn account(l: &Ledger, a: &[u8]) -> pb::GetAccountResponse {
    let acct = addr(a).map(|a| l.account(&a)).unwrap_or_default();
    pb::GetAccountResponse {
        proof: Default::default(),
        address: a.to_vec(),
        balance: acct.balance.to_string(),
        nonce: acct.nonce,
        pending_nonce: acct.nonce,
    }
}

/// One delegation.
pub fn delegation_of(l: &Ledger, d: &[u8], v: &[u8]) -> Option<pb::Delegation> {
    l.delegation(&addr(d)?, &addr(v)?).map(|d| d.to_proto())
}

/// A page of a delegator's delegations after the validator address `after`.
pub fn delegations(l: &Ledger, d: &[u8], after: &[u8], limit: usize) -> Page<pb::Delegation> {
    let Some(d) = addr(d) else {
        return (Vec::new(), Vec::new());
    };
    let views = l.delegations(&d, addr(after), limit);
    let next = next_token(&views, limit, |v| v.validator.0.to_vec());
    (views.iter().map(|d| d.to_proto()).collect(), next)
}

/// A page of a delegator's unbonding entries after `validator ‖ id`.
pub fn unbonding(l: &Ledger, d: &[u8], after: &[u8], limit: usize) -> Page<pb::UnbondingEntry> {
    let Some(d) = addr(d) else {
        return (Vec::new(), Vec::new());
    };
    let start = (after.len() == 28)
        .then(|| {
            let v = addr(&after[..20])?;
            let id = u64::from_be_bytes(after[20..].try_into().ok()?);
            Some((v, id))
        })
        .flatten();
    let entries = l.unbonding(&d, start, limit);
    let next = next_token(&entries, limit, |e| {
        let mut t = e.validator.0.to_vec();
        t.extend_from_slice(&e.id.to_be_bytes());
        t
    });
    (entries.iter().map(|e| e.to_proto()).collect(), next)
}

/// A page of slash events (of one validator, or all when `v` is empty) after event id `after`.
pub fn slashes(l: &Ledger, v: &[u8], after: &[u8], limit: usize) -> Page<pb::SlashingEvent> {
    let filter = if v.is_empty() { None } else { addr(v) };
    if !v.is_empty() && filter.is_none() {
        return (Vec::new(), Vec::new());
    }
    let start = <[u8; 8]>::try_from(after).ok().map(u64::from_be_bytes);
    let events = l.slash_events(filter.as_ref(), start, limit);
    let next = next_token(&events, limit, |e| e.id.to_be_bytes().to_vec());
    (events.iter().map(|e| e.to_proto()).collect(), next)
}

/// The rewards a delegation has accrued, after the latest block.
pub fn rewards(l: &Ledger, d: &[u8], v: &[u8]) -> Option<pb::GetRewardsResponse> {
    let r = l.rewards(&addr(d)?, &addr(v)?)?;
    Some(pb::GetRewardsResponse {
        delegator: d.to_vec(),
        validator: v.to_vec(),
        rewards: r.to_string(),
        height: l.height(),
        proofs: Vec::new(),
    })
}

/// A page of a delegator's redelegation entries after `src ‖ dst ‖ id`.
pub fn redelegations(
    l: &Ledger,
    d: &[u8],
    after: &[u8],
    limit: usize,
) -> Page<pb::RedelegationEntry> {
    let Some(d) = addr(d) else {
        return (Vec::new(), Vec::new());
    };
    let start = (after.len() == 48)
        .then(|| {
            let s = addr(&after[..20])?;
            let t = addr(&after[20..40])?;
            let id = u64::from_be_bytes(after[40..].try_into().ok()?);
            Some((s, t, id))
        })
        .flatten();
    let entries = l.redelegations(&d, start, limit);
    let next = next_token(&entries, limit, |e| {
        let mut t = e.src.0.to_vec();
        t.extend_from_slice(&e.dst.0);
        t.extend_from_slice(&e.id.to_be_bytes());
        t
    });
    (entries.iter().map(|e| e.to_proto()).collect(), next)
}

/// Proofs of `keys` in the latest state (the one the other answers are read
/// from). Its app hash is carried by the next header, which the client
/// waits for: proving an older state instead would let a listed item be
/// "absent" from its own proof.
pub fn prove(l: &Ledger, keys: &[Vec<u8>]) -> Result<Vec<pb::StateProof>, ApiError> {
    let height = l.height();
    keys.iter()
        .map(|k| {
            l.prove(k, height).map_err(|e| match e {
                ProveError::NotProvable { .. } => ApiError::FailedPrecondition(e.to_string()),
            })
        })
        .collect()
}
