//! `agora tx ...`: build a transaction, sign it locally, submit it, and wait
//! for its outcome. Keys never leave this process; only the signed
//! transaction is sent.

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_proto::v1::staking_client::StakingClient;
use agora_validator::signing::sign_transaction;
use agora_validator::{AccountSecretKey, Address, ChainId, SecretKey};
use tonic::transport::Channel;

/// What to do.
#[derive(Debug, Clone)]
pub enum TxAction {
    /// Delegate `amount` tokens to `validator`.
    Bond {
        /// Validator address.
        validator: Address,
        /// Tokens (base units).
        amount: u128,
    },
    /// Turn `shares` back into tokens, paid out after the unbonding period.
    Unbond {
        /// Validator address.
        validator: Address,
        /// Shares to unbond.
        shares: u128,
    },
    /// Send tokens.
    Transfer {
        /// Recipient.
        to: Address,
        /// Tokens (base units).
        amount: u128,
    },
    /// Register the sender's validator with a consensus key.
    CreateValidator {
        /// The consensus key (its public key and proof of possession are sent).
        consensus_key: Box<SecretKey>,
        /// Self-bond in tokens.
        self_bond: u128,
        /// Commission rate, its maximum and its largest change per epoch (bps).
        commission: [u32; 3],
    },
    /// Leave jail.
    Unjail {
        /// Validator address.
        validator: Address,
    },
    /// Move `shares` of `src` to `dst` at once.
    Redelegate {
        /// Source validator.
        src: Address,
        /// Destination validator.
        dst: Address,
        /// Shares of `src`.
        shares: u128,
    },
    /// Pay the delegation's accrued rewards to the sender.
    WithdrawRewards {
        /// Validator address.
        validator: Address,
    },
    /// Change the commission rate of the sender's validator.
    EditValidator {
        /// Validator address.
        validator: Address,
        /// New rate, basis points.
        rate_bps: u32,
    },
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum TxClientError {
    /// The node refused the request; its message says why.
    #[error("{}", super::status_text(.0))]
    Refused(Box<tonic::Status>),
    /// The signed transaction was sent but no answer came (the deadline ran
    /// out or the connection broke): the node may have taken it, so the
    /// sender is told how to find out before signing it again.
    #[error(
        "{}; the transaction {} may still be committed: `agora query tx {}` tells",
        super::status_text(.status),
        hex::encode(.hash),
        hex::encode(.hash)
    )]
    Unanswered {
        /// The transaction's hash (as `GetTx` takes it).
        hash: agora_validator::Hash,
        /// What the client saw.
        status: Box<tonic::Status>,
    },
}

impl TxClientError {
    /// `status` for a submission of the transaction `hash`: a refusal, or,
    /// when the answer never came, [`TxClientError::Unanswered`].
    fn of_submission(hash: agora_validator::Hash, status: tonic::Status) -> Self {
        use super::refusal::{deadline_ran_out, from_transport};
        let unanswered = deadline_ran_out(&status)
            || (matches!(
                status.code(),
                tonic::Code::Unknown | tonic::Code::Unavailable
            ) && from_transport(&status));
        if unanswered {
            Self::Unanswered {
                hash,
                status: Box::new(status),
            }
        } else {
            Self::Refused(Box::new(status))
        }
    }
}

impl From<tonic::Status> for TxClientError {
    fn from(s: tonic::Status) -> Self {
        Self::Refused(Box::new(s))
    }
}

/// The body kind of an action.
pub fn body_kind(action: &TxAction) -> pb::tx_body::Kind {
    use pb::tx_body::Kind;
    match action {
        TxAction::Bond { validator, amount } => Kind::Bond(pb::Bond {
            validator: validator.0.to_vec(),
            amount: amount.to_string(),
        }),
        TxAction::Unbond { validator, shares } => Kind::Unbond(pb::Unbond {
            validator: validator.0.to_vec(),
            shares: shares.to_string(),
        }),
        TxAction::Transfer { to, amount } => Kind::Transfer(pb::Transfer {
            to: to.0.to_vec(),
            amount: amount.to_string(),
        }),
        TxAction::CreateValidator {
            consensus_key,
            self_bond,
            commission: [rate, max_rate, max_change],
        } => Kind::CreateValidator(pb::CreateValidator {
            consensus_public_key: consensus_key.public_key().to_bytes().to_vec(),
            proof_of_possession: consensus_key.prove_possession().to_bytes().to_vec(),
            self_bond: self_bond.to_string(),
            commission_rate_bps: *rate,
            commission_max_rate_bps: *max_rate,
            commission_max_change_bps: *max_change,
        }),
        TxAction::Unjail { validator } => Kind::Unjail(pb::Unjail {
            validator: validator.0.to_vec(),
        }),
        TxAction::Redelegate { src, dst, shares } => Kind::Redelegate(pb::Redelegate {
            src_validator: src.0.to_vec(),
            dst_validator: dst.0.to_vec(),
            shares: shares.to_string(),
        }),
        TxAction::WithdrawRewards { validator } => Kind::WithdrawRewards(pb::WithdrawRewards {
            validator: validator.0.to_vec(),
        }),
        TxAction::EditValidator {
            validator,
            rate_bps,
        } => Kind::EditValidator(pb::EditValidator {
            validator: validator.0.to_vec(),
            commission_rate_bps: *rate_bps,
        }),
    }
}

/// The fee a client pays unless told otherwise: the default `min_fee`.
pub const DEFAULT_FEE: u128 = agora_validator::ledger::params::DEFAULT_MIN_FEE;

