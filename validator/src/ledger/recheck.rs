//! Which pending transactions a commit can change the verdict of: the rule
//! that lets the node's mempool re-check, after each block, only the
//! transactions whose inputs the block changed instead of every one.
//!
//! What the admission check ([`super::Ledger::recheck_decoded`]) reads:
//! - every kind: the parameters (`min_fee`) and the signer's account
//!   (nonce, balance);
//! - a transfer at the signer's next nonce: also the recipient's account
//!   (its balance must not overflow, `staking::plan_transfer`);
//! - every other kind: validators, delegations, unbondings, redelegations
//!   and the height, which many blocks change.
//!
//! The parameters are fixed at genesis (no transaction sets them). So the
//! verdict on a pending transfer whose signer's and recipient's account
//! leaves a block left alone is the same after the block as before it; any
//! other transaction must be checked again.

use std::collections::HashSet;

use super::LeafChange;
use super::merkle::leaves::account_of_key;
use super::tx::{DecodedTx, TxKind};
use crate::Address;

/// The only accounts whose state the verdict on `d` reads, when those are
/// all it reads: a transfer's signer and recipient. None for every other
/// kind (re-checked after every commit).
pub fn accounts_read(d: &DecodedTx) -> Option<[Address; 2]> {
    match d.kind {
        TxKind::Transfer { to, .. } => Some([d.signer, to]),
        _ => None,
    }
}

/// The accounts whose leaves `changes` (one block's, or a run's) wrote or
/// removed.
pub fn changed_accounts<'a>(changes: impl IntoIterator<Item = &'a LeafChange>) -> HashSet<Address> {
    changes
        .into_iter()
        .filter_map(|(key, _)| account_of_key(key))
        .collect()
}
