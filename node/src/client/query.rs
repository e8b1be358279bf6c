//! `agora query ...`: read chain state from a node and render it as JSON.

use super::pages;
use super::tx::status_name;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::Address;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// One query.
#[derive(Debug, Clone)]
pub enum QueryKind {
    /// Chain id, latest height and hash.
    Status,
    /// A block by height.
    Block(u64),
    /// A commit certificate by height.
    Cert(u64),
    /// The validator set of a height (0: latest).
    Validators(u64),
    /// One validator's staking record.
    Validator(Address),
    /// One delegation.
    Delegation {
        /// The account that delegated.
        delegator: Address,
        /// The validator it delegated to.
        validator: Address,
    },
    /// A delegator's delegations.
    Delegations(Address),
    /// A delegator's unbonding entries.
    Unbonding(Address),
    /// Slashing events (of one validator, or all).
    Slashes(Option<Address>),
    /// An account.
    Account(Address),
    /// A transaction by hash.
    Tx([u8; 32]),
    /// A delegation's accrued rewards.
    Rewards {
        /// The account whose delegation earned the rewards.
        delegator: Address,
        /// The validator the stake is delegated to.
        validator: Address,
    },
    /// A delegator's pending redelegations.
    Redelegations(Address),
    /// Where every token is.
    Supply,
}

/// A header as JSON, every field shown.
pub(crate) fn header_json(h: &pb::Header) -> Value {
    json!({
        "chain_id": h.chain_id,
        "height": h.height,
        "proposal_round": h.proposal_round,
        "parent_hash": hex::encode(&h.parent_hash),
        "proposer": hex::encode(&h.proposer_address),
        "vrf_proof": hex::encode(&h.vrf_proof),
        "txs_hash": hex::encode(&h.txs_hash),
        "evidence_hash": hex::encode(&h.evidence_hash),
        "last_commit_hash": hex::encode(&h.last_commit_hash),
        "app_hash": hex::encode(&h.app_hash),
        "validators_hash": hex::encode(&h.validators_hash),
        "next_validators_hash": hex::encode(&h.next_validators_hash),
        "time_ms": h.time_ms,
    })
}

/// A commit certificate as JSON.
pub(crate) fn cert_json(c: &pb::CommitCertificate) -> Value {
    json!({
        "height": c.height,
        "round": c.round,
        "block_hash": hex::encode(&c.block_hash),
        "signers": hex::encode(&c.signers),
        "aggregate_signature": hex::encode(&c.aggregate_signature),
    })
}

fn validator_json(v: &pb::ValidatorRecord) -> Value {
    json!({
        "address": hex::encode(&v.address),
        "operator": hex::encode(&v.operator),
        "consensus_public_key": hex::encode(&v.consensus_public_key),
        "tokens": v.tokens,
        "shares": v.shares,
        "power": v.power,
        "jailed": v.jailed,
        "tombstoned": v.tombstoned,
        "jailed_until": v.jailed_until,
        "active": v.active,
        "jail_reason": jail_reason_name(v.jail_reason),
        "commission_rate_bps": v.commission_rate_bps,
        "commission_max_rate_bps": v.commission_max_rate_bps,
        "commission_max_change_bps": v.commission_max_change_bps,
        "commission_changed_at": v.commission_changed_at,
        "missed_blocks": v.missed_blocks,
        "window_counted": v.window_counted,
        "outstanding_rewards": v.outstanding_rewards,
    })
}

/// Human name of a jail reason.
pub fn jail_reason_name(r: i32) -> &'static str {
    match pb::JailReason::try_from(r) {
        Ok(pb::JailReason::SelfBond) => "self_bond",
        Ok(pb::JailReason::Downtime) => "downtime",
        Ok(pb::JailReason::DoubleSign) => "double_sign",
        _ => "",
    }
}

/// Human name of a slash reason.
pub fn slash_reason_name(r: i32) -> &'static str {
    match pb::SlashReason::try_from(r) {
        Ok(pb::SlashReason::DoubleSign) => "double_sign",
        Ok(pb::SlashReason::Downtime) => "downtime",
        _ => "unknown",
    }
}

