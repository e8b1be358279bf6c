//! What the mempool asks of its host: a [`TxChecker`] that judges a
//! transaction against committed state, and what the answer carries.

use std::collections::HashSet;

use agora_proto::v1::Transaction;
use agora_validator::Address;
use agora_validator::ledger::TxError;

/// Why the checker is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// First admission: check everything, signatures included.
    New,
    /// Re-check after a commit: the signature was verified at admission and
    /// need not be verified again; the state-dependent checks must be.
    Recheck,
}

/// What the checker learned about an acceptable transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The sender's address (derived from the transaction's public key).
    pub sender: Address,
    /// The transaction's nonce.
    pub nonce: u64,
    /// The sender's next nonce in the committed state.
    pub account_nonce: u64,
    /// The fee it offers.
    pub fee: u128,
    /// The only accounts whose state the verdict reads, when those are all
    /// it reads (`ledger::recheck::accounts_read`); None: it reads more,
    /// and is re-checked after every commit.
    pub reads: Option<[Address; 2]>,
}

/// What a commit changed, for [`Mempool::update`]: which pending
/// transactions must be checked again.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// Anything may have changed: re-check every transaction.
    Everything,
    /// Only these accounts changed (and state no [`Admission::reads`]
    /// names): re-check the senders that had a transaction included, or
    /// hold one whose verdict reads more or reads one of these.
    Accounts(&'a HashSet<Address>),
}

/// Checks a transaction (its wire form and what the host decoded it to)
/// against the current committed state.
pub trait TxChecker<D> {
    /// `Ok` with the sender and nonces if the transaction may enter a block,
    /// `Err` with the ledger's reason otherwise (its message says what to
    /// change).
    fn check(&self, tx: &Transaction, decoded: &D, mode: CheckMode) -> Result<Admission, TxError>;
}

impl<D, F: Fn(&Transaction, &D, CheckMode) -> Result<Admission, TxError>> TxChecker<D> for F {
    fn check(&self, tx: &Transaction, decoded: &D, mode: CheckMode) -> Result<Admission, TxError> {
        self(tx, decoded, mode)
    }
}
