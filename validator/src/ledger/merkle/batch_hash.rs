//! Hashing many shaped nodes at once: each bit level of every node handed
//! in is one batch of SHA3-256 (see [`hash_all`]).

use super::super::proof::{PLACEHOLDER, internal_hashes_into};
use super::{INNER, Internal, MASKS, Range, Unhashed, nibble_hash_in, range_in};
use crate::crypto::Hash;

/// A node's parts while [`hash_all`] fills its inner hashes.
struct Filling<'a> {
    exist: u16,
    leaves: u16,
    /// The children's hashes, in nibble order.
    kids: &'a [Hash],
    /// The inner hashes being filled: the node's own cache, or one lent
    /// for the pass to a sparse node.
    cache: &'a mut [Hash],
}

impl<'a> Filling<'a> {
    /// The parts of `node`, whose cache is its own or, if `lent` names
    /// one, `spare[lent]`.
    fn of(node: &'a mut Internal, lent: Option<usize>, spare: &'a mut [[Hash; INNER]]) -> Self {
        let count = node.count();
        let (kids, own) = node.hashes.split_at_mut(count);
        let cache = match lent {
            Some(j) => &mut spare[j][..],
            None => own,
        };
        debug_assert_eq!(cache.len(), INNER, "a cache per node being hashed");
        Self {
            exist: node.exist,
            leaves: node.leaves,
            kids,
            cache,
        }
    }

    /// The hash of half `q` of a range: from the cache (filled a level
    /// below) or, for a single nibble, its child.
    fn half_hash(&self, q: usize) -> Hash {
        if q >= INNER {
            nibble_hash_in(self.exist, self.kids, (q - INNER) as u8)
        } else {
            self.cache[q]
        }
    }
}

/// Buffers [`hash_all`] reuses from one call to the next (a tree keeps
/// one), so that once they have grown a block's hashing allocates only
/// the digests' lists. Bound: about a block's shaped nodes (15 hashes
/// each for the lent caches, one target and two halves per hash).
#[derive(Debug, Default)]
pub(in super::super) struct HashScratch {
    /// Caches lent to the sparse nodes of one call.
    spare: Vec<[Hash; INNER]>,
    /// Per item: the index of its lent cache in `spare`, if sparse.
    lent: Vec<Option<usize>>,
    /// The ranges of one bit level to hash: (item, heap position).
    targets: Vec<(usize, usize)>,
    /// Their (left, right) halves.
    halves: Vec<(Hash, Hash)>,
    /// Their hashes.
    digests: Vec<Hash>,
}

/// Clones start with empty buffers: they hold nothing between calls.
impl Clone for HashScratch {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Computes the inner and root hashes of the shaped nodes at positions
/// `which` of `items`, whose children's hashes are all set, and returns
/// the roots in `which`'s order (the items stay where they are). The ranges of one
/// bit level of every node are hashed in one batch (`sha3_256_batch`, up
/// to eight at once): a block's update hands in every new node of one
/// nibble depth together, so a level holds hundreds of independent hashes
/// where a single node's path has one.
pub(in super::super) fn hash_all<T>(
    items: &mut [T],
    which: &[u32],
    unhashed: impl Fn(&mut T) -> &mut Unhashed,
    scratch: &mut HashScratch,
) -> Vec<Hash> {
    let HashScratch {
        spare,
        lent,
        targets,
        halves,
        digests,
    } = scratch;
    // A sparse node borrows a cache for the pass; a dense one fills its
    // own in place.
    spare.clear();
    lent.clear();
    for &w in which {
        let u = unhashed(&mut items[w as usize]);
        if u.node.inner().is_some() {
            lent.push(None);
        } else {
            lent.push(Some(spare.len()));
            spare.push([PLACEHOLDER; INNER]);
        }
    }
    for level in (0..4u32).rev() {
        targets.clear();
        halves.clear();
        let positions = (1 << level) - 1..(2 << level) - 1;
        for (k, &w) in which.iter().enumerate() {
            let u = unhashed(&mut items[w as usize]);
            let stale = u.stale;
            let f = Filling::of(&mut u.node, lent[k], spare);
            for p in positions.clone() {
                if MASKS[p] & stale == 0 {
                    continue;
                }
                f.cache[p] = match range_in(f.exist, f.leaves, p) {
                    Range::Empty => PLACEHOLDER,
                    Range::Lone(n) => nibble_hash_in(f.exist, f.kids, n),
                    Range::Many => {
                        targets.push((k, p));
                        halves.push((f.half_hash(2 * p + 1), f.half_hash(2 * p + 2)));
                        continue;
                    }
                };
            }
        }
        digests.clear();
        internal_hashes_into(halves, digests);
        for (&(k, p), &h) in targets.iter().zip(digests.iter()) {
            let u = unhashed(&mut items[which[k] as usize]);
            Filling::of(&mut u.node, lent[k], spare).cache[p] = h;
        }
    }
    which
        .iter()
        .enumerate()
        .map(|(k, &w)| {
            let u = unhashed(&mut items[w as usize]);
            Filling::of(&mut u.node, lent[k], spare).cache[0]
        })
        .collect()
}
