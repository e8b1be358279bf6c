//! Snapshot chunks for state sync: the state's leaves split by the first
//! bits of their key hash, each chunk with the root of its subtree, so a
//! joining node checks every chunk on arrival and the table of contents
//! (the manifest) against a certified app hash, before it holds the rest.
//!
//! Rule (`state.proto`, `SnapshotManifest`): chunk `i` of a manifest with
//! `prefix_bits = p` holds the leaves whose key hash starts with `i`
//! written in `p` bits. The tree of `state.proto` is a sparse binary
//! Merkle tree over key-hash bits in which an empty subtree is the
//! placeholder and a subtree of one leaf is that leaf, so its root is a
//! function of the chunk roots *and* of how many leaves each holds (none,
//! one, more): [`combine`] applies that rule upwards. Written from the
//! tree's definition, like [`super::proof`], and tested against `jmt`'s
//! roots.
//!
//! What a hostile server can do and what it costs it: a manifest whose
//! roots do not hash to the certified app hash is rejected whole; a chunk
//! whose leaves (a value changed, a leaf left out or added, a leaf of
//! another chunk, a repeated key, a wrong order) do not hash to its root in
//! a verified manifest is rejected and charged to the peer that sent it.
//! The leaf counts of a manifest are bound by the root only in their class
//! (0, 1, more), so they are used as hints, never as a check. Even a
//! chunk's root is not always bound: a lone leaf's hash rises unchanged,
//! so a chunk of one leaf beside an empty sibling may trade summaries with
//! it. Under such a manifest the emptied chunk is accepted empty and the
//! other can never be served (no leaf of its prefix hashes to the moved
//! root), so a joiner never completes a wrong state from it; the peers
//! offering it fail that chunk and are charged (test
//! `a_manifest_may_move_a_lone_leaf_but_never_completes_without_it`).

use super::proof::{PLACEHOLDER, leaf_hash};
use crate::crypto::{Hash, sha3_256, sha3_256_parts};
use agora_proto::v1 as pb;

/// Most prefix bits a manifest may use: 4,096 chunks (a manifest of about
/// 150 KB; a million accounts give chunks of about 250 leaves).
pub const MAX_PREFIX_BITS: u32 = 12;

/// Leaves a serving node aims to put in one chunk.
pub const TARGET_CHUNK_LEAVES: usize = 1024;

/// Bytes a serving node lets one chunk's leaves take: a chunk answer must
/// fit one frame (4 MiB) with room to spare.
pub const MAX_CHUNK_BYTES: usize = 3 * 1024 * 1024;

/// Domain separator of an internal node's hash (as in `state.proto`).
const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";

/// Why a manifest or a chunk is not part of the certified state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The manifest's shape is impossible.
    #[error("malformed snapshot manifest: {0}")]
    Manifest(&'static str),
    /// The manifest's roots hash to another root than the certified one.
    #[error("the snapshot manifest hashes to {computed}, the certified app hash is {expected}")]
    ManifestRoot {
        /// Root of the manifest, hex.
        computed: String,
        /// The app hash it had to reach, hex.
        expected: String,
    },
    /// The chunk index is not in the manifest.
    #[error("chunk {index} is not in a manifest of {chunks} chunks")]
    NoSuchChunk {
        /// The index asked about.
        index: u32,
        /// Chunks in the manifest.
        chunks: usize,
    },
    /// A leaf's key hash does not start with the chunk's prefix.
    #[error("chunk {index}: a leaf belongs to another chunk")]
    WrongChunk {
        /// The chunk.
        index: u32,
    },
    /// Leaves not in strictly ascending key-hash order (or a key twice).
    #[error("chunk {index}: leaves out of key-hash order or repeated")]
    Order {
        /// The chunk.
        index: u32,
    },
    /// The leaves hash to another root than the manifest's.
    #[error("chunk {index}: its leaves hash to {computed}, the manifest says {expected}")]
    ChunkRoot {
        /// The chunk.
        index: u32,
        /// Root of the leaves served, hex.
        computed: String,
        /// The manifest's root, hex.
        expected: String,
    },
}

/// One leaf as the tree sees it: its key hash and its node hash.
#[derive(Clone, Copy)]
struct Hashed {
    key_hash: Hash,
    node: Hash,
}

fn hashed(key: &[u8], value: &[u8]) -> Hashed {
    let key_hash = sha3_256(key);
    Hashed {
        key_hash,
        node: leaf_hash(&key_hash, &sha3_256(value)),
    }
}

fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    sha3_256_parts(&[INTERNAL_DOMAIN, left, right])
}

/// Bit `i` of a key hash, most significant first.
fn bit(h: &Hash, i: usize) -> bool {
    h[i / 8] & (0x80 >> (i % 8)) != 0
}

/// The first `bits` bits of a key hash as a number (the chunk index).
fn prefix(h: &Hash, bits: u32) -> u32 {
    debug_assert!(bits <= MAX_PREFIX_BITS);
    if bits == 0 {
        return 0;
    }
    (u32::from(h[0]) << 8 | u32::from(h[1])) >> (16 - bits)
}

/// Root of the subtree at `depth` holding exactly `leaves` (sorted by key
/// hash, distinct, all sharing the first `depth` bits).
fn subtree_root(leaves: &[Hashed], depth: usize) -> Hash {
    match leaves {
        [] => PLACEHOLDER,
        [one] => one.node,
        _ => {
            debug_assert!(depth < 256, "distinct key hashes part before bit 256");
            let split = leaves.partition_point(|l| !bit(&l.key_hash, depth));
            internal_hash(
                &subtree_root(&leaves[..split], depth + 1),
                &subtree_root(&leaves[split..], depth + 1),
            )
        }
    }
}

/// A subtree's root and how many leaves it holds, as [`combine`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    root: Hash,
    leaves: u64,
}

/// The parent of two sibling subtrees, by the tree's rule: nothing under
/// it is the placeholder, one leaf under it is that leaf, more is an
/// internal node.
fn combine(left: Summary, right: Summary) -> Summary {
    let leaves = left.leaves.saturating_add(right.leaves);
    let root = match (left.leaves, right.leaves) {
        (0, 0) => PLACEHOLDER,
        (1, 0) => left.root,
        (0, 1) => right.root,
        _ => internal_hash(&left.root, &right.root),
    };
    Summary { root, leaves }
}

/// A snapshot split for serving: the manifest and each chunk's leaves in
/// key-hash order.
#[derive(Debug, Clone)]
pub struct SnapshotChunks {
    /// The table of contents a joiner checks against the app hash.
    pub manifest: pb::SnapshotManifest,
    /// Chunk `i`'s leaves, in ascending key-hash order.
    pub chunks: Vec<Vec<pb::StateLeaf>>,
}

/// Splits a state's leaves (any order) into chunks of about
/// [`TARGET_CHUNK_LEAVES`] each, finer when a chunk would pass
/// [`MAX_CHUNK_BYTES`] (up to [`MAX_PREFIX_BITS`]).
pub fn split(leaves: Vec<(Vec<u8>, Vec<u8>)>) -> SnapshotChunks {
    let all = sorted(leaves);
    let mut bits = 0;
    while bits < MAX_PREFIX_BITS && (all.len() >> bits) > TARGET_CHUNK_LEAVES {
        bits += 1;
    }
    while bits < MAX_PREFIX_BITS && largest_chunk_bytes(&all, bits) > MAX_CHUNK_BYTES {
        bits += 1;
    }
    chunked(&all, bits)
}

/// [`split`] with a chosen number of prefix bits (at most
/// [`MAX_PREFIX_BITS`]).
pub fn split_with_bits(leaves: Vec<(Vec<u8>, Vec<u8>)>, bits: u32) -> SnapshotChunks {
    assert!(
        bits <= MAX_PREFIX_BITS,
        "at most {MAX_PREFIX_BITS} prefix bits"
    );
    chunked(&sorted(leaves), bits)
}

/// The leaves with their hashes, in ascending key-hash order.
fn sorted(leaves: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Hashed, pb::StateLeaf)> {
    let mut all: Vec<(Hashed, pb::StateLeaf)> = leaves
        .into_iter()
        .map(|(key, value)| (hashed(&key, &value), pb::StateLeaf { key, value }))
        .collect();
    all.sort_unstable_by_key(|a| a.0.key_hash);
    all
}

fn chunked(all: &[(Hashed, pb::StateLeaf)], bits: u32) -> SnapshotChunks {
    let mut summaries = Vec::with_capacity(1 << bits);
    let mut chunks = Vec::with_capacity(1 << bits);
    let mut rest = all;
    for i in 0..(1u32 << bits) {
        let n = rest.partition_point(|(h, _)| prefix(&h.key_hash, bits) == i);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let nodes: Vec<Hashed> = chunk.iter().map(|(h, _)| *h).collect();
        summaries.push(pb::ChunkSummary {
            root: subtree_root(&nodes, bits as usize).to_vec(),
            leaves: chunk.len() as u64,
        });
        chunks.push(chunk.iter().map(|(_, l)| l.clone()).collect());
    }
    debug_assert!(rest.is_empty(), "every leaf falls in one chunk");
    SnapshotChunks {
        manifest: pb::SnapshotManifest {
            prefix_bits: bits,
            chunks: summaries,
        },
        chunks,
    }
}

