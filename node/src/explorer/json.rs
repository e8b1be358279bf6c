//! The explorer's JSON shapes: each gRPC message the gateway forwards,
//! written with the field names of its `.proto` definition. Bytes are
//! lowercase hex, u128 amounts and voting power decimal strings (JavaScript
//! numbers stop being exact at 2^53), heights and rounds numbers.

use agora_proto::v1 as pb;
use agora_validator::Address;
use agora_validator::crypto::sha3_256;
use prost::Message;
use serde_json::{Value, json};

fn h(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A header, every field by its proto name.
pub fn header(x: &pb::Header) -> Value {
    json!({
        "chain_id": x.chain_id,
        "height": x.height,
        "parent_hash": h(&x.parent_hash),
        "proposer_address": h(&x.proposer_address),
        "vrf_proof": h(&x.vrf_proof),
        "txs_hash": h(&x.txs_hash),
        "evidence_hash": h(&x.evidence_hash),
        "last_commit_hash": h(&x.last_commit_hash),
        "app_hash": h(&x.app_hash),
        "validators_hash": h(&x.validators_hash),
        "next_validators_hash": h(&x.next_validators_hash),
        "time_ms": x.time_ms,
        "proposal_round": x.proposal_round,
    })
}

/// The exact bytes a block hash is SHA3-256 of: the protobuf encoding of the
/// header (deterministic: the message has no map fields), so that the
/// browser hashes what was certified rather than trusting a served hash.
pub fn header_bytes(x: &pb::Header) -> String {
    h(&x.encode_to_vec())
}

/// A list item's exact protobuf encoding, in hex: what the header's
/// `txs_hash` / `evidence_hash` commit to, so the page checks the lists it
/// shows against the certified header.
pub fn encoded(m: &impl Message) -> String {
    h(&m.encode_to_vec())
}

/// A commit certificate.
pub fn certificate(c: &pb::CommitCertificate) -> Value {
    json!({
        "height": c.height,
        "round": c.round,
        "block_hash": h(&c.block_hash),
        "signers": h(&c.signers),
        "aggregate_signature": h(&c.aggregate_signature),
    })
}

/// A validator of a set.
pub fn set_member(v: &pb::ValidatorInfo) -> Value {
    json!({
        "address": h(&v.address),
        "public_key": h(&v.public_key),
        "power": v.power.to_string(),
    })
}

/// The kind-specific fields of a transaction body, and the kind's name.
fn tx_kind(k: Option<&pb::tx_body::Kind>) -> (&'static str, Value) {
    use pb::tx_body::Kind;
    match k {
        Some(Kind::Transfer(t)) => ("transfer", json!({"to": h(&t.to), "amount": t.amount})),
        Some(Kind::CreateValidator(c)) => (
            "create_validator",
            json!({
                "consensus_public_key": h(&c.consensus_public_key),
                "self_bond": c.self_bond,
                "commission_rate_bps": c.commission_rate_bps,
            }),
        ),
        Some(Kind::Bond(b)) => (
            "bond",
            json!({"validator": h(&b.validator), "amount": b.amount}),
        ),
        Some(Kind::Unbond(u)) => (
            "unbond",
            json!({"validator": h(&u.validator), "shares": u.shares}),
        ),
        Some(Kind::Unjail(u)) => ("unjail", json!({"validator": h(&u.validator)})),
        Some(Kind::Redelegate(r)) => (
            "redelegate",
            json!({
                "src_validator": h(&r.src_validator),
                "dst_validator": h(&r.dst_validator),
                "shares": r.shares,
            }),
        ),
        Some(Kind::WithdrawRewards(w)) => {
            ("withdraw_rewards", json!({"validator": h(&w.validator)}))
        }
        Some(Kind::EditValidator(e)) => (
            "edit_validator",
            json!({"validator": h(&e.validator), "commission_rate_bps": e.commission_rate_bps}),
        ),
        None => ("unknown", json!({})),
    }
}

/// A transaction of a block with its outcome (`status` and `log` as
/// `GetTx` reports them).
pub fn tx(t: &pb::Transaction, outcome: Option<&pb::GetTxResponse>) -> Value {
    let body = t.body.clone().unwrap_or_default();
    let (kind, fields) = tx_kind(body.kind.as_ref());
    let status = outcome
        .and_then(|o| pb::TxStatus::try_from(o.status).ok())
        .map_or("unknown", |s| match s {
            pb::TxStatus::Pending => "pending",
            pb::TxStatus::Committed => "committed",
            pb::TxStatus::Rejected => "rejected",
            pb::TxStatus::Failed => "failed",
            pb::TxStatus::Unspecified => "unknown",
        });
    json!({
        "hash": h(&agora_validator::block::tx_hash(t)),
        "sender": Address::of_key_bytes(&t.public_key).to_string(),
        "nonce": body.nonce,
        "kind": kind,
        "body": fields,
        "fee": body.fee,
        "status": status,
        "log": outcome.map(|o| o.log.clone()).unwrap_or_default(),
    })
}

/// A piece of evidence: its kind, who it accuses, where, and its hash (the
/// hash slashing events name).
pub fn evidence(e: &pb::Evidence) -> Value {
    use pb::evidence::Kind;
    let (kind, offenders, height, round) = match e.kind.as_ref() {
        Some(Kind::DuplicateVote(d)) => {
            let a = d.vote_a.clone().unwrap_or_default();
            (
                "duplicate_vote",
                vec![h(&a.validator_address)],
                a.height,
                a.round,
            )
        }
        Some(Kind::ConflictingProposals(c)) => {
            let a = c.proposal_a.clone().unwrap_or_default();
            (
                "conflicting_proposals",
                vec![h(&a.proposer_address)],
                a.height,
                a.round,
            )
        }
        // The offenders are the signers of both certificates, which only the
        // height's validator set can name; the block page shows the two.
        Some(Kind::ConflictingCertificates(c)) => {
            let a = c.cert_a.clone().unwrap_or_default();
            ("conflicting_certificates", Vec::new(), a.height, a.round)
        }
        None => ("unknown", Vec::new(), 0, 0),
    };
    json!({
        "kind": kind,
        "offenders": offenders,
        "height": height,
        "round": round,
        "hash": h(&sha3_256(&e.encode_to_vec())),
    })
}

/// A validator's record.
pub fn validator(v: &pb::ValidatorRecord) -> Value {
    json!({
        "address": h(&v.address),
        "operator": h(&v.operator),
        "consensus_public_key": h(&v.consensus_public_key),
        "tokens": v.tokens,
        "shares": v.shares,
        "power": v.power.to_string(),
        "jailed": v.jailed,
        "tombstoned": v.tombstoned,
        "jailed_until": v.jailed_until,
        "active": v.active,
        "commission_rate_bps": v.commission_rate_bps,
        "commission_max_rate_bps": v.commission_max_rate_bps,
        "missed_blocks": v.missed_blocks,
        "window_counted": v.window_counted,
        "outstanding_rewards": v.outstanding_rewards,
    })
}

/// A slash recorded by the ledger.
pub fn slashing_event(e: &pb::SlashingEvent) -> Value {
    let reason = match pb::SlashReason::try_from(e.reason) {
        Ok(pb::SlashReason::DoubleSign) => "double_sign",
        Ok(pb::SlashReason::Downtime) => "downtime",
        _ => "unknown",
    };
    json!({
        "validator": h(&e.validator),
        "infraction_height": e.infraction_height,
        "slash_height": e.slash_height,
        "amount": e.amount,
        "fraction_bps": e.fraction_bps,
        "evidence_hash": h(&e.evidence_hash),
        "tombstoned": e.tombstoned,
        "reason": reason,
        "from_bonded": e.from_bonded,
        "from_unbonding": e.from_unbonding,
        "from_redelegations": e.from_redelegations,
    })
}

/// A delegation with its accrued rewards.
pub fn delegation(d: &pb::Delegation) -> Value {
    json!({
        "validator": h(&d.validator),
        "shares": d.shares,
        "tokens": d.tokens,
        "rewards": d.rewards,
    })
}

/// An unbonding entry.
pub fn unbonding(u: &pb::UnbondingEntry) -> Value {
    json!({
        "validator": h(&u.validator),
        "creation_height": u.creation_height,
        "completion_height": u.completion_height,
        "initial_balance": u.initial_balance,
        "balance": u.balance,
    })
}

/// A redelegation entry.
pub fn redelegation(r: &pb::RedelegationEntry) -> Value {
    json!({
        "src_validator": h(&r.src_validator),
        "dst_validator": h(&r.dst_validator),
        "creation_height": r.creation_height,
        "completion_height": r.completion_height,
        "initial_balance": r.initial_balance,
        "shares_dst": r.shares_dst,
    })
}
