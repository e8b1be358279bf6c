//! One internal node of the state tree: up to 16 children, one per value of
//! the key-hash nibble at the node's depth, and the binary Merkle tree the
//! node stands for over them (four bit levels).
//!
//! The hash rule is `state.proto`'s, range by range: a range of nibbles
//! holding nothing hashes to [`PLACEHOLDER`]; a range holding one leaf and
//! nothing else *is* that leaf's hash (a lone leaf stands for its
//! subtree); any other range is `H(left half, right half)`. An internal
//! child always holds two or more leaves (the tree keeps that invariant,
//! see `tree.rs`), so only leaves collapse.
//!
//! Why the cache: a node with many children keeps the hashes of its 15
//! inner ranges, so a block that changes one child rehashes the 4 ranges
//! above it, not all 15. With a million leaves a block of transfers
//! rewrites thousands of dense nodes, and rehashing each whole was most
//! of the tree's cost (issue 13). Sparse nodes (fewer than [`DENSE`]
//! children: most of the bottom level of a big tree) keep no cache:
//! computing their few non-trivial ranges is cheaper than 480 bytes each.

use super::proof::{PLACEHOLDER, internal_hash};
use crate::crypto::Hash;

/// Where a child lives in the tree's arenas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Child {
    /// A leaf, by its index in the leaf arena.
    Leaf(u32),
    /// An internal node (two or more leaves below), by its index in the
    /// node arena.
    Node(u32),
}

/// A child and its hash, as its parent (or a version's root) holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The child's hash: a leaf's hash or an internal node's root range.
    pub hash: Hash,
    /// Where the child is.
    pub child: Child,
}

/// Inner ranges, in heap order: 0 is the whole node, 1–2 its halves, 3–6
/// quarters, 7–14 pairs. Position 15 + n is nibble n itself.
const INNER: usize = 15;

/// Nodes with at least this many children keep their inner hashes.
const DENSE: u32 = 4;

/// The nibbles under each heap position, as a bit mask (bit n: nibble n).
const MASKS: [u16; 2 * INNER + 1] = masks();

const fn masks() -> [u16; 2 * INNER + 1] {
    let mut out = [0u16; 2 * INNER + 1];
    let mut p = 0;
    while p < out.len() {
        let level = (usize::BITS - 1 - (p + 1).leading_zeros()) as usize;
        let width = 16 >> level;
        let index = p + 1 - (1 << level);
        out[p] = (((1u32 << width) - 1) << (index * width)) as u16;
        p += 1;
    }
    out
}

/// What a range of nibbles holds, for the hash rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Range {
    /// No child.
    Empty,
    /// One child, a leaf, at this nibble: the range's hash is the leaf's.
    Lone(u8),
    /// Two or more leaves below.
    Many,
}

/// An internal node. Immutable once in the arena: a block that changes a
/// child writes a new node (the old one still serves older versions).
///
/// Layout: the child indices sit inline and every hash sits in one heap
/// buffer, so shaping a node costs one allocation (a 1 M-account block
/// shapes thousands; two allocations each were a tenth of its update).
#[derive(Debug, Clone, Default)]
pub(super) struct Internal {
    /// Bit n set: nibble n has a child.
    exist: u16,
    /// Bit n set: nibble n's child is a leaf.
    leaves: u16,
    /// The arena index of the child at each nibble (a leaf's or a node's,
    /// as `leaves` says); meaningless where `exist` has no bit.
    kids: [u32; 16],
    /// The children's hashes in nibble order, then — dense nodes only —
    /// the hashes of the 15 inner ranges (heap order).
    hashes: Box<[Hash]>,
}

/// A node shaped over its children whose own hashes are not computed yet:
/// [`hash_all`] computes them once every child's hash is known.
#[derive(Debug)]
pub(super) struct Unhashed {
    /// The node; a dense one holds its base's cached inner hashes.
    pub node: Internal,
    /// The nibbles whose ranges must be computed (all, without a cache to
    /// reuse).
    stale: u16,
}

