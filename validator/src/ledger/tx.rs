//! Transactions: decoding and stateless validation of a signed
//! `pb::Transaction`, and the error a person gets when one is refused.

use super::amount::{AmountError, parse_amount};
use super::state::Commission;
use crate::block::tx_hash;
use crate::crypto::ed25519::AccountKeyError;
use crate::crypto::{
    AccountKeyCache, AccountPublicKey, AccountSecretKey, AccountSignature, Hash, PublicKey,
    Signature, sha3_256,
};
use crate::signing::tx_bytes;
use crate::types::{Address, ChainId, Height};
use agora_proto::v1 as pb;
use prost::Message;

mod check;
pub use check::{check_spread, verify_signatures};

/// Largest encoded transaction accepted (a CreateValidator is ~250 bytes).
pub const MAX_TX_BYTES: usize = 4 * 1024;

/// Why a transaction was refused or failed. The messages are written for the
/// person who sent it: they say what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The transaction does not have the required shape.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The encoded transaction is too large.
    #[error("transaction is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// Signed for another chain.
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChainId {
        /// This chain.
        expected: String,
        /// The chain id in the transaction.
        got: String,
    },
    /// The signer's public key does not decode.
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// The signature does not verify for the signer over the body.
    #[error("bad signature: the signature does not verify for this body, key and chain")]
    BadSignature,
    /// The signer has never received tokens, so it has no account.
    #[error("account {0} does not exist; fund it first")]
    UnknownAccount(Address),
    /// The nonce is not the account's next nonce.
    #[error("wrong nonce: expected {expected}, got {got}")]
    WrongNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Not enough tokens.
    #[error("insufficient balance: need {need}, have {have}")]
    InsufficientBalance {
        /// Tokens the transaction needs.
        need: u128,
        /// Tokens the account holds.
        have: u128,
    },
    /// A zero amount or zero shares.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// No validator with that address.
    #[error("unknown validator {0}")]
    UnknownValidator(Address),
    /// A validator with this consensus key already exists.
    #[error("validator {0} already exists")]
    ValidatorExists(Address),
    /// The proof of possession of the consensus key does not verify.
    #[error("proof of possession does not verify for the consensus key")]
    BadProofOfPossession,
    /// The self-bond is below the chain's minimum.
    #[error("self-bond {got} is below the minimum {min}")]
    SelfBondTooSmall {
        /// The chain's minimum self-bond.
        min: u128,
        /// The self-bond given (or left).
        got: u128,
    },
    /// The delegator has no delegation with that validator.
    #[error("no delegation from {delegator} to {validator}")]
    NoDelegation {
        /// The signer, who has no such delegation.
        delegator: Address,
        /// The validator it named.
        validator: Address,
    },
    /// Fewer shares delegated than asked to unbond.
    #[error("insufficient shares: asked to unbond {need}, delegation holds {have}")]
    InsufficientShares {
        /// Shares asked for.
        need: u128,
        /// Shares held.
        have: u128,
    },
    /// The pair already has the maximum number of pending unbonding entries.
    #[error(
        "too many unbonding entries: {max} are pending with this validator; wait for one to complete"
    )]
    TooManyUnbondingEntries {
        /// The cap.
        max: u32,
    },
    /// The shares are worth less than one token at the current exchange rate.
    #[error("unbonding {shares} shares is worth zero tokens; unbond more shares")]
    UnbondTooSmall {
        /// Shares asked for.
        shares: u128,
    },
    /// The bond buys zero shares at the current exchange rate.
    #[error("bonding {amount} buys zero shares at the current exchange rate; bond more")]
    BondTooSmall {
        /// Tokens offered.
        amount: u128,
    },
    /// The validator was slashed to zero tokens and cannot take delegations.
    #[error("validator {0} has no tokens left backing its shares")]
    ValidatorInsolvent(Address),
    /// Only the validator's operator may do this.
    #[error("only the operator {operator} of validator {validator} may unjail or edit it")]
    NotOperator {
        /// The validator the transaction named.
        validator: Address,
        /// Its operator, the only account that may do this.
        operator: Address,
    },
    /// The validator is not jailed.
    #[error("validator {0} is not jailed")]
    NotJailed(Address),
    /// The validator is tombstoned (double signed) and can never validate again.
    #[error(
        "validator {0} is tombstoned for double signing and can never be unjailed or bonded to"
    )]
    Tombstoned(Address),
    /// The jail has not expired yet.
    #[error("validator is jailed until height {until}; now at {now}")]
    StillJailed {
        /// First height at which unjailing is allowed.
        until: Height,
        /// Current height.
        now: Height,
    },
    /// A balance or total would exceed 128 bits.
    #[error("amount overflows 128 bits")]
    Overflow,
    /// The fee is below the chain's minimum.
    #[error("fee {got} is below the minimum fee {min}; pay at least {min}")]
    FeeTooLow {
        /// The chain's `min_fee`.
        min: u128,
        /// The fee offered.
        got: u128,
    },
    /// The account cannot pay the fee, so the transaction cannot be included.
    #[error("account holds {have}, which cannot pay the fee {fee}")]
    CannotPayFee {
        /// The fee.
        fee: u128,
        /// The balance.
        have: u128,
    },
    /// A redelegation to the validator it comes from.
    #[error("source and destination validator are the same ({0})")]
    SameValidator(Address),
    /// Stake redelegated into this validator may not move on before its entry completes.
    #[error(
        "stake redelegated into {validator} is still completing; it cannot be redelegated again until then"
    )]
    RedelegationInProgress {
        /// The validator the stake would leave.
        validator: Address,
    },
    /// The (delegator, source, destination) triple has the maximum number of pending entries.
    #[error(
        "too many redelegation entries: {max} are pending for this source and destination; wait for one to complete"
    )]
    TooManyRedelegationEntries {
        /// The cap.
        max: u32,
    },
    /// Commission parameters that do not fit together.
    #[error("invalid commission: {0}")]
    InvalidCommission(String),
    /// The new rate is above the validator's maximum rate.
    #[error("commission rate {rate} bps is above the validator's maximum {max} bps")]
    CommissionAboveMax {
        /// Rate asked for.
        rate: u32,
        /// The maximum.
        max: u32,
    },
    /// The rate moves further than the maximum change allows.
    #[error(
        "commission may change by at most {max_change} bps at a time; {from} to {to} bps is too far"
    )]
    CommissionChangeTooLarge {
        /// Current rate.
        from: u32,
        /// Rate asked for.
        to: u32,
        /// Largest change.
        max_change: u32,
    },
    /// The commission changed less than one commission epoch ago.
    #[error(
        "commission changed at height {changed_at}; the next change is allowed at height {next}"
    )]
    CommissionTooSoon {
        /// Height of the last change.
        changed_at: Height,
        /// First height a change is accepted.
        next: Height,
    },
}