fn redelegation_json(e: &pb::RedelegationEntry) -> Value {
    json!({
        "delegator": hex::encode(&e.delegator),
        "src_validator": hex::encode(&e.src_validator),
        "dst_validator": hex::encode(&e.dst_validator),
        "creation_height": e.creation_height,
        "completion_height": e.completion_height,
        "initial_balance": e.initial_balance,
        "shares_dst": e.shares_dst,
    })
}

fn delegation_json(d: &pb::Delegation) -> Value {
    json!({
        "delegator": hex::encode(&d.delegator),
        "validator": hex::encode(&d.validator),
        "shares": d.shares,
        "tokens": d.tokens,
        "rewards": d.rewards,
    })
}

/// A slashing event as JSON.
pub fn slash_json(e: &pb::SlashingEvent) -> Value {
    json!({
        "validator": hex::encode(&e.validator),
        "infraction_height": e.infraction_height,
        "slash_height": e.slash_height,
        "amount": e.amount,
        "fraction_bps": e.fraction_bps,
        "evidence_hash": hex::encode(&e.evidence_hash),
        "tombstoned": e.tombstoned,
        "reason": slash_reason_name(e.reason),
        "from_bonded": e.from_bonded,
        "from_unbonding": e.from_unbonding,
        "from_redelegations": e.from_redelegations,
    })
}

/// Follows page tokens from the first page (see [`pages::follow`]),
/// concatenating the items as a JSON array; a listing cut at
/// [`pages::MAX_PAGES`] is said on stderr.
async fn all_pages<F, Fut>(limit: u32, fetch: F) -> Result<Value, tonic::Status>
where
    F: FnMut(pb::PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Value>, Vec<u8>), tonic::Status>>,
{
    let (all, more) = pages::follow(limit, fetch).await?;
    if more {
        eprintln!(
            "warning: the listing stops after {} pages; the node has more",
            pages::MAX_PAGES
        );
    }
    Ok(Value::Array(all))
}

/// A page's next token (empty when the node sent none).
fn token(p: Option<pb::PageResponse>) -> Vec<u8> {
    p.map(|p| p.next_page_token).unwrap_or_default()
}

fn unbonding_json(e: &pb::UnbondingEntry) -> Value {
    json!({
        "delegator": hex::encode(&e.delegator),
        "validator": hex::encode(&e.validator),
        "creation_height": e.creation_height,
        "completion_height": e.completion_height,
        "initial_balance": e.initial_balance,
        "balance": e.balance,
    })
}

/// The query service of the node being asked.
type Client = QueryClient<Channel>;

/// Runs one query and renders the answer.
pub async fn run(channel: Channel, q: &QueryKind, page_size: u32) -> Result<Value, tonic::Status> {
    let mut c = QueryClient::new(channel).max_decoding_message_size(32 * 1024 * 1024);
    match q {
        QueryKind::Status => status(&mut c).await,
        QueryKind::Block(h) => block(&mut c, *h).await,
        QueryKind::Cert(h) => cert(&mut c, *h).await,
        QueryKind::Validators(h) => validators(&mut c, *h).await,
        QueryKind::Validator(a) => validator(&mut c, a).await,
        QueryKind::Delegation {
            delegator,
            validator,
        } => delegation(&mut c, delegator, validator).await,
        QueryKind::Delegations(d) => delegations(&c, d, page_size).await,
        QueryKind::Unbonding(d) => unbonding(&c, d, page_size).await,
        QueryKind::Slashes(v) => slashes(&c, *v, page_size).await,
        QueryKind::Account(a) => account(&mut c, a).await,
        QueryKind::Rewards {
            delegator,
            validator,
        } => rewards(&mut c, delegator, validator).await,
        QueryKind::Redelegations(d) => redelegations(&c, d, page_size).await,
        QueryKind::Supply => supply(&mut c).await,
        QueryKind::Tx(h) => tx(&mut c, h).await,
    }
}

