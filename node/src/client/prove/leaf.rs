//! A proven leaf's bytes shown as the value they encode, and what follows
//! from proven leaves (a delegation's rewards).

use agora_proto::v1 as pb;
use agora_validator::ledger::amount::parse_amount;
use agora_validator::ledger::merkle::leaves::LeafKind;
use agora_validator::ledger::rewards::pending_from_leaves;
use prost::Message;
use serde_json::{Value, json};

use super::{Item, ProveQueryError};

/// The rewards a delegation is owed, computed from the two proven leaves
/// a rewards query returns (the validator's, then the delegation's; both
/// proofs verified already) with the ledger's own formula, so the figure
/// is as certified as the leaves. A delegation proven absent is owed
/// nothing.
pub(super) fn proven_rewards(items: &[Item]) -> Result<Value, ProveQueryError> {
    let [validator, delegation] = items else {
        return Err(ProveQueryError::Answer(format!(
            "a rewards proof needs the validator's and the delegation's leaves, got {}",
            items.len()
        )));
    };
    let height = delegation.proof.height;
    if validator.proof.height != height {
        return Err(ProveQueryError::Answer(format!(
            "the validator was proven at height {}, the delegation at {height}: rewards need one state",
            validator.proof.height
        )));
    }
    if !delegation.proof.present {
        return Ok(json!({"height": height, "owed": "0", "delegation": false}));
    }
    let unusable = |what: &str, e: &dyn std::fmt::Display| {
        ProveQueryError::Answer(format!("the proven {what} leaf: {e}"))
    };
    if !validator.proof.present {
        return Err(unusable(
            "validator",
            &"absent, while the delegation to it exists",
        ));
    }
    let v = pb::ValidatorLeaf::decode(&validator.proof.value[..])
        .map_err(|e| unusable("validator", &e))?;
    let d = pb::DelegationLeaf::decode(&delegation.proof.value[..])
        .map_err(|e| unusable("delegation", &e))?;
    let owed = pending_from_leaves(&v, &d).map_err(|e| unusable("leaves'", &e))?;
    Ok(json!({"height": height, "owed": owed.to_string(), "delegation": true}))
}

/// The chain-wide leaf's supply counters, and the tokens in existence
/// they imply: genesis_supply + minted − burned (slashed), which the
/// ledger's invariant makes equal to balances + bonded + unbonding +
/// unclaimed rewards. `null` when the counters do not add up (not
/// amounts, or more burned than ever existed).
fn globals_json(g: &pb::StateGlobals) -> Value {
    let amount = |s: &str| parse_amount(s).ok();
    let in_existence = amount(&g.genesis_supply)
        .zip(amount(&g.minted_total))
        .and_then(|(genesis, minted)| genesis.checked_add(minted))
        .zip(amount(&g.slashed_total))
        .and_then(|(made, burned)| made.checked_sub(burned));
    json!({
        "chain_id": g.chain_id,
        "height": g.height,
        "genesis_supply": g.genesis_supply,
        "minted": g.minted_total,
        "burned": g.slashed_total,
        "community_pool": g.community_pool,
        "slash_events": g.slash_events,
        "in_existence": in_existence.map(|t| t.to_string()),
    })
}

/// A proven leaf, decoded for people (its bytes verified already).
pub(super) fn leaf_json(key: &[u8], value: &[u8]) -> Value {
    let kind = key.first().copied();
    let decoded = match kind {
        Some(k) if k == LeafKind::Globals as u8 => {
            pb::StateGlobals::decode(value).map(|g| globals_json(&g))
        }
        Some(k) if k == LeafKind::Account as u8 => pb::AccountLeaf::decode(value).map(|l| {
            json!({
                "balance": l.balance,
                "nonce": l.nonce,
                "delegations": l.delegations,
                "unbonding_entries": l.unbonding_entries,
                "redelegations": l.redelegations,
            })
        }),
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
        Some(k) if k == LeafKind::SigningInfo as u8 => pb::SigningInfoLeaf::decode(value)
            .map(|l| json!({"certificates_counted": l.counted, "missed": l.missed})),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(height: u64, value: Option<Vec<u8>>) -> Item {
        Item {
            what: "leaf".into(),
            key: Vec::new(),
            proof: pb::StateProof {
                height,
                present: value.is_some(),
                value: value.unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    fn validator(rps: &str, outstanding: &str) -> Option<Vec<u8>> {
        let leaf = pb::ValidatorLeaf {
            reward_per_share: rps.into(),
            outstanding_rewards: outstanding.into(),
            ..Default::default()
        };
        Some(leaf.encode_to_vec())
    }

    fn delegation(shares: &str, entry: &str) -> Option<Vec<u8>> {
        let leaf = pb::DelegationLeaf {
            shares: shares.into(),
            reward_entry: entry.into(),
        };
        Some(leaf.encode_to_vec())
    }

    #[test]
    fn the_tokens_in_existence_are_genesis_plus_minted_less_burned() {
        let globals = |slashed: &str| pb::StateGlobals {
            genesis_supply: "1000".into(),
            minted_total: "50".into(),
            slashed_total: slashed.into(),
            ..Default::default()
        };
        assert_eq!(globals_json(&globals("30"))["in_existence"], "1020");
        // Counters that cannot be: more burned than ever existed, or not an amount.
        assert!(globals_json(&globals("1051"))["in_existence"].is_null());
        assert!(globals_json(&globals("x"))["in_existence"].is_null());
        let leaf = globals("30").encode_to_vec();
        let key = agora_validator::ledger::merkle::leaves::globals_key();
        assert_eq!(leaf_json(&key, &leaf)["minted"], "50");
    }

    #[test]
    fn a_downtime_record_is_shown_by_its_counts() {
        let leaf = pb::SigningInfoLeaf {
            counted: 40,
            missed: 3,
            bits: vec![0; 13],
        };
        let a = agora_validator::Address([7; 20]);
        let key = agora_validator::ledger::merkle::leaves::signing_info_key(&a);
        let shown = leaf_json(&key, &leaf.encode_to_vec());
        assert_eq!(shown, json!({"certificates_counted": 40, "missed": 3}));
    }

    #[test]
    fn rewards_are_computed_from_two_leaves_of_one_state() {
        // 3 shares at 2·10¹⁸ accrued per share since entry: 6, under the 10 held.
        let scale = "1000000000000000000";
        let v = || item(9, validator("3000000000000000000", "10"));
        let owed = proven_rewards(&[v(), item(9, delegation("3", scale))]).unwrap();
        assert_eq!(owed, json!({"height": 9, "owed": "6", "delegation": true}));
        // Proven absent: owed nothing.
        let none = proven_rewards(&[v(), item(9, None)]).unwrap();
        assert_eq!(none["owed"], "0");
        assert_eq!(none["delegation"], false);
        // Leaves of two states, a delegation to no validator, a leaf that
        // does not decode and a figure that is not an amount are refused.
        let refused = [
            vec![item(8, validator("3", "10")), item(9, delegation("3", "0"))],
            vec![item(9, None), item(9, delegation("3", "0"))],
            vec![item(9, Some(vec![0xff])), item(9, delegation("3", "0"))],
            vec![v(), item(9, delegation("three", "0"))],
            vec![v()],
        ];
        for items in refused {
            let err = proven_rewards(&items).unwrap_err();
            assert!(matches!(err, ProveQueryError::Answer(_)), "{err}");
        }
    }
}