impl TxError {
    /// True for errors that make a transaction invalid for inclusion (no
    /// state change at all, nonce not consumed); false for errors of
    /// execution, which consume the nonce so the transaction cannot be
    /// replayed later when it would succeed.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            TxError::Malformed(_)
                | TxError::TooLarge { .. }
                | TxError::WrongChainId { .. }
                | TxError::BadPublicKey(_)
                | TxError::BadSignature
                | TxError::UnknownAccount(_)
                | TxError::WrongNonce { .. }
                | TxError::FeeTooLow { .. }
                | TxError::CannotPayFee { .. }
        )
    }
}

/// What a transaction asks for, with amounts parsed.
// CreateValidator carries a decoded key and signature (blst points, a few
// hundred bytes); values are short-lived, one per transaction, so boxing
// would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxKind {
    /// Move tokens to another account.
    Transfer {
        /// Recipient.
        to: Address,
        /// Tokens.
        amount: u128,
    },
    /// Register a validator with the signer as operator.
    CreateValidator {
        /// Consensus key (strictly decoded).
        consensus_key: PublicKey,
        /// Proof of possession of that key (verified by the ledger).
        proof_of_possession: Signature,
        /// Tokens the operator self-bonds.
        self_bond: u128,
        /// Commission rate and bounds (`changed_at` is set on execution).
        commission: Commission,
    },
    /// Delegate tokens for shares.
    Bond {
        /// Validator address.
        validator: Address,
        /// Tokens.
        amount: u128,
    },
    /// Turn shares back into tokens, paid after the unbonding period.
    Unbond {
        /// Validator address.
        validator: Address,
        /// Shares.
        shares: u128,
    },
    /// Release a validator from a (non-permanent) jail.
    Unjail {
        /// Validator address.
        validator: Address,
    },
    /// Move shares from one validator to another at once.
    Redelegate {
        /// Validator the shares leave.
        src: Address,
        /// Validator the stake joins.
        dst: Address,
        /// Shares of `src` to move.
        shares: u128,
    },
    /// Pay a delegation's accrued rewards to the signer.
    WithdrawRewards {
        /// Validator address.
        validator: Address,
    },
    /// Change a validator's commission rate.
    EditValidator {
        /// Validator address.
        validator: Address,
        /// New rate, basis points.
        rate_bps: u32,
    },
}