impl Internal {
    /// A node over `children` (by nibble), and its hash. `dirty` names the
    /// nibbles that differ from `base`, whose cached inner hashes are
    /// reused for every range holding none of them.
    #[cfg(test)]
    pub(super) fn new(
        children: &[Option<Slot>; 16],
        base: Option<&Internal>,
        dirty: u16,
    ) -> (Self, Hash) {
        let mut one = [Self::shape(
            children,
            base,
            dirty,
            &mut BufferPool::default(),
        )];
        let root = hash_all(&mut one, &[0], |u| u, &mut HashScratch::default())[0];
        let [u] = one;
        (u.node, root)
    }

    /// A node over `children` (by nibble), its hashes left to [`hash_all`].
    /// `dirty` names the nibbles that differ from `base`, whose cached
    /// inner hashes are kept for every range holding none of them.
    pub(super) fn shape(
        children: &[Option<Slot>; 16],
        base: Option<&Internal>,
        dirty: u16,
        pool: &mut BufferPool,
    ) -> Unhashed {
        let mut node = Self::default();
        for (n, s) in (0..16u8).zip(children) {
            if let Some(s) = s {
                node.exist |= 1 << n;
                node.set_child(n, s.child);
            }
        }
        let count = node.exist.count_ones() as usize;
        let dense = count >= DENSE as usize;
        let mut hashes = pool.take(count + if dense { INNER } else { 0 });
        for (h, s) in hashes.iter_mut().zip(children.iter().flatten()) {
            *h = s.hash;
        }
        let mut stale = u16::MAX;
        if dense {
            match base.and_then(Internal::inner) {
                Some(inner) => {
                    hashes[count..].copy_from_slice(inner);
                    stale = dirty;
                }
                None => hashes[count..].fill(PLACEHOLDER),
            }
        }
        node.hashes = hashes;
        Unhashed { node, stale }
    }

    /// `base` with the children at some nibbles replaced (each had a
    /// child and keeps one), its hashes left to [`hash_all`]. This is the
    /// common case — a block changing accounts that exist keeps every
    /// node's shape — so the base's buffer is copied whole and patched
    /// rather than the node rebuilt child by child.
    pub(super) fn patched(
        base: &Internal,
        replaced: impl IntoIterator<Item = (u8, Slot)>,
        pool: &mut BufferPool,
    ) -> Unhashed {
        let mut node = Internal {
            exist: base.exist,
            leaves: base.leaves,
            kids: base.kids,
            hashes: pool.take(base.hashes.len()),
        };
        node.hashes.copy_from_slice(&base.hashes);
        let mut dirty = 0u16;
        for (n, s) in replaced {
            let bit = 1u16 << n;
            debug_assert!(node.exist & bit != 0, "a replaced child at nibble {n}");
            node.set_child_hash(n, s.hash);
            node.set_child(n, s.child);
            dirty |= bit;
        }
        // A dense node's cache is its base's: only ranges over a replaced
        // child are stale. A sparse node computes all of its ranges.
        let stale = if node.inner().is_some() {
            dirty
        } else {
            u16::MAX
        };
        Unhashed { node, stale }
    }

    /// Records where the child at nibble `n` (which `exist` holds) lives:
    /// its arena index, and whether it is a leaf.
    fn set_child(&mut self, n: u8, child: Child) {
        let bit = 1u16 << n;
        self.kids[usize::from(n)] = match child {
            Child::Leaf(i) => {
                self.leaves |= bit;
                i
            }
            Child::Node(i) => {
                self.leaves &= !bit;
                i
            }
        };
    }

    /// How many children the node has.
    fn count(&self) -> usize {
        self.exist.count_ones() as usize
    }

    /// The cached inner hashes (heap order), if the node is dense.
    fn inner(&self) -> Option<&[Hash]> {
        let count = self.count();
        (self.hashes.len() > count).then(|| &self.hashes[count..])
    }

    /// Sets the hash of the child at nibble `n` (a node that was
    /// [`Unhashed`] when this one was shaped).
    pub(super) fn set_child_hash(&mut self, n: u8, hash: Hash) {
        let bit = 1u16 << n;
        debug_assert!(self.exist & bit != 0, "a child at nibble {n}");
        let rank = (self.exist & (bit - 1)).count_ones() as usize;
        self.hashes[rank] = hash;
    }

    /// What the range at heap position `p` holds.
    pub(super) fn range(&self, p: usize) -> Range {
        range_in(self.exist, self.leaves, p)
    }

