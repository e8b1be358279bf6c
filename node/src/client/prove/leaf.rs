//! A proven leaf's bytes shown as the value they encode.

use agora_proto::v1 as pb;
use agora_validator::ledger::merkle::leaves::LeafKind;
use prost::Message;
use serde_json::{Value, json};

/// A proven leaf, decoded for people (its bytes verified already).
pub(super) fn leaf_json(key: &[u8], value: &[u8]) -> Value {
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