/// A transaction that decoded and passed every stateless check except the
/// signature, which [`DecodedTx::verify_signature`] (or a batch) checks.
/// A host keeps it once the signature is checked (the node's mempool
/// does), so the transaction is never decoded or verified twice.
#[derive(Debug, Clone)]
pub struct DecodedTx {
    /// Hash of the full signed encoding: the transaction's id.
    pub hash: Hash,
    /// Signer's account key (Ed25519).
    pub public_key: AccountPublicKey,
    /// Signer's address: `Address::of_account(public_key)`.
    pub signer: Address,
    /// Account nonce the transaction claims.
    pub nonce: u64,
    /// Fee offered.
    pub fee: u128,
    /// The operation.
    pub kind: TxKind,
    /// The bytes the signature covers.
    pub sign_bytes: Vec<u8>,
    /// The signature (Ed25519, ZIP-215).
    pub signature: AccountSignature,
}

fn amount(field: &str, s: &str) -> Result<u128, TxError> {
    parse_amount(s).map_err(|e: AmountError| TxError::Malformed(format!("{field}: {e}")))
}

fn address(field: &str, b: &[u8]) -> Result<Address, TxError> {
    Address::from_slice(b).map_err(|e| TxError::Malformed(format!("{field}: {e}")))
}

/// Decodes a transaction and checks everything that needs no state and no
/// signature check: size, body present, chain id, key and signature
/// encodings, amounts. The signature itself is not verified here.
pub fn decode(chain: &ChainId, tx: &pb::Transaction) -> Result<DecodedTx, TxError> {
    decode_hashed(chain, tx, tx_hash(tx))
}

/// [`decode`] with the transaction's hash already computed (a block's
/// hashes come in one batch, `block::tx_hashes`).
pub fn decode_hashed(
    chain: &ChainId,
    tx: &pb::Transaction,
    hash: Hash,
) -> Result<DecodedTx, TxError> {
    debug_assert_eq!(hash, tx_hash(tx));
    decode_with(chain, tx, hash, AccountPublicKey::from_bytes)
}

/// [`decode`], taking the signer's decoded key from `keys` (each account's
/// key is decompressed once, not once per transaction) and the
/// transaction's hash from the caller, who computed it at admission
/// (hashing means encoding the transaction again).
pub fn decode_cached(
    chain: &ChainId,
    tx: &pb::Transaction,
    hash: Hash,
    keys: &mut AccountKeyCache,
) -> Result<DecodedTx, TxError> {
    debug_assert_eq!(hash, tx_hash(tx));
    decode_with(chain, tx, hash, |b| keys.get(b))
}

