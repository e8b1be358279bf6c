//! What a proven query asks the node, one page at a time, and the state
//! keys its proofs must prove: made here from the question and the items
//! the node listed, never taken from the node.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::Address;
use agora_validator::ledger::merkle::leaves;
use tonic::transport::Channel;

use super::ProveQueryError;
use crate::client::query::QueryKind;

/// One answer of the node: the keys asked about (each with a name for
/// messages), the proofs it returned in the same order, and the token of
/// the next page (empty when there is none, and for single items).
pub(super) struct Page {
    pub keys: Vec<(String, Vec<u8>)>,
    pub proofs: Vec<pb::StateProof>,
    pub next: Vec<u8>,
}

fn one(what: String, key: Vec<u8>, proof: Option<pb::StateProof>) -> Result<Page, ProveQueryError> {
    let proof = proof.ok_or_else(|| ProveQueryError::Answer(format!("no proof of {what}")))?;
    Ok(Page {
        keys: vec![(what, key)],
        proofs: vec![proof],
        next: Vec::new(),
    })
}

fn same(a: &[u8], b: &Address, what: &str) -> Result<(), ProveQueryError> {
    if a != b.0 {
        return Err(ProveQueryError::Answer(format!(
            "an item of another {what} ({}) was listed",
            hex::encode(a)
        )));
    }
    Ok(())
}

fn addr(b: &[u8]) -> Result<Address, ProveQueryError> {
    Address::from_slice(b).map_err(|e| ProveQueryError::Answer(e.to_string()))
}

fn listed(
    keys: Vec<(String, Vec<u8>)>,
    proofs: Vec<pb::StateProof>,
    page: Option<pb::PageResponse>,
) -> Result<Page, ProveQueryError> {
    if keys.len() != proofs.len() {
        return Err(ProveQueryError::Answer(format!(
            "{} items but {} proofs",
            keys.len(),
            proofs.len()
        )));
    }
    let next = page.map(|p| p.next_page_token).unwrap_or_default();
    Ok(Page { keys, proofs, next })
}

/// Asks the node one page of `q`, with `prove`, and pairs each proof with
/// the key it must prove. `page` is ignored by single-item queries.
pub(super) async fn ask(
    c: &mut QueryClient<Channel>,
    q: &QueryKind,
    page: pb::PageRequest,
) -> Result<Page, ProveQueryError> {
    let prove = true;
    match q {
        QueryKind::Account(a) => {
            let r = c
                .get_account(pb::GetAccountRequest {
                    address: a.0.to_vec(),
                    prove,
                })
                .await?;
            one(
                format!("account {a}"),
                leaves::account_key(a),
                r.into_inner().proof,
            )
        }
        QueryKind::Validator(a) => {
            let r = c
                .get_validator(pb::GetValidatorRequest {
                    address: a.0.to_vec(),
                    prove,
                })
                .await?
                .into_inner();
            // The record, then its downtime record, of one height.
            let keys = vec![
                (format!("validator {a}"), leaves::validator_key(a)),
                (
                    format!("downtime record of {a}"),
                    leaves::signing_info_key(a),
                ),
            ];
            let proofs = r.proof.into_iter().chain(r.signing_info_proof).collect();
            listed(keys, proofs, None)
        }
        QueryKind::Delegation {
            delegator: d,
            validator: v,
        } => {
            let req = pb::GetDelegationRequest {
                delegator: d.0.to_vec(),
                validator: v.0.to_vec(),
                prove,
            };
            let r = c.get_delegation(req).await?.into_inner();
            one(
                format!("delegation {d} → {v}"),
                leaves::delegation_key(d, v),
                r.proof,
            )
        }
        QueryKind::Rewards {
            delegator: d,
            validator: v,
        } => {
            let req = pb::GetRewardsRequest {
                delegator: d.0.to_vec(),
                validator: v.0.to_vec(),
                prove,
            };
            let r = c.get_rewards(req).await?.into_inner();
            // The order the node promises: the validator, then the delegation.
            let keys = vec![
                (format!("validator {v}"), leaves::validator_key(v)),
                (
                    format!("delegation {d} → {v}"),
                    leaves::delegation_key(d, v),
                ),
            ];
            listed(keys, r.proofs, None)
        }
        QueryKind::Supply => {
            let r = c.get_supply(pb::GetSupplyRequest { prove }).await?;
            one(
                "the chain-wide leaf".into(),
                leaves::globals_key(),
                r.into_inner().proof,
            )
        }
        QueryKind::Delegations(d) => ask_delegations(c, d, page).await,
        QueryKind::Unbonding(d) => ask_unbonding(c, d, page).await,
        QueryKind::Redelegations(d) => ask_redelegations(c, d, page).await,
        QueryKind::Slashes(v) => ask_slashes(c, v.as_ref(), page).await,
        _ => Err(ProveQueryError::Unsupported),
    }
}