    /// The child at nibble `n`, if any.
    pub(super) fn slot(&self, n: u8) -> Option<Slot> {
        let bit = 1u16 << n;
        if self.exist & bit == 0 {
            return None;
        }
        let rank = (self.exist & (bit - 1)).count_ones() as usize;
        let i = self.kids[usize::from(n)];
        Some(Slot {
            hash: self.hashes[rank],
            child: if self.leaves & bit != 0 {
                Child::Leaf(i)
            } else {
                Child::Node(i)
            },
        })
    }

    /// Every child, with its nibble.
    pub(super) fn children(&self) -> impl Iterator<Item = (u8, Slot)> + '_ {
        (0..16u8).filter_map(|n| Some((n, self.slot(n)?)))
    }

    /// The hash of the range at heap position `p` by the hash rule, with
    /// `half(q)` giving the hash of inner range `q` when `p` has two or
    /// more leaves below (nibble positions are read from the children).
    fn range_hash(&self, p: usize, half: impl Fn(usize) -> Hash) -> Hash {
        match self.range(p) {
            Range::Empty => PLACEHOLDER,
            Range::Lone(n) => self.nibble_hash(n),
            Range::Many if p >= INNER => self.nibble_hash((p - INNER) as u8),
            Range::Many => {
                let side = |q: usize| {
                    if q >= INNER {
                        self.nibble_hash((q - INNER) as u8)
                    } else {
                        half(q)
                    }
                };
                internal_hash(&side(2 * p + 1), &side(2 * p + 2))
            }
        }
    }

    fn nibble_hash(&self, n: u8) -> Hash {
        nibble_hash_in(self.exist, &self.hashes, n)
    }

    /// The hash of the range at heap position `p`: read from the cache,
    /// or computed from the children (sparse nodes).
    pub(super) fn hash_at(&self, p: usize) -> Hash {
        if let (Some(inner), true) = (self.inner(), p < INNER) {
            return inner[p];
        }
        self.range_hash(p, |q| self.hash_at(q))
    }

    /// Follows nibble `n` down the node's four bit levels, pushing the
    /// sibling hash met at each level (top first), until the range is no
    /// longer `Many`: then the path ends at what the range holds (a lone
    /// leaf, or nothing), or, after four levels, at the child at `n`.
    pub(super) fn descend(&self, n: u8, siblings: &mut Vec<Hash>) -> Option<Slot> {
        let mut p = 0;
        for level in 0..4 {
            match self.range(p) {
                Range::Empty => return None,
                Range::Lone(m) => return self.slot(m),
                Range::Many => {}
            }
            let bit = usize::from((n >> (3 - level)) & 1);
            siblings.push(self.hash_at(2 * p + 2 - bit));
            p = 2 * p + 1 + bit;
        }
        debug_assert_eq!(p, INNER + usize::from(n));
        self.slot(n)
    }
}

/// What the range at heap position `p` holds in a node whose children
/// are `exist` and whose leaf children are `leaves`.
fn range_in(exist: u16, leaves: u16, p: usize) -> Range {
    let m = exist & MASKS[p];
    match m.count_ones() {
        0 => Range::Empty,
        1 if leaves & m != 0 => Range::Lone(m.trailing_zeros() as u8),
        _ => Range::Many,
    }
}

/// The hash of the child at nibble `n` (the placeholder if there is
/// none), from the children's hashes in nibble order.
fn nibble_hash_in(exist: u16, kids: &[Hash], n: u8) -> Hash {
    let bit = 1u16 << n;
    if exist & bit == 0 {
        return PLACEHOLDER;
    }
    kids[(exist & (bit - 1)).count_ones() as usize]
}