/// [`submit_with_fee`] paying [`DEFAULT_FEE`].
pub async fn submit(
    channel: Channel,
    sender: &AccountSecretKey,
    action: &TxAction,
    wait: bool,
) -> Result<pb::SubmitTxResponse, TxClientError> {
    submit_with_fee(channel, sender, action, DEFAULT_FEE, wait).await
}

/// Signs `action` from `sender` with its next nonce (read from the node),
/// the node's chain id and `fee`, submits it through the matching Staking
/// method and, if `wait`, waits for the outcome.
pub async fn submit_with_fee(
    channel: Channel,
    sender: &AccountSecretKey,
    action: &TxAction,
    fee: u128,
    wait: bool,
) -> Result<pb::SubmitTxResponse, TxClientError> {
    let how = Submission {
        fee,
        nonce: None,
        wait,
    };
    submit_as(channel, sender, action, how).await
}

/// How a transaction is signed and submitted.
#[derive(Debug, Clone, Copy)]
pub struct Submission {
    /// The fee, in base units.
    pub fee: u128,
    /// The nonce to sign with; `None`: the one the node says the account's
    /// next transaction takes (GetAccount's `pending_nonce`: past the
    /// account's transactions waiting in that node's mempool, so a second
    /// transaction sent before the first commits follows it). Named when
    /// sending through several nodes, or to replace nothing but fill a gap
    /// (the node's refusal gives the next acceptable one).
    pub nonce: Option<u64>,
    /// Wait for the outcome instead of returning once admitted.
    pub wait: bool,
}

/// Signs `action` from `sender` as `how` says, with the node's chain id,
/// and submits it through the matching Staking method.
pub async fn submit_as(
    channel: Channel,
    sender: &AccountSecretKey,
    action: &TxAction,
    how: Submission,
) -> Result<pb::SubmitTxResponse, TxClientError> {
    let mut query = QueryClient::new(channel.clone());
    let status = query
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner();
    let chain = ChainId::new(status.chain_id.clone()).map_err(|e| {
        tonic::Status::invalid_argument(format!("node reports an invalid chain id: {e}"))
    })?;
    let nonce = match how.nonce {
        Some(n) => n,
        None => {
            let me = Address::of_account(&sender.public_key());
            let a = query
                .get_account(pb::GetAccountRequest {
                    prove: false,
                    address: me.0.to_vec(),
                })
                .await?
                .into_inner();
            next_nonce(&a)
        }
    };
    let body = pb::TxBody {
        chain_id: chain.to_string(),
        nonce,
        kind: Some(body_kind(action)),
        fee: how.fee.to_string(),
    };
    let tx = sign_transaction(&chain, sender, body);
    let hash = agora_validator::block::tx_hash(&tx);
    let req = pb::SubmitTxRequest {
        tx: Some(tx),
        wait_for_commit: how.wait,
        timeout_ms: 0,
    };
    let mut staking = StakingClient::new(channel);
    let resp = match action {
        TxAction::Bond { .. } => staking.bond(req).await,
        TxAction::Unbond { .. } => staking.unbond(req).await,
        TxAction::Transfer { .. } => staking.transfer(req).await,
        TxAction::CreateValidator { .. } => staking.create_validator(req).await,
        TxAction::Unjail { .. } => staking.unjail(req).await,
        TxAction::Redelegate { .. } => staking.redelegate(req).await,
        TxAction::WithdrawRewards { .. } => staking.withdraw_rewards(req).await,
        TxAction::EditValidator { .. } => staking.edit_validator(req).await,
    }
    .map_err(|s| TxClientError::of_submission(hash, s))?;
    Ok(resp.into_inner())
}

/// The nonce an account's next transaction takes at the node that answered
/// `a`: its `pending_nonce`, or its committed nonce from a node that
/// predates `pending_nonce` (which answers 0 for it).
pub fn next_nonce(a: &pb::GetAccountResponse) -> u64 {
    a.pending_nonce.max(a.nonce)
}

/// Human name of a transaction status.
pub fn status_name(s: i32) -> &'static str {
    match pb::TxStatus::try_from(s) {
        Ok(pb::TxStatus::Pending) => "pending",
        Ok(pb::TxStatus::Committed) => "committed",
        Ok(pb::TxStatus::Rejected) => "rejected",
        Ok(pb::TxStatus::Failed) => "failed",
        _ => "unknown",
    }
}

/// The outcome as JSON (for `-o json`).
pub fn outcome_json(r: &pb::SubmitTxResponse) -> serde_json::Value {
    serde_json::json!({
        "tx_hash": hex::encode(&r.tx_hash),
        "status": status_name(r.status),
        "height": r.height,
        "log": r.log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_left_unanswered_names_the_hash_to_look_up() {
        let hash = [7u8; 32];
        let e = TxClientError::of_submission(hash, tonic::Status::cancelled("Timeout expired"));
        assert!(matches!(e, TxClientError::Unanswered { .. }));
        let text = e.to_string();
        assert!(text.starts_with("timed out"), "{text}");
        assert!(
            text.contains(&format!("agora query tx {}", hex::encode(hash))),
            "{text}"
        );
        // The node's own refusal is not a lost answer.
        let e = TxClientError::of_submission(
            hash,
            tonic::Status::failed_precondition("insufficient balance: need 2, have 1"),
        );
        assert!(matches!(e, TxClientError::Refused(_)));
        assert_eq!(
            e.to_string(),
            "rejected: insufficient balance: need 2, have 1"
        );
    }
}
