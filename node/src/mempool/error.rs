//! Why a transaction was not admitted, and the gRPC status each reason
//! becomes.

use agora_validator::ledger::TxError;

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already pending.
    #[error("transaction already in the mempool")]
    Duplicate,
    /// Larger than the per-transaction limit.
    #[error("transaction of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The mempool is at its count or byte limit and holds nothing cheaper per byte.
    #[error(
        "mempool full ({txs} transactions, {bytes} bytes) and nothing pending pays less per byte; raise the fee or retry later"
    )]
    Full {
        /// Pending transactions.
        txs: usize,
        /// Pending bytes.
        bytes: usize,
    },
    /// The checker rejected it (the reason alone: the gRPC status code,
    /// FAILED_PRECONDITION or INVALID_ARGUMENT, already says "rejected",
    /// and the CLI prints it as such).
    #[error("{0}")]
    Rejected(TxError),
    /// Its nonce was already used by a committed transaction.
    #[error("nonce {got} already used; the account's next nonce is {next}")]
    NonceTooLow {
        /// The transaction's nonce.
        got: u64,
        /// The account's next nonce.
        next: u64,
    },
    /// A pending transaction of the same sender has this nonce. `next`
    /// tells a sender who signs several transactions before the first
    /// commits what to use (`agora tx --nonce`).
    #[error(
        "a pending transaction already has nonce {got}; the next acceptable nonce is {next} (or wait for the pending one to commit)"
    )]
    NonceTaken {
        /// The transaction's nonce.
        got: u64,
        /// One past the sender's last pending transaction.
        next: u64,
    },
    /// The nonce leaves a gap after the sender's pending transactions.
    #[error("nonce {got} leaves a gap; the next acceptable nonce is {expected}")]
    NonceGap {
        /// The transaction's nonce.
        got: u64,
        /// The nonce that would be accepted.
        expected: u64,
    },
}

/// The gRPC refusal for a failed admission: malformed input (bad bytes,
/// signature, chain, size) is INVALID_ARGUMENT; a state problem (nonce,
/// balance, unknown validator, entry limits) is FAILED_PRECONDITION; a full
/// pool is UNAVAILABLE (try later).
pub fn api_error(e: &MempoolError) -> crate::rpc::ApiError {
    use crate::rpc::ApiError;
    let msg = e.to_string();
    match e {
        MempoolError::TooLarge { .. } => ApiError::InvalidArgument(msg),
        MempoolError::Full { .. } => ApiError::Unavailable(msg),
        // What the sender must fix in the transaction itself; every other
        // reason is about the state it meets.
        MempoolError::Rejected(
            TxError::Malformed(_)
            | TxError::TooLarge { .. }
            | TxError::WrongChainId { .. }
            | TxError::BadPublicKey(_)
            | TxError::BadSignature,
        ) => ApiError::InvalidArgument(msg),
        _ => ApiError::FailedPrecondition(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::ApiError;
    use agora_validator::Address;

    #[test]
    fn a_refusal_is_classified_by_its_reason_and_says_it_once() {
        let bad_input = [
            TxError::Malformed("no body".into()),
            TxError::TooLarge {
                size: 5_000,
                max: 4_096,
            },
            TxError::WrongChainId {
                expected: "a".into(),
                got: "b".into(),
            },
            TxError::BadPublicKey("small order".into()),
            TxError::BadSignature,
        ];
        for e in bad_input {
            let want = e.to_string();
            assert_eq!(
                api_error(&MempoolError::Rejected(e)),
                ApiError::InvalidArgument(want)
            );
        }
        let state = [
            TxError::InsufficientBalance { need: 2, have: 1 },
            TxError::UnknownValidator(Address([7; 20])),
            TxError::WrongNonce {
                expected: 1,
                got: 3,
            },
        ];
        for e in state {
            let want = e.to_string();
            // The reason alone: the CLI and gRPC clients print the code.
            assert!(!want.starts_with("rejected"), "{want}");
            assert_eq!(
                api_error(&MempoolError::Rejected(e)),
                ApiError::FailedPrecondition(want)
            );
        }
        assert!(matches!(
            api_error(&MempoolError::Full { txs: 1, bytes: 2 }),
            ApiError::Unavailable(_)
        ));
    }
}
