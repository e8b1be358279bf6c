//! Why a transaction was not admitted, and the gRPC status each reason
//! becomes.

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
    /// The checker rejected it.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Its nonce was already used by a committed transaction.
    #[error("nonce {got} already used; the account's next nonce is {next}")]
    NonceTooLow {
        /// The transaction's nonce.
        got: u64,
        /// The account's next nonce.
        next: u64,
    },
    /// A pending transaction of the same sender has this nonce.
    #[error("a pending transaction already has nonce {0}")]
    NonceTaken(u64),
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
        MempoolError::Rejected(m)
            if [
                "malformed",
                "bad signature",
                "bad public key",
                "is for chain",
                "bytes, the limit",
            ]
            .iter()
            .any(|k| m.contains(k)) =>
        {
            ApiError::InvalidArgument(msg)
        }
        _ => ApiError::FailedPrecondition(msg),
    }
}