fn largest_chunk_bytes(sorted: &[(Hashed, pb::StateLeaf)], bits: u32) -> usize {
    let mut sizes = vec![0usize; 1 << bits];
    for (h, l) in sorted {
        sizes[prefix(&h.key_hash, bits) as usize] += l.key.len() + l.value.len() + 8;
    }
    sizes.into_iter().max().unwrap_or(0)
}

fn summaries(m: &pb::SnapshotManifest) -> Result<Vec<Summary>, ChunkError> {
    if m.prefix_bits > MAX_PREFIX_BITS {
        return Err(ChunkError::Manifest("more prefix bits than allowed"));
    }
    if m.chunks.len() != 1 << m.prefix_bits {
        return Err(ChunkError::Manifest("chunk count is not 2^prefix_bits"));
    }
    m.chunks
        .iter()
        .map(|c| {
            let root: Hash = c.root[..]
                .try_into()
                .map_err(|_| ChunkError::Manifest("a chunk root is not 32 bytes"))?;
            if c.leaves == 0 && root != PLACEHOLDER {
                return Err(ChunkError::Manifest("an empty chunk with a root"));
            }
            Ok(Summary {
                root,
                leaves: c.leaves,
            })
        })
        .collect()
}

/// Checks a manifest's shape alone (at most [`MAX_PREFIX_BITS`], one
/// summary per chunk, 32-byte roots, the placeholder for an empty chunk),
/// before anything is known to check its roots against: what a joining
/// node asks of an offer before it keeps it. A manifest of this shape
/// encodes in at most 4,096 × 47 bytes.
pub fn check_shape(m: &pb::SnapshotManifest) -> Result<(), ChunkError> {
    summaries(m).map(drop)
}

/// The root a manifest's chunk roots hash up to (what a snapshot of that
/// state has as its app hash).
pub fn manifest_root(m: &pb::SnapshotManifest) -> Result<Hash, ChunkError> {
    let mut level = summaries(m)?;
    while level.len() > 1 {
        level = level.chunks(2).map(|p| combine(p[0], p[1])).collect();
    }
    Ok(level.first().map_or(PLACEHOLDER, |s| s.root))
}

/// Checks that a manifest's chunk roots hash up to `app_hash` (the app
/// hash of the header after the snapshot's height, verified by the caller).
pub fn verify_manifest(m: &pb::SnapshotManifest, app_hash: &Hash) -> Result<(), ChunkError> {
    let root = manifest_root(m)?;
    if root != *app_hash {
        return Err(ChunkError::ManifestRoot {
            computed: hex::encode(root),
            expected: hex::encode(app_hash),
        });
    }
    Ok(())
}

/// Checks chunk `index` of a manifest already verified against the app
/// hash: its leaves are in the chunk's prefix, in strictly ascending
/// key-hash order, and hash to the chunk's root.
pub fn verify_chunk(
    m: &pb::SnapshotManifest,
    index: u32,
    leaves: &[pb::StateLeaf],
) -> Result<(), ChunkError> {
    let expected = m
        .chunks
        .get(index as usize)
        .filter(|_| m.prefix_bits <= MAX_PREFIX_BITS)
        .ok_or(ChunkError::NoSuchChunk {
            index,
            chunks: m.chunks.len(),
        })?;
    let nodes: Vec<Hashed> = leaves.iter().map(|l| hashed(&l.key, &l.value)).collect();
    if nodes
        .iter()
        .any(|h| prefix(&h.key_hash, m.prefix_bits) != index)
    {
        return Err(ChunkError::WrongChunk { index });
    }
    if nodes.windows(2).any(|w| w[0].key_hash >= w[1].key_hash) {
        return Err(ChunkError::Order { index });
    }
    let root = subtree_root(&nodes, m.prefix_bits as usize);
    if root[..] != expected.root[..] {
        return Err(ChunkError::ChunkRoot {
            index,
            computed: hex::encode(root),
            expected: hex::encode(&expected.root),
        });
    }
    Ok(())
}