fn decode_with(
    chain: &ChainId,
    tx: &pb::Transaction,
    hash: Hash,
    account_key: impl FnOnce(&[u8]) -> Result<AccountPublicKey, AccountKeyError>,
) -> Result<DecodedTx, TxError> {
    let size = tx.encoded_len();
    if size > MAX_TX_BYTES {
        return Err(TxError::TooLarge {
            size,
            max: MAX_TX_BYTES,
        });
    }
    let body = tx
        .body
        .as_ref()
        .ok_or_else(|| TxError::Malformed("body is missing".into()))?;
    if body.chain_id != chain.as_str() {
        return Err(TxError::WrongChainId {
            expected: chain.as_str().to_string(),
            got: body.chain_id.clone(),
        });
    }
    let public_key =
        account_key(&tx.public_key).map_err(|e| TxError::BadPublicKey(e.to_string()))?;
    let signature = AccountSignature::from_bytes(&tx.signature)
        .map_err(|e| TxError::Malformed(format!("signature: {e}")))?;
    let kind = decode_kind(
        body.kind
            .as_ref()
            .ok_or_else(|| TxError::Malformed("body has no operation".into()))?,
    )?;
    let fee = amount("fee", &body.fee)?;
    let body_hash = sha3_256(&body.encode_to_vec());
    Ok(DecodedTx {
        hash,
        signer: Address::of_account(&public_key),
        public_key,
        nonce: body.nonce,
        fee,
        kind,
        sign_bytes: tx_bytes(chain, &body_hash),
        signature,
    })
}

/// The operation of a transaction body, every field decoded strictly.
fn decode_kind(kind: &pb::tx_body::Kind) -> Result<TxKind, TxError> {
    use pb::tx_body::Kind;
    Ok(match kind {
        Kind::Transfer(t) => TxKind::Transfer {
            to: address("transfer.to", &t.to)?,
            amount: amount("transfer.amount", &t.amount)?,
        },
        Kind::CreateValidator(c) => TxKind::CreateValidator {
            consensus_key: PublicKey::from_bytes(&c.consensus_public_key).map_err(|e| {
                TxError::Malformed(format!("create_validator.consensus_public_key: {e}"))
            })?,
            proof_of_possession: Signature::from_bytes(&c.proof_of_possession).map_err(|e| {
                TxError::Malformed(format!("create_validator.proof_of_possession: {e}"))
            })?,
            self_bond: amount("create_validator.self_bond", &c.self_bond)?,
            commission: Commission {
                rate_bps: c.commission_rate_bps,
                max_rate_bps: c.commission_max_rate_bps,
                max_change_bps: c.commission_max_change_bps,
                changed_at: 0,
            },
        },
        Kind::Bond(b) => TxKind::Bond {
            validator: address("bond.validator", &b.validator)?,
            amount: amount("bond.amount", &b.amount)?,
        },
        Kind::Unbond(u) => TxKind::Unbond {
            validator: address("unbond.validator", &u.validator)?,
            shares: amount("unbond.shares", &u.shares)?,
        },
        Kind::Unjail(u) => TxKind::Unjail {
            validator: address("unjail.validator", &u.validator)?,
        },
        Kind::Redelegate(r) => TxKind::Redelegate {
            src: address("redelegate.src_validator", &r.src_validator)?,
            dst: address("redelegate.dst_validator", &r.dst_validator)?,
            shares: amount("redelegate.shares", &r.shares)?,
        },
        Kind::WithdrawRewards(w) => TxKind::WithdrawRewards {
            validator: address("withdraw_rewards.validator", &w.validator)?,
        },
        Kind::EditValidator(e) => TxKind::EditValidator {
            validator: address("edit_validator.validator", &e.validator)?,
            rate_bps: e.commission_rate_bps,
        },
    })
}

