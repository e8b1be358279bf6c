//! A state proof as the wire carries it (`agora.v1.StateProof`) and its
//! verification, written from the tree's definition in `state.proto` rather
//! than borrowed from `jmt`, so an auditor's check does not trust the code
//! that built the tree. Tests check it agrees with `jmt`'s own verifier.

use crate::crypto::sha3_batch::{sha3_256_batch, sha3_256_batch_into};
use crate::crypto::{Hash, sha3_256, sha3_256_parts};
use agora_proto::v1 as pb;

/// Domain separator of a leaf node's hash.
const LEAF_DOMAIN: &[u8] = b"JMT::LeafNode";
/// Domain separator of an internal node's hash.
const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";
/// The hash of an empty subtree.
pub const PLACEHOLDER: Hash = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";
/// Most siblings a path can have (one per key-hash bit).
const MAX_SIBLINGS: usize = 256;

/// Why a proof does not show what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A field has the wrong length or the parts contradict each other.
    #[error("malformed state proof: {0}")]
    Malformed(&'static str),
    /// The proof is about another key than the one asked for.
    #[error("the proof is for another key")]
    WrongKey,
    /// The non-membership leaf could not stand where the key would be.
    #[error("the non-membership proof's leaf is not on the key's path")]
    NotOnPath,
    /// The path hashes to another root: the value (or its absence) is not
    /// what the state of that height holds.
    #[error("the proof's root {computed} is not the certified app hash {expected}")]
    RootMismatch {
        /// Root the proof hashes to, hex.
        computed: String,
        /// The app hash it had to reach, hex.
        expected: String,
    },
}

/// The hash of a leaf node.
pub fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    sha3_256_parts(&[LEAF_DOMAIN, key_hash, value_hash])
}

#[cfg(test)]
thread_local! {
    /// Internal hashes computed on this thread (tests count them).
    pub(super) static INTERNAL_HASHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Notes `n` internal hashes computed (counted in tests only).
fn count_internal_hashes(n: usize) {
    #[cfg(test)]
    INTERNAL_HASHES.with(|c| c.set(c.get() + n as u64));
    let _ = n;
}

/// The hash of an internal range from its halves' hashes.
pub(super) fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    count_internal_hashes(1);
    sha3_256_parts(&[INTERNAL_DOMAIN, left, right])
}

/// [`internal_hash`] of each (left, right) pair, in batches
/// (`sha3_256_batch`), appended to `out`. The messages are assembled in
/// a stack array, a chunk at a time: a block's tree update hashes
/// thousands of pairs, and a heap list of them was a large allocation
/// (fresh pages) at every bit level.
pub(super) fn internal_hashes_into(halves: &[(Hash, Hash)], out: &mut Vec<Hash>) {
    const CHUNK: usize = 256;
    count_internal_hashes(halves.len());
    let mut messages: [[&[u8]; 3]; CHUNK] = [[&[]; 3]; CHUNK];
    for chunk in halves.chunks(CHUNK) {
        for ((l, r), m) in chunk.iter().zip(&mut messages) {
            *m = [INTERNAL_DOMAIN, &l[..], &r[..]];
        }
        sha3_256_batch_into(&messages[..chunk.len()], out);
    }
}

/// [`leaf_hash`] of (key hash, value) pairs, in two batches: the values'
/// hashes, then the leaves'.
pub(super) fn leaf_hashes<'a>(
    leaves: impl Iterator<Item = (&'a Hash, &'a [u8])> + Clone,
) -> Vec<Hash> {
    let values: Vec<[&[u8]; 1]> = leaves.clone().map(|(_, v)| [v]).collect();
    let value_hashes = sha3_256_batch(&values);
    let nodes: Vec<[&[u8]; 3]> = leaves
        .zip(&value_hashes)
        .map(|((k, _), vh)| [LEAF_DOMAIN, &k[..], &vh[..]])
        .collect();
    sha3_256_batch(&nodes)
}

fn hash32(b: &[u8], what: &'static str) -> Result<Hash, ProofError> {
    b.try_into().map_err(|_| ProofError::Malformed(what))
}

/// Bit `i` of a key hash, most significant first.
fn bit(h: &Hash, i: usize) -> bool {
    h[i / 8] & (0x80 >> (i % 8)) != 0
}

fn common_prefix_bits(a: &Hash, b: &Hash) -> usize {
    (0..256).take_while(|&i| bit(a, i) == bit(b, i)).count()
}

