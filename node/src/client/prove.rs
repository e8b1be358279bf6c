//! `agora query … --prove`: state answers checked against the chain rather
//! than believed. The node returns each value with a Merkle proof against
//! the app hash of height H; the app hash comes from the header of H + 1,
//! which the light client verifies from the genesis set (or a trusted
//! checkpoint), so nothing the node says is trusted beyond that root.
//!
//! What is shown is decoded from the proven leaf bytes, not from the node's
//! other answer fields. A list's proofs prove each item shown; they do not
//! prove that no item was left out.

use std::time::{Duration, Instant};

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::Address;
use agora_validator::block::header_hash;
use agora_validator::crypto::Hash;
use agora_validator::ledger::merkle::leaves::{self, LeafKind};
use agora_validator::ledger::merkle::proof::{ProofError, verify};
use agora_validator::light_client::{LightError, Trusted, verify_skipping};
use agora_validator::types::ChainId;
use agora_validator::validator_set::ValidatorSet;
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::query::QueryKind;

/// Longest wait for the header that certifies the proven height (the node
/// proves its latest state, so this is the next block).
const HEADER_DEADLINE: Duration = Duration::from_secs(30);
/// How often the node's height is polled meanwhile.
const POLL: Duration = Duration::from_millis(100);

/// What the light client starts from.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The genesis file's chain id and validator set.
    Genesis(ChainId, ValidatorSet),
    /// A block hash the user trusts, at a height.
    Checkpoint(u64, Hash),
}

/// Why a proven query failed.
#[derive(Debug, thiserror::Error)]
pub enum ProveQueryError {
    /// The query has no state leaf to prove.
    #[error(
        "--prove works with: account, validator, delegation, unbonding, slashes, redelegations"
    )]
    Unsupported,
    /// The node refused or failed.
    #[error("{0}")]
    Node(String),
    /// The answer does not fit the question.
    #[error("the node's answer is unusable: {0}")]
    Answer(String),
    /// The certifying header did not come.
    #[error("the node did not commit height {0} within {HEADER_DEADLINE:?}")]
    NoHeader(u64),
    /// The certifying header did not verify.
    #[error("the header certifying the proof did not verify: {0}")]
    Light(#[from] LightError),
    /// A proof does not show what the node claimed.
    #[error("the proof of {what} does not verify: {source}")]
    Proof {
        /// The item.
        what: String,
        /// Why.
        source: ProofError,
    },
}

impl From<tonic::Status> for ProveQueryError {
    fn from(s: tonic::Status) -> Self {
        Self::Node(super::status_text(&s))
    }
}

/// Keys the node was asked about (each with a name for messages) and the
/// proofs it returned, in the same order.
struct Answer {
    keys: Vec<(String, Vec<u8>)>,
    proofs: Vec<pb::StateProof>,
}