impl DecodedTx {
    /// Verifies the signature over `tx_bytes(chain, sha3(body))`.
    pub fn verify_signature(&self) -> Result<(), TxError> {
        self.public_key
            .verify(&self.sign_bytes, &self.signature)
            .map_err(|_| TxError::BadSignature)
    }

    /// Bytes of the transaction's heap data and itself, roughly: for
    /// memory accounting by hosts that keep decoded transactions.
    pub fn approx_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.sign_bytes.len()
    }
}

/// Signs a transaction body with an account key: a helper for clients,
/// tests and benches (same as [`crate::signing::sign_transaction`]).
pub fn sign(sk: &AccountSecretKey, chain: &ChainId, body: pb::TxBody) -> pb::Transaction {
    crate::signing::sign_transaction(chain, sk, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sk() -> AccountSecretKey {
        AccountSecretKey::from_seed(&[7; 32])
    }

    pub(super) fn body(chain: &str) -> pb::TxBody {
        pb::TxBody {
            chain_id: chain.into(),
            nonce: 3,
            fee: "1000".into(),
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: vec![9; 20],
                amount: "10".into(),
            })),
        }
    }

    #[test]
    fn decode_checks_each_field() {
        let chain = ChainId::new("test").expect("chain");
        let tx = sign(&sk(), &chain, body("test"));
        let d = decode(&chain, &tx).expect("valid");
        assert_eq!(d.signer, Address::of_account(&sk().public_key()));
        assert_eq!(tx.public_key.len(), 32);
        assert_eq!(tx.signature.len(), 64);
        assert_eq!(d.nonce, 3);
        assert!(d.verify_signature().is_ok());

        let other = sign(&sk(), &chain, body("other"));
        assert!(matches!(
            decode(&chain, &other),
            Err(TxError::WrongChainId { .. })
        ));

        let mut tampered = tx.clone();
        if let Some(b) = tampered.body.as_mut() {
            b.nonce = 4;
        }
        let d = decode(&chain, &tampered).expect("decodes");
        assert_eq!(d.verify_signature(), Err(TxError::BadSignature));

        let mut nobody = tx.clone();
        nobody.body = None;
        assert!(matches!(
            decode(&chain, &nobody),
            Err(TxError::Malformed(_))
        ));

        let mut badkey = tx.clone();
        badkey.public_key = vec![0; 48];
        assert!(matches!(
            decode(&chain, &badkey),
            Err(TxError::BadPublicKey(_))
        ));
        // 32 bytes that are no curve point (y = 2).
        let mut off_curve = vec![0; 32];
        off_curve[0] = 2;
        badkey.public_key = off_curve;
        assert!(matches!(
            decode(&chain, &badkey),
            Err(TxError::BadPublicKey(_))
        ));

        let mut b = body("test");
        b.kind = Some(pb::tx_body::Kind::Transfer(pb::Transfer {
            to: vec![9; 19],
            amount: "10".into(),
        }));
        assert!(matches!(
            decode(&chain, &sign(&sk(), &chain, b)),
            Err(TxError::Malformed(_))
        ));

        let mut big = tx;
        big.signature = vec![0; MAX_TX_BYTES];
        assert!(matches!(
            decode(&chain, &big),
            Err(TxError::TooLarge { .. })
        ));
    }

    #[test]
    fn cached_decoding_decodes_each_account_key_once() {
        let chain = ChainId::new("test").expect("chain");
        let mut cache = AccountKeyCache::new(16);
        for nonce in 0..5 {
            let mut b = body("test");
            b.nonce = nonce;
            let tx = sign(&sk(), &chain, b);
            let d = decode_cached(&chain, &tx, tx_hash(&tx), &mut cache).expect("valid");
            assert_eq!(d.hash, tx_hash(&tx));
            assert!(d.verify_signature().is_ok());
        }
        assert_eq!(cache.decodes(), 1);
    }
}