/// A page of a delegator's delegations, each with the key of its leaf.
async fn ask_delegations(
    c: &mut QueryClient<Channel>,
    d: &Address,
    page: pb::PageRequest,
) -> Result<Page, ProveQueryError> {
    let req = pb::ListDelegationsRequest {
        delegator: d.0.to_vec(),
        page: Some(page),
        prove: true,
    };
    let r = c.list_delegations(req).await?.into_inner();
    let mut keys = Vec::new();
    for e in &r.delegations {
        same(&e.delegator, d, "delegator")?;
        let v = addr(&e.validator)?;
        keys.push((
            format!("delegation {d} → {v}"),
            leaves::delegation_key(d, &v),
        ));
    }
    listed(keys, r.proofs, r.page)
}

/// A page of a delegator's unbonding entries, each with the key of its leaf.
async fn ask_unbonding(
    c: &mut QueryClient<Channel>,
    d: &Address,
    page: pb::PageRequest,
) -> Result<Page, ProveQueryError> {
    let req = pb::ListUnbondingRequest {
        delegator: d.0.to_vec(),
        page: Some(page),
        prove: true,
    };
    let r = c.list_unbonding(req).await?.into_inner();
    let mut keys = Vec::new();
    for e in &r.entries {
        same(&e.delegator, d, "delegator")?;
        let v = addr(&e.validator)?;
        keys.push((
            format!("unbonding {d} from {v} #{}", e.id),
            leaves::unbonding_key(d, &v, e.id),
        ));
    }
    listed(keys, r.proofs, r.page)
}

/// A page of a delegator's redelegation entries, each with the key of its leaf.
async fn ask_redelegations(
    c: &mut QueryClient<Channel>,
    d: &Address,
    page: pb::PageRequest,
) -> Result<Page, ProveQueryError> {
    let req = pb::ListRedelegationsRequest {
        delegator: d.0.to_vec(),
        page: Some(page),
        prove: true,
    };
    let r = c.list_redelegations(req).await?.into_inner();
    let mut keys = Vec::new();
    for e in &r.entries {
        same(&e.delegator, d, "delegator")?;
        let (s, t) = (addr(&e.src_validator)?, addr(&e.dst_validator)?);
        let key = leaves::redelegation_key(d, &s, &t, e.id);
        keys.push((format!("redelegation {d} {s} → {t} #{}", e.id), key));
    }
    listed(keys, r.proofs, r.page)
}

/// A page of slash events (of one validator, if given), each with the key
/// of its leaf.
async fn ask_slashes(
    c: &mut QueryClient<Channel>,
    v: Option<&Address>,
    page: pb::PageRequest,
) -> Result<Page, ProveQueryError> {
    let validator = v.map(|v| v.0.to_vec()).unwrap_or_default();
    let req = pb::ListSlashingEventsRequest {
        validator,
        page: Some(page),
        prove: true,
    };
    let r = c.list_slashing_events(req).await?.into_inner();
    let mut keys = Vec::new();
    for e in &r.events {
        if let Some(v) = v {
            same(&e.validator, v, "validator")?;
        }
        keys.push((
            format!("slash event #{}", e.id),
            leaves::slash_event_key(e.id),
        ));
    }
    listed(keys, r.proofs, r.page)
}
