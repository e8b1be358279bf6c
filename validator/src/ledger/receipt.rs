//! What the ledger says of one transaction: at admission ([`TxCheck`]) and
//! once delivered in a block ([`TxReceipt`], with its [`TxOutcome`] and the
//! line for people that `GetTx` returns).

use super::done::{self, Done};
use super::tx::TxError;
use crate::crypto::Hash;
use crate::types::Address;

/// What [`super::Ledger::check_tx`] learned about an admissible transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxCheck {
    /// The transaction's hash.
    pub hash: Hash,
    /// Its signer.
    pub signer: Address,
    /// Its nonce.
    pub nonce: u64,
    /// The signer's next nonce now; a larger `nonce` waits in the mempool.
    pub next_nonce: u64,
    /// The fee it offers (at least `min_fee`).
    pub fee: u128,
}

/// How a delivered transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    /// Executed.
    Ok,
    /// Passed authentication, broke a staking rule: nonce consumed, nothing else changed.
    Failed(TxError),
    /// Not valid for inclusion: no state change at all.
    Rejected(TxError),
}

/// The result of delivering one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// The transaction's hash.
    pub hash: Hash,
    /// How it ended.
    pub outcome: TxOutcome,
    /// A line for people: "ok", what a staking operation did ([`Done`]),
    /// or the error.
    pub log: String,
}

impl TxReceipt {
    pub(super) fn succeeded(hash: Hash, done: Done) -> Self {
        Self {
            hash,
            outcome: TxOutcome::Ok,
            log: done.to_string(),
        }
    }

    pub(super) fn new(hash: Hash, outcome: TxOutcome) -> Self {
        let log = match &outcome {
            TxOutcome::Ok => done::PLAIN_OK.to_string(),
            TxOutcome::Failed(e) | TxOutcome::Rejected(e) => e.to_string(),
        };
        Self { hash, outcome, log }
    }

    /// The log when it says more than a plain "ok" (why it failed, or what
    /// a staking operation did): what a transaction index needs to keep.
    pub fn detail(&self) -> Option<&str> {
        (self.log != done::PLAIN_OK).then_some(self.log.as_str())
    }

    /// Whether it executed.
    pub fn is_ok(&self) -> bool {
        self.outcome == TxOutcome::Ok
    }
}
