//! SHA3-256, the one hash of Agora (DESIGN §3).

use sha3::{Digest, Sha3_256};

/// A 32-byte SHA3-256 digest.
pub type Hash = [u8; 32];

/// The all-zero hash: the block hash of a nil vote and the parent of height 1.
pub const ZERO_HASH: Hash = [0u8; 32];

/// SHA3-256 of `data`.
pub fn sha3_256(data: &[u8]) -> Hash {
    Sha3_256::digest(data).into()
}

/// SHA3-256 of the concatenation of `parts`, without allocating the concatenation.
pub fn sha3_256_parts(parts: &[&[u8]]) -> Hash {
    let mut h = Sha3_256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Reads a 32-byte hash from a byte slice that came from outside; `None` if
/// the length is wrong.
pub fn hash_from_slice(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}
