//! Cryptography of Agora: SHA3-256 hashing, BLS12-381 signatures (blst,
//! `min_pk`, the IETF proof-of-possession ciphersuite) and the VRF built on
//! them for everything consensus signs, and Ed25519 under ZIP-215 for
//! accounts (transaction senders, operators, delegators).

pub mod bls;
pub mod ed25519;
pub mod hash;
pub mod sha3_batch;
pub mod vrf;

pub use bls::{BlsError, PublicKey, SecretKey, Signature};
pub use ed25519::{
    AccountKeyCache, AccountKeyError, AccountPublicKey, AccountSecretKey, AccountSignature,
};
pub use hash::{Hash, ZERO_HASH, sha3_256, sha3_256_parts};
