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
/// messages), the proofs it returned in the same order, the token of the
/// next page (empty when there is none, and for single items), and for a
/// list the key and proof of the leaf that counts it.
pub(super) struct Page {
    pub keys: Vec<(String, Vec<u8>)>,
    pub proofs: Vec<pb::StateProof>,
    pub next: Vec<u8>,
    pub count: Option<Counter>,
}

/// The leaf that counts a list (named, keyed) and its proof.
pub(super) type Counter = ((String, Vec<u8>), pb::StateProof);

fn one(what: String, key: Vec<u8>, proof: Option<pb::StateProof>) -> Result<Page, ProveQueryError> {
    let proof = proof.ok_or_else(|| ProveQueryError::Answer(format!("no proof of {what}")))?;
    Ok(Page {
        keys: vec![(what, key)],
        proofs: vec![proof],
        next: Vec::new(),
        count: None,
    })
}

/// The leaf that counts a list, named for messages: the delegator's
/// account, or the chain-wide leaf for slash events.
fn count_of(
    key: (String, Vec<u8>),
    proof: Option<pb::StateProof>,
) -> Result<Option<Counter>, ProveQueryError> {
    let proof = proof.ok_or_else(|| {
        ProveQueryError::Answer(format!("no proof of {}, which counts the list", key.0))
    })?;
    Ok(Some((key, proof)))
}

fn delegator_count(d: &Address) -> (String, Vec<u8>) {
    (format!("account {d}"), leaves::account_key(d))
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
    Ok(Page {
        keys,
        proofs,
        next,
        count: None,
    })
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
        QueryKind::Validator(a) => ask_validator(c, a).await,
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
        } => ask_rewards(c, d, v).await,
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
        QueryKind::Slashes(_) => ask_slashes(c, page).await,
        _ => Err(ProveQueryError::Unsupported),
    }
}

/// A validator's record, then its downtime record, of one height.
async fn ask_validator(c: &mut QueryClient<Channel>, a: &Address) -> Result<Page, ProveQueryError> {
    let r = c
        .get_validator(pb::GetValidatorRequest {
            address: a.0.to_vec(),
            prove: true,
        })
        .await?
        .into_inner();
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

/// The validator's and the delegation's leaves, in the order the node
/// promises, of one height: what the rewards owed are computed from.
async fn ask_rewards(
    c: &mut QueryClient<Channel>,
    d: &Address,
    v: &Address,
) -> Result<Page, ProveQueryError> {
    let req = pb::GetRewardsRequest {
        delegator: d.0.to_vec(),
        validator: v.0.to_vec(),
        prove: true,
    };
    let r = c.get_rewards(req).await?.into_inner();
    let keys = vec![
        (format!("validator {v}"), leaves::validator_key(v)),
        (
            format!("delegation {d} → {v}"),
            leaves::delegation_key(d, v),
        ),
    ];
    listed(keys, r.proofs, None)
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
    Ok(Page {
        count: count_of(delegator_count(d), r.count_proof)?,
        ..listed(keys, r.proofs, r.page)?
    })
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
    Ok(Page {
        count: count_of(delegator_count(d), r.count_proof)?,
        ..listed(keys, r.proofs, r.page)?
    })
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
    Ok(Page {
        count: count_of(delegator_count(d), r.count_proof)?,
        ..listed(keys, r.proofs, r.page)?
    })
}

/// A page of every slash event, each with the key of its leaf. Asked
/// unfiltered even for one validator's: only the whole list can be shown
/// complete (its ids are 0 to the count - 1); the caller keeps the
/// validator's from the proven leaves.
async fn ask_slashes(
    c: &mut QueryClient<Channel>,
    page: pb::PageRequest,
) -> Result<Page, ProveQueryError> {
    let req = pb::ListSlashingEventsRequest {
        validator: Vec::new(),
        page: Some(page),
        prove: true,
    };
    let r = c.list_slashing_events(req).await?.into_inner();
    let keys = r
        .events
        .iter()
        .map(|e| {
            (
                format!("slash event #{}", e.id),
                leaves::slash_event_key(e.id),
            )
        })
        .collect();
    let counter = ("the chain-wide leaf".to_owned(), leaves::globals_key());
    Ok(Page {
        count: count_of(counter, r.count_proof)?,
        ..listed(keys, r.proofs, r.page)?
    })
}
