//! The keys of the ledger's unit tests (`tests`, `tests_economics`), from
//! fixed seeds: users' and operators' account keys and validators'
//! consensus keys, so that both suites name the same parties alike.

use crate::crypto::{AccountSecretKey, SecretKey};
use crate::types::{Address, HasAddress};

/// A consensus (BLS) key from a one-byte seed.
pub(super) fn sk(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
}

/// An account (Ed25519) key from a one-byte seed.
pub(super) fn acct(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[i; 32])
}

/// User `i`'s account key (seeds below 100).
pub(super) fn user(i: u8) -> AccountSecretKey {
    acct(i)
}

/// The account key of validator `i`'s operator.
pub(super) fn operator(i: u8) -> AccountSecretKey {
    acct(100 + i)
}

/// Validator `i`'s consensus key.
pub(super) fn consensus(i: u8) -> SecretKey {
    sk(200 + i)
}

/// The address of an account or consensus key.
pub(super) fn addr(k: &impl HasAddress) -> Address {
    k.address()
}