/// `query status`: chain id, latest height and hash, round and peers.
async fn status(c: &mut Client) -> Result<Value, tonic::Status> {
    let s = c.get_status(pb::GetStatusRequest {}).await?.into_inner();
    Ok(json!({
        "chain_id": s.chain_id,
        "latest_height": s.latest_height,
        "latest_block_hash": hex::encode(&s.latest_block_hash),
        "round": s.round,
        "node_address": hex::encode(&s.node_address),
        "peers": s.peers,
    }))
}

/// `query block`: a block's hash, header, counts and last commit.
async fn block(c: &mut Client, h: u64) -> Result<Value, tonic::Status> {
    let r = c
        .get_block(pb::GetBlockRequest { height: h })
        .await?
        .into_inner();
    Ok(block_json(&r.block_hash, &r.block.unwrap_or_default()))
}

/// A block as `query block` shows it: its hash, header, counts and last commit.
pub fn block_json(hash: &[u8], b: &pb::Block) -> Value {
    json!({
        "block_hash": hex::encode(hash),
        "header": b.header.as_ref().map(header_json),
        "txs": b.txs.len(),
        "evidence": b.evidence.len(),
        "last_commit": b.last_commit.as_ref().map(cert_json),
    })
}

/// `query cert`: a height's commit certificate and the header it commits.
async fn cert(c: &mut Client, h: u64) -> Result<Value, tonic::Status> {
    let r = c
        .get_commit_certificate(pb::GetCommitCertificateRequest { height: h })
        .await?
        .into_inner();
    Ok(json!({
        "certificate": r.certificate.as_ref().map(cert_json),
        "header": r.header.as_ref().map(header_json),
    }))
}

/// `query validators`: the validator set of a height (0: latest).
async fn validators(c: &mut Client, h: u64) -> Result<Value, tonic::Status> {
    let r = c
        .get_validator_set(pb::GetValidatorSetRequest { height: h })
        .await?
        .into_inner();
    Ok(validator_set_json(
        r.height,
        &r.validator_set.unwrap_or_default(),
    ))
}

/// A validator set as `query validators` shows it.
pub fn validator_set_json(height: u64, set: &pb::ValidatorSet) -> Value {
    json!({
        "height": height,
        "hash": hex::encode(&set.hash),
        "validators": set.validators.iter().map(|v| json!({
            "address": hex::encode(&v.address),
            "public_key": hex::encode(&v.public_key),
            "power": v.power,
        })).collect::<Vec<_>>(),
    })
}

/// `query validator`: one validator's staking record (null if none).
async fn validator(c: &mut Client, a: &Address) -> Result<Value, tonic::Status> {
    let r = c
        .get_validator(pb::GetValidatorRequest {
            prove: false,
            address: a.0.to_vec(),
        })
        .await?
        .into_inner();
    Ok(r.validator
        .as_ref()
        .map(validator_json)
        .unwrap_or(Value::Null))
}

/// `query delegation`: one delegation (null if none).
async fn delegation(
    c: &mut Client,
    delegator: &Address,
    validator: &Address,
) -> Result<Value, tonic::Status> {
    let r = c
        .get_delegation(pb::GetDelegationRequest {
            prove: false,
            delegator: delegator.0.to_vec(),
            validator: validator.0.to_vec(),
        })
        .await?
        .into_inner();
    Ok(r.delegation
        .as_ref()
        .map(delegation_json)
        .unwrap_or(Value::Null))
}

/// `query delegations`: every delegation of a delegator, all pages.
async fn delegations(c: &Client, d: &Address, limit: u32) -> Result<Value, tonic::Status> {
    all_pages(limit, |page| {
        let mut c = c.clone();
        async move {
            let r = c
                .list_delegations(pb::ListDelegationsRequest {
                    prove: false,
                    delegator: d.0.to_vec(),
                    page: Some(page),
                })
                .await?
                .into_inner();
            Ok((
                r.delegations.iter().map(delegation_json).collect(),
                token(r.page),
            ))
        }
    })
    .await
}