/// Checks that `proof` shows `key` holding `proof.value` (or nothing, when
/// `present` is false) in a tree whose root is `app_hash`.
pub fn verify(proof: &pb::StateProof, key: &[u8], app_hash: &Hash) -> Result<(), ProofError> {
    if proof.key != key {
        return Err(ProofError::WrongKey);
    }
    if proof.siblings.len() > MAX_SIBLINGS {
        return Err(ProofError::Malformed("more siblings than key bits"));
    }
    let key_hash = sha3_256(key);
    let other = match (&proof.other_key_hash[..], &proof.other_value_hash[..]) {
        ([], []) => None,
        (k, v) => Some((hash32(k, "other_key_hash")?, hash32(v, "other_value_hash")?)),
    };
    let start = match (proof.present, other) {
        (true, None) => leaf_hash(&key_hash, &sha3_256(&proof.value)),
        (true, Some(_)) => {
            return Err(ProofError::Malformed(
                "a membership proof has no other leaf",
            ));
        }
        (false, _) if !proof.value.is_empty() => {
            return Err(ProofError::Malformed("an absent key has a value"));
        }
        (false, None) => PLACEHOLDER,
        (false, Some((ok, ov))) => {
            // The other leaf is alone in the subtree the key's path ends in,
            // so it shares the key's path for every sibling above it.
            if ok == key_hash {
                return Err(ProofError::Malformed("the other leaf is the key itself"));
            }
            if common_prefix_bits(&ok, &key_hash) < proof.siblings.len() {
                return Err(ProofError::NotOnPath);
            }
            leaf_hash(&ok, &ov)
        }
    };
    let depth = proof.siblings.len();
    let mut h = start;
    // Siblings run from the deepest level up: sibling i sits at depth
    // `depth - 1 - i`, on the side opposite the key's bit there.
    for (i, s) in proof.siblings.iter().enumerate() {
        let s = hash32(s, "sibling")?;
        h = if bit(&key_hash, depth - 1 - i) {
            internal_hash(&s, &h)
        } else {
            internal_hash(&h, &s)
        };
    }
    if h != *app_hash {
        return Err(ProofError::RootMismatch {
            computed: hex::encode(h),
            expected: hex::encode(app_hash),
        });
    }
    Ok(())
}

/// A leaf as a proof names it: its key hash and value hash.
#[cfg(test)]
pub(crate) type LeafHashes = (Hash, Hash);

/// Reads `jmt`'s proof through its borsh encoding, the one public view of
/// its siblings: `Option<leaf>` (tag, key hash, value hash), then a `u32`
/// little-endian count of nodes, each a tag (0 empty, 1 internal with left
/// and right hashes, 2 leaf with key and value hashes). Tests only: the
/// state tree is checked against `jmt`.
#[cfg(test)]
pub(crate) fn from_jmt(
    proof: &jmt::proof::SparseMerkleProof<super::Sha3>,
) -> Result<(Option<LeafHashes>, Vec<Hash>), ProofError> {
    let bytes = borsh::to_vec(proof).map_err(|_| ProofError::Malformed("jmt proof"))?;
    let mut r = bytes.as_slice();
    let mut take = |n: usize| take_bytes(&mut r, n);
    let leaf = match take(1)?[0] {
        0 => None,
        1 => Some((hash32(take(32)?, "leaf")?, hash32(take(32)?, "leaf")?)),
        _ => return Err(ProofError::Malformed("jmt proof leaf tag")),
    };
    let count = u32::from_le_bytes(hash_n::<4>(take(4)?)?) as usize;
    let mut siblings = Vec::with_capacity(count.min(MAX_SIBLINGS));
    for _ in 0..count {
        let node = match take(1)?[0] {
            0 => PLACEHOLDER,
            1 => internal_hash(&hash32(take(32)?, "node")?, &hash32(take(32)?, "node")?),
            2 => leaf_hash(&hash32(take(32)?, "node")?, &hash32(take(32)?, "node")?),
            _ => return Err(ProofError::Malformed("jmt proof node tag")),
        };
        siblings.push(node);
    }
    if !r.is_empty() {
        return Err(ProofError::Malformed("jmt proof trailing bytes"));
    }
    Ok((leaf, siblings))
}

#[cfg(test)]
fn take_bytes<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], ProofError> {
    if r.len() < n {
        return Err(ProofError::Malformed("jmt proof truncated"));
    }
    let (h, t) = r.split_at(n);
    *r = t;
    Ok(h)
}

#[cfg(test)]
fn hash_n<const N: usize>(b: &[u8]) -> Result<[u8; N], ProofError> {
    b.try_into().map_err(|_| ProofError::Malformed("length"))
}
