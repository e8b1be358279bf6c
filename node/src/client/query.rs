//! `agora query ...`: read chain state from a node and render it as JSON.

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
        /// Delegator.
        delegator: Address,
        /// Validator.
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
        /// Delegator.
        delegator: Address,
        /// Validator.
        validator: Address,
    },
    /// A delegator's pending redelegations.
    Redelegations(Address),
    /// Where every token is.
    Supply,
}

fn header_json(h: &pb::Header) -> Value {
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

fn cert_json(c: &pb::CommitCertificate) -> Value {
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

/// Pages requested per call when listing.
const PAGE_LIMIT: u32 = 200;
/// Pages followed at most, so a server that keeps returning tokens cannot
/// keep the client looping for ever.
const MAX_PAGES: usize = 1000;

/// One page's items and the server's paging answer.
type Page = (Vec<Value>, Option<pb::PageResponse>);

/// Follows page tokens from the first page until the server returns none
/// (at most [`MAX_PAGES`]), concatenating the items as a JSON array.
async fn all_pages<F, Fut>(mut fetch: F) -> Result<Value, tonic::Status>
where
    F: FnMut(pb::PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page, tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = Vec::new();
    for _ in 0..MAX_PAGES {
        let (items, page) = fetch(pb::PageRequest {
            page_token: token,
            limit: PAGE_LIMIT,
        })
        .await?;
        all.extend(items);
        token = page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(Value::Array(all))
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

/// Runs one query and renders the answer.
pub async fn run(channel: Channel, q: &QueryKind) -> Result<Value, tonic::Status> {
    let mut c = QueryClient::new(channel).max_decoding_message_size(32 * 1024 * 1024);
    Ok(match q {
        QueryKind::Status => {
            let s = c.get_status(pb::GetStatusRequest {}).await?.into_inner();
            json!({
                "chain_id": s.chain_id,
                "latest_height": s.latest_height,
                "latest_block_hash": hex::encode(&s.latest_block_hash),
                "round": s.round,
                "node_address": hex::encode(&s.node_address),
                "peers": s.peers,
            })
        }
        QueryKind::Block(h) => {
            let r = c
                .get_block(pb::GetBlockRequest { height: *h })
                .await?
                .into_inner();
            let b = r.block.unwrap_or_default();
            json!({
                "block_hash": hex::encode(&r.block_hash),
                "header": b.header.as_ref().map(header_json),
                "txs": b.txs.len(),
                "evidence": b.evidence.len(),
                "last_commit": b.last_commit.as_ref().map(cert_json),
            })
        }
        QueryKind::Cert(h) => {
            let r = c
                .get_commit_certificate(pb::GetCommitCertificateRequest { height: *h })
                .await?
                .into_inner();
            json!({
                "certificate": r.certificate.as_ref().map(cert_json),
                "header": r.header.as_ref().map(header_json),
            })
        }
        QueryKind::Validators(h) => {
            let r = c
                .get_validator_set(pb::GetValidatorSetRequest { height: *h })
                .await?
                .into_inner();
            let set = r.validator_set.unwrap_or_default();
            json!({
                "height": r.height,
                "hash": hex::encode(&set.hash),
                "validators": set.validators.iter().map(|v| json!({
                    "address": hex::encode(&v.address),
                    "public_key": hex::encode(&v.public_key),
                    "power": v.power,
                })).collect::<Vec<_>>(),
            })
        }
        QueryKind::Validator(a) => {
            let r = c
                .get_validator(pb::GetValidatorRequest {
                    prove: false,
                    address: a.0.to_vec(),
                })
                .await?
                .into_inner();
            r.validator
                .as_ref()
                .map(validator_json)
                .unwrap_or(Value::Null)
        }
        QueryKind::Delegation {
            delegator,
            validator,
        } => {
            let r = c
                .get_delegation(pb::GetDelegationRequest {
                    prove: false,
                    delegator: delegator.0.to_vec(),
                    validator: validator.0.to_vec(),
                })
                .await?
                .into_inner();
            r.delegation
                .as_ref()
                .map(delegation_json)
                .unwrap_or(Value::Null)
        }
        QueryKind::Delegations(d) => {
            all_pages(|page| {
                let mut c = c.clone();
                async move {
                    let r = c
                        .list_delegations(pb::ListDelegationsRequest {
                            delegator: d.0.to_vec(),
                            page: Some(page),
                        })
                        .await?
                        .into_inner();
                    Ok((r.delegations.iter().map(delegation_json).collect(), r.page))
                }
            })
            .await?
        }
        QueryKind::Unbonding(d) => {
            all_pages(|page| {
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
                    Ok((r.entries.iter().map(unbonding_json).collect(), r.page))
                }
            })
            .await?
        }
        QueryKind::Slashes(v) => {
            all_pages(|page| {
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
                    Ok((r.events.iter().map(slash_json).collect(), r.page))
                }
            })
            .await?
        }
        QueryKind::Account(a) => {
            let r = c
                .get_account(pb::GetAccountRequest {
                    prove: false,
                    address: a.0.to_vec(),
                })
                .await?
                .into_inner();
            json!({ "address": hex::encode(&r.address), "balance": r.balance, "nonce": r.nonce })
        }
        QueryKind::Rewards {
            delegator,
            validator,
        } => {
            let r = c
                .get_rewards(pb::GetRewardsRequest {
                    delegator: delegator.0.to_vec(),
                    validator: validator.0.to_vec(),
                })
                .await?
                .into_inner();
            json!({
                "delegator": hex::encode(&r.delegator),
                "validator": hex::encode(&r.validator),
                "rewards": r.rewards,
                "height": r.height,
            })
        }
        QueryKind::Redelegations(d) => {
            all_pages(|page| {
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
                    Ok((r.entries.iter().map(redelegation_json).collect(), r.page))
                }
            })
            .await?
        }
        QueryKind::Supply => {
            let s = c.get_supply(pb::GetSupplyRequest {}).await?.into_inner();
            json!({
                "height": s.height,
                "genesis_supply": s.genesis_supply,
                "minted": s.minted,
                "balances": s.balances,
                "bonded": s.bonded,
                "unbonding": s.unbonding,
                "unclaimed_rewards": s.unclaimed_rewards,
                "community_pool": s.community_pool,
                "burned": s.burned,
            })
        }
        QueryKind::Tx(h) => {
            let r = c
                .get_tx(pb::GetTxRequest { hash: h.to_vec() })
                .await?
                .into_inner();
            json!({
                "tx_hash": hex::encode(&r.tx_hash),
                "status": status_name(r.status),
                "height": r.height,
                "log": r.log,
            })
        }
    })
}