/// `query unbonding`: every unbonding entry of a delegator, all pages.
async fn unbonding(c: &Client, d: &Address, limit: u32) -> Result<Value, tonic::Status> {
    all_pages(limit, |page| {
        let mut c = c.clone();
        async move {
            let r = c
                .list_unbonding(pb::ListUnbondingRequest {
                    prove: false,
                    delegator: d.0.to_vec(),
                    page: Some(page),
                })
                .await?
                .into_inner();
            Ok((
                r.entries.iter().map(unbonding_json).collect(),
                token(r.page),
            ))
        }
    })
    .await
}

/// `query slashes`: the slashing events of one validator (or all), all pages.
async fn slashes(c: &Client, v: Option<Address>, limit: u32) -> Result<Value, tonic::Status> {
    all_pages(limit, |page| {
        let mut c = c.clone();
        async move {
            let r = c
                .list_slashing_events(pb::ListSlashingEventsRequest {
                    prove: false,
                    validator: v.map(|a| a.0.to_vec()).unwrap_or_default(),
                    page: Some(page),
                })
                .await?
                .into_inner();
            Ok((r.events.iter().map(slash_json).collect(), token(r.page)))
        }
    })
    .await
}

/// `query account`: an account's balance, committed nonce and the nonce
/// its next transaction takes at this node (past its pending ones).
async fn account(c: &mut Client, a: &Address) -> Result<Value, tonic::Status> {
    let r = c
        .get_account(pb::GetAccountRequest {
            prove: false,
            address: a.0.to_vec(),
        })
        .await?
        .into_inner();
    Ok(json!({
        "address": hex::encode(&r.address),
        "balance": r.balance,
        "nonce": r.nonce,
        "pending_nonce": super::tx::next_nonce(&r),
    }))
}

/// `query rewards`: a delegation's accrued rewards.
async fn rewards(
    c: &mut Client,
    delegator: &Address,
    validator: &Address,
) -> Result<Value, tonic::Status> {
    let r = c
        .get_rewards(pb::GetRewardsRequest {
            delegator: delegator.0.to_vec(),
            validator: validator.0.to_vec(),
            prove: false,
        })
        .await?
        .into_inner();
    Ok(json!({
        "delegator": hex::encode(&r.delegator),
        "validator": hex::encode(&r.validator),
        "rewards": r.rewards,
        "height": r.height,
    }))
}

/// `query redelegations`: a delegator's pending redelegations, all pages.
async fn redelegations(c: &Client, d: &Address, limit: u32) -> Result<Value, tonic::Status> {
    all_pages(limit, |page| {
        let mut c = c.clone();
        async move {
            let r = c
                .list_redelegations(pb::ListRedelegationsRequest {
                    prove: false,
                    delegator: d.0.to_vec(),
                    page: Some(page),
                })
                .await?
                .into_inner();
            Ok((
                r.entries.iter().map(redelegation_json).collect(),
                token(r.page),
            ))
        }
    })
    .await
}

/// `query supply`: where every token is.
async fn supply(c: &mut Client) -> Result<Value, tonic::Status> {
    let s = c
        .get_supply(pb::GetSupplyRequest { prove: false })
        .await?
        .into_inner();
    Ok(json!({
        "height": s.height,
        "genesis_supply": s.genesis_supply,
        "minted": s.minted,
        "balances": s.balances,
        "bonded": s.bonded,
        "unbonding": s.unbonding,
        "unclaimed_rewards": s.unclaimed_rewards,
        "community_pool": s.community_pool,
        "burned": s.burned,
    }))
}

/// `query tx`: a transaction's status and log by hash.
async fn tx(c: &mut Client, h: &[u8; 32]) -> Result<Value, tonic::Status> {
    let r = c
        .get_tx(pb::GetTxRequest { hash: h.to_vec() })
        .await?
        .into_inner();
    Ok(json!({
        "tx_hash": hex::encode(&r.tx_hash),
        "status": status_name(r.status),
        "height": r.height,
        "log": r.log,
    }))
}