fn one(
    what: String,
    key: Vec<u8>,
    proof: Option<pb::StateProof>,
) -> Result<Answer, ProveQueryError> {
    let proof = proof.ok_or_else(|| ProveQueryError::Answer(format!("no proof of {what}")))?;
    Ok(Answer {
        keys: vec![(what, key)],
        proofs: vec![proof],
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
) -> Result<Answer, ProveQueryError> {
    if keys.len() != proofs.len() {
        return Err(ProveQueryError::Answer(format!(
            "{} items but {} proofs",
            keys.len(),
            proofs.len()
        )));
    }
    Ok(Answer { keys, proofs })
}

/// Asks the node, with `prove`, and pairs each proof with the key it must
/// prove (made here from the question and the items shown).
async fn ask(c: &mut QueryClient<Channel>, q: &QueryKind) -> Result<Answer, ProveQueryError> {
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
                .await?;
            one(
                format!("validator {a}"),
                leaves::validator_key(a),
                r.into_inner().proof,
            )
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
        QueryKind::Unbonding(d) => ask_unbonding(c, d).await,
        QueryKind::Redelegations(d) => ask_redelegations(c, d).await,
        QueryKind::Slashes(v) => ask_slashes(c, v.as_ref()).await,
        _ => Err(ProveQueryError::Unsupported),
    }
}

/// A delegator's unbonding entries, each with the key of its leaf.
async fn ask_unbonding(
    c: &mut QueryClient<Channel>,
    d: &Address,
) -> Result<Answer, ProveQueryError> {
    let req = pb::ListUnbondingRequest {
        delegator: d.0.to_vec(),
        page: None,
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
    listed(keys, r.proofs)
}

/// A delegator's redelegation entries, each with the key of its leaf.
async fn ask_redelegations(
    c: &mut QueryClient<Channel>,
    d: &Address,
) -> Result<Answer, ProveQueryError> {
    let req = pb::ListRedelegationsRequest {
        delegator: d.0.to_vec(),
        page: None,
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
    listed(keys, r.proofs)
}

/// Slash events (of one validator, if given), each with the key of its leaf.
async fn ask_slashes(
    c: &mut QueryClient<Channel>,
    v: Option<&Address>,
) -> Result<Answer, ProveQueryError> {
    let validator = v.map(|v| v.0.to_vec()).unwrap_or_default();
    let req = pb::ListSlashingEventsRequest {
        validator,
        page: None,
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
    listed(keys, r.proofs)
}

/// Waits until the node has committed `height`.
async fn wait_for(c: &mut QueryClient<Channel>, height: u64) -> Result<(), ProveQueryError> {
    let deadline = Instant::now() + HEADER_DEADLINE;
    loop {
        let latest = c
            .get_status(pb::GetStatusRequest {})
            .await?
            .into_inner()
            .latest_height;
        if latest >= height {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ProveQueryError::NoHeader(height));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The verified header of `target` and the heights the light client
/// verified on the way.
async fn certified_header(
    c: QueryClient<Channel>,
    trust: Trust,
    target: u64,
) -> Result<(pb::Header, Vec<u64>), ProveQueryError> {
    let mut c = c;
    let (chain, trusted) = match trust {
        Trust::Genesis(chain, set) => (chain, Trusted::from_genesis(set)),
        Trust::Checkpoint(h, hash) => {
            if h > target {
                return Err(ProveQueryError::Answer(format!(
                    "the checkpoint (height {h}) is above the certifying header ({target}): use an older one"
                )));
            }
            let b = super::light_audit::fetch(&mut c, h)
                .await
                .map_err(|message| LightError::Fetch { height: h, message })?;
            let chain =
                ChainId::new(b.header.chain_id.clone()).map_err(|e| LightError::Header {
                    height: h,
                    what: format!("chain_id: {e}"),
                })?;
            let t = Trusted::from_checkpoint(&b, &hash)?;
            if h == target {
                return Ok((b.header, Vec::new()));
            }
            (chain, t)
        }
    };
    let handle = tokio::runtime::Handle::current();
    // The pure bisection asks for blocks one at a time: it runs on a
    // blocking thread and keeps the target's header, which it verified.
    let (header, path) = tokio::task::spawn_blocking(move || {
        let mut target_header = None;
        let (t, path) = verify_skipping(&chain, trusted, target, |h| {
            let b = handle.block_on(super::light_audit::fetch(&mut c, h))?;
            if h == target {
                target_header = Some(b.header.clone());
            }
            Ok::<_, String>(b)
        })?;
        let header = target_header.filter(|hd| header_hash(hd) == t.block_hash);
        Ok::<_, LightError>((header, path))
    })
    .await
    .map_err(|e| ProveQueryError::Answer(format!("the verifier thread failed: {e}")))??;
    let header =
        header.ok_or_else(|| ProveQueryError::Answer("the target header was not kept".into()))?;
    Ok((header, path))
}

/// Runs a proven query: the proven values and how they were proven.
pub async fn run(channel: Channel, q: &QueryKind, trust: Trust) -> Result<Value, ProveQueryError> {
    let trusted = match &trust {
        Trust::Genesis(..) => "the genesis file".to_string(),
        Trust::Checkpoint(h, hash) => format!("checkpoint {h}:{}", hex::encode(hash)),
    };
    let mut c = QueryClient::new(channel).max_decoding_message_size(32 * 1024 * 1024);
    let answer = ask(&mut c, q).await?;
    let Some(height) = answer.proofs.first().map(|p| p.height) else {
        return Ok(json!({"proven": {"items": 0, "trusted": trusted}, "values": []}));
    };
    if answer.proofs.iter().any(|p| p.height != height) {
        return Err(ProveQueryError::Answer(
            "the proofs are of different heights".into(),
        ));
    }
    wait_for(&mut c, height + 1).await?;
    let (header, path) = certified_header(c, trust, height + 1).await?;
    let app_hash: Hash = header.app_hash.as_slice().try_into().map_err(|_| {
        ProveQueryError::Answer("the certified header's app hash is not 32 bytes".into())
    })?;
    let mut values = Vec::with_capacity(answer.proofs.len());
    for ((what, key), p) in answer.keys.iter().zip(&answer.proofs) {
        verify(p, key, &app_hash).map_err(|source| ProveQueryError::Proof {
            what: what.clone(),
            source,
        })?;
        values.push(json!({
            "item": what,
            "value": if p.present { leaf_json(key, &p.value) } else { Value::Null },
        }));
    }
    Ok(json!({
        "proven": {
            "height": height,
            "app_hash": hex::encode(app_hash),
            "certified_by_height": height + 1,
            "certified_block_hash": hex::encode(header_hash(&header)),
            "trusted": trusted,
            "light_client_heights": path,
        },
        "values": values,
    }))
}

/// A proven leaf, decoded for people (its bytes verified already).
fn leaf_json(key: &[u8], value: &[u8]) -> Value {
    let kind = key.first().copied();
    let decoded = match kind {
        Some(k) if k == LeafKind::Account as u8 => {
            pb::AccountLeaf::decode(value).map(|l| json!({"balance": l.balance, "nonce": l.nonce}))
        }
        Some(k) if k == LeafKind::Validator as u8 => pb::ValidatorLeaf::decode(value).map(|l| {
            json!({
                "operator": hex::encode(&l.operator),
                "tokens": l.tokens,
                "shares": l.shares,
                "jailed": l.jailed,
                "tombstoned": l.tombstoned,
                "commission_rate_bps": l.commission_rate_bps,
                "outstanding_rewards": l.outstanding_rewards,
            })
        }),
        Some(k) if k == LeafKind::Delegation as u8 => {
            pb::DelegationLeaf::decode(value).map(|l| json!({"shares": l.shares}))
        }
        Some(k) if k == LeafKind::Unbonding as u8 => pb::UnbondingLeaf::decode(value).map(|l| {
            json!({
                "creation_height": l.creation_height,
                "completion_height": l.completion_height,
                "initial_balance": l.initial_balance,
                "balance": l.balance,
            })
        }),
        Some(k) if k == LeafKind::Redelegation as u8 => {
            pb::RedelegationLeaf::decode(value).map(|l| {
                json!({
                    "creation_height": l.creation_height,
                    "completion_height": l.completion_height,
                    "initial_balance": l.initial_balance,
                    "shares_dst": l.shares_dst,
                })
            })
        }
        Some(k) if k == LeafKind::SlashEvent as u8 => pb::SlashEventLeaf::decode(value).map(|l| {
            json!({
                "validator": hex::encode(&l.validator),
                "infraction_height": l.infraction_height,
                "slash_height": l.slash_height,
                "amount": l.amount,
                "fraction_bps": l.fraction_bps,
                "tombstoned": l.tombstoned,
            })
        }),
        _ => return json!({"bytes": hex::encode(value)}),
    };
    decoded.unwrap_or_else(|e| json!({"undecodable": e.to_string(), "bytes": hex::encode(value)}))
}