#[path = "batch_hash.rs"]
mod batch_hash;
#[path = "buffer_pool.rs"]
mod buffer_pool;
pub(super) use batch_hash::{HashScratch, hash_all};
pub(super) use buffer_pool::BufferPool;

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Slot {
        Slot {
            hash: [i; 32],
            child: Child::Leaf(u32::from(i)),
        }
    }

    #[test]
    fn masks_cover_the_ranges_of_each_level() {
        assert_eq!(MASKS[0], 0xffff);
        assert_eq!((MASKS[1], MASKS[2]), (0x00ff, 0xff00));
        assert_eq!(MASKS[3], 0x000f);
        assert_eq!(MASKS[14], 0xc000);
        for n in 0..16 {
            assert_eq!(MASKS[INNER + n], 1 << n);
        }
    }

    /// A dense node rebuilt from a cached base with one nibble marked
    /// dirty hashes to what it hashes to built from nothing; with the
    /// change left unmarked (the negative control) it does not.
    #[test]
    fn the_cache_gives_the_hash_computed_from_nothing() {
        let mut children: [Option<Slot>; 16] = [None; 16];
        for n in 0..12u8 {
            children[usize::from(n) + 2] = Some(leaf(n + 1));
        }
        let (base, _) = Internal::new(&children, None, u16::MAX);
        assert!(base.inner().is_some(), "12 children make a dense node");
        children[5] = Some(leaf(99));
        children[13] = None;
        let dirty = (1 << 5) | (1 << 13);
        let (fresh, want) = Internal::new(&children, None, u16::MAX);
        let (cached, got) = Internal::new(&children, Some(&base), dirty);
        assert_eq!(got, want);
        assert_eq!(cached.hash_at(3), fresh.hash_at(3));
        let (_, wrong) = Internal::new(&children, Some(&base), 1 << 5);
        assert_ne!(wrong, want, "an unmarked change keeps a stale range");
    }

    /// A node patched from its base (children replaced in place, a leaf
    /// turned into a node among them) has the hashes of the same node
    /// built from nothing, dense or sparse, and its buffer may come from
    /// the pool dirty: every hash in it is rewritten. The control: the
    /// same patch hashed with its base's stale cache trusted whole gives
    /// another root.
    #[test]
    fn a_patched_node_hashes_as_one_built_from_nothing() {
        let mut pool = BufferPool::default();
        for count in [2u8, 3, 12, 16] {
            let mut children: [Option<Slot>; 16] = [None; 16];
            for n in 0..count {
                children[usize::from(n)] = Some(leaf(n + 1));
            }
            let (base, _) = Internal::new(&children, None, u16::MAX);
            // A pooled buffer of the right length, full of junk.
            let len = base.hashes.len();
            pool.recycle(Internal {
                hashes: vec![[0xee; 32]; len].into_boxed_slice(),
                ..Internal::default()
            });
            let node = Slot {
                hash: [77; 32],
                child: Child::Node(9),
            };
            let replaced = [(0, leaf(50)), (count - 1, node)];
            children[0] = Some(leaf(50));
            children[usize::from(count - 1)] = Some(node);
            let (want, want_root) = Internal::new(&children, None, u16::MAX);
            let mut one = [Internal::patched(&base, replaced, &mut pool)];
            assert_eq!(pool.held(), 0, "the pooled buffer was taken");
            let got_root = hash_all(&mut one, &[0], |u| u, &mut HashScratch::default())[0];
            assert_eq!(got_root, want_root, "{count} children");
            let got = &one[0].node;
            assert_eq!(got.slot(count - 1), Some(node));
            for p in 0..2 * INNER + 1 {
                assert_eq!(
                    got.hash_at(p),
                    want.hash_at(p),
                    "{count} children, range {p}"
                );
            }
            if count >= DENSE as u8 {
                let mut trusting = [Internal::patched(&base, replaced, &mut pool)];
                trusting[0].stale = 0;
                let wrong = hash_all(&mut trusting, &[0], |u| u, &mut HashScratch::default())[0];
                assert_ne!(wrong, want_root, "a stale cache trusted whole");
            }
        }
    }

    /// A lone leaf stands for every range it is alone in; two leaves in a
    /// pair make one internal hash.
    #[test]
    fn a_lone_leaf_stands_for_its_ranges() {
        let mut children: [Option<Slot>; 16] = [None; 16];
        children[0] = Some(leaf(1));
        children[1] = Some(leaf(2));
        let (node, root) = Internal::new(&children, None, u16::MAX);
        let pair = internal_hash(&[1; 32], &[2; 32]);
        let quarter = internal_hash(&pair, &PLACEHOLDER);
        let half = internal_hash(&quarter, &PLACEHOLDER);
        assert_eq!(root, internal_hash(&half, &PLACEHOLDER));
        assert_eq!(node.range(INNER + 1), Range::Lone(1));
        children[1] = None;
        let (lone, _) = Internal::new(&children, None, u16::MAX);
        assert_eq!(lone.range(0), Range::Lone(0));
    }
}
