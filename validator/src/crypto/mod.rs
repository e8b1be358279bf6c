//! Cryptography of Agora: SHA3-256 hashing, BLS12-381 signatures (blst,
//! `min_pk`, the IETF proof-of-possession ciphersuite) and the VRF built on them.

pub mod bls;
pub mod hash;
pub mod vrf;

pub use bls::{BlsError, PublicKey, SecretKey, Signature};
pub use hash::{Hash, ZERO_HASH, sha3_256, sha3_256_parts};
