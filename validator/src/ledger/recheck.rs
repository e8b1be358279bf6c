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
//!
//! And one verdict that needs no signature check: a transaction whose
//! nonce its signer's committed account already used is refused
//! (`WrongNonce`) whatever its signature, now and after any later block
//! (nonces only grow) — [`nonce_already_used`], read from the wire form.

use std::collections::HashSet;

use agora_proto::v1 as pb;

use super::merkle::leaves::account_of_key;
use super::tx::{DecodedTx, TxKind};
use super::{LeafChange, Ledger};
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

/// Whether `ledger`'s committed state already used `tx`'s nonce for the
/// account of its key: then [`Ledger::recheck_decoded`] refuses it
/// (`WrongNonce`) whatever its signature says, and so does every later
/// state. Read from the wire form without decoding or verifying (one
/// SHA3-256 of the key), so a node can drop a relayed copy of a committed
/// transaction before its signature check (7–10% of the relayed copies
/// under load arrived after their block). False when the key is not 32
/// bytes or the body is missing (the decoder refuses those).
pub fn nonce_already_used(ledger: &Ledger, tx: &pb::Transaction) -> bool {
    let Some(body) = &tx.body else {
        return false;
    };
    if tx.public_key.len() != 32 {
        return false;
    }
    let signer = Address::of_key_bytes(&tx.public_key);
    body.nonce < ledger.account(&signer).nonce
}
