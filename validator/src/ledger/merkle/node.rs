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

use super::proof::{PLACEHOLDER, internal_hash, internal_hashes};
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
#[derive(Debug, Clone, Default)]
pub(super) struct Internal {
    /// Bit n set: nibble n has a child.
    exist: u16,
    /// Bit n set: nibble n's child is a leaf.
    leaves: u16,
    /// The children, in nibble order.
    slots: Box<[Slot]>,
    /// Hashes of the inner ranges (heap order), kept by dense nodes.
    inner: Option<Box<[Hash; INNER]>>,
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
        let mut one = [Self::shape(children, base, dirty)];
        let root = hash_all(&mut one, |u| u)[0];
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
    ) -> Unhashed {
        let mut node = Self::default();
        let mut slots = Vec::with_capacity(children.iter().flatten().count());
        for (n, s) in children.iter().enumerate() {
            if let Some(s) = s {
                node.exist |= 1 << n;
                if matches!(s.child, Child::Leaf(_)) {
                    node.leaves |= 1 << n;
                }
                slots.push(*s);
            }
        }
        node.slots = slots.into_boxed_slice();
        let mut stale = u16::MAX;
        if node.exist.count_ones() >= DENSE {
            let reuse = base.and_then(|b| b.inner.as_deref());
            if reuse.is_some() {
                stale = dirty;
            }
            node.inner = Some(Box::new(*reuse.unwrap_or(&[PLACEHOLDER; INNER])));
        }
        Unhashed { node, stale }
    }

    /// Sets the hash of the child at nibble `n` (a node that was
    /// [`Unhashed`] when this one was shaped).
    pub(super) fn set_child_hash(&mut self, n: u8, hash: Hash) {
        let bit = 1u16 << n;
        debug_assert!(self.exist & bit != 0, "a child at nibble {n}");
        let rank = (self.exist & (bit - 1)).count_ones() as usize;
        self.slots[rank].hash = hash;
    }

    /// What the range at heap position `p` holds.
    pub(super) fn range(&self, p: usize) -> Range {
        let m = self.exist & MASKS[p];
        match m.count_ones() {
            0 => Range::Empty,
            1 if self.leaves & m != 0 => Range::Lone(m.trailing_zeros() as u8),
            _ => Range::Many,
        }
    }

    /// The child at nibble `n`, if any.
    pub(super) fn slot(&self, n: u8) -> Option<&Slot> {
        let bit = 1u16 << n;
        if self.exist & bit == 0 {
            return None;
        }
        let rank = (self.exist & (bit - 1)).count_ones() as usize;
        Some(&self.slots[rank])
    }

    /// Every child, with its nibble.
    pub(super) fn children(&self) -> impl Iterator<Item = (u8, &Slot)> {
        (0..16u8)
            .filter(|n| self.exist & (1 << n) != 0)
            .zip(self.slots.iter())
    }

    /// The hash of the range at heap position `p` by the hash rule, with
    /// `half(q)` giving the hash of inner range `q` when `p` has two or
    /// more leaves below (nibble positions are read from the slots).
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
        self.slot(n).map_or(PLACEHOLDER, |s| s.hash)
    }

    /// The cache being filled by [`hash_all`].
    fn inner_mut(&mut self) -> &mut [Hash; INNER] {
        self.inner
            .as_deref_mut()
            .expect("hash_all gives every node a cache")
    }

    /// During [`hash_all`]: the hash of half `q` of a range, from the
    /// cache (filled a level below) or, for a single nibble, its child.
    fn half_hash(&self, q: usize) -> Hash {
        if q >= INNER {
            self.nibble_hash((q - INNER) as u8)
        } else {
            self.inner
                .as_deref()
                .expect("hash_all gives every node a cache")[q]
        }
    }

    /// The hash of the range at heap position `p`: read from the cache,
    /// or computed from the slots (sparse nodes).
    pub(super) fn hash_at(&self, p: usize) -> Hash {
        if let (Some(inner), true) = (&self.inner, p < INNER) {
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
                Range::Lone(m) => return self.slot(m).copied(),
                Range::Many => {}
            }
            let bit = usize::from((n >> (3 - level)) & 1);
            siblings.push(self.hash_at(2 * p + 2 - bit));
            p = 2 * p + 1 + bit;
        }
        debug_assert_eq!(p, INNER + usize::from(n));
        self.slot(n).copied()
    }
}

/// Computes the inner and root hashes of shaped nodes whose children's
/// hashes are all set, and returns the roots in order. The ranges of one
/// bit level of every node are hashed in one batch (`sha3_256_batch`, up
/// to eight at once): a block's update hands in every new node of one
/// nibble depth together, so a level holds hundreds of independent hashes
/// where a single node's path has one.
pub(super) fn hash_all<T>(
    items: &mut [T],
    unhashed: impl Fn(&mut T) -> &mut Unhashed,
) -> Vec<Hash> {
    // A sparse node borrows a cache for the pass (dropped at the end); a
    // dense one fills its own in place.
    let mut sparse = vec![false; items.len()];
    for (t, s) in items.iter_mut().zip(&mut sparse) {
        let u = unhashed(t);
        if u.node.inner.is_none() {
            u.node.inner = Some(Box::new([PLACEHOLDER; INNER]));
            *s = true;
        }
    }
    // Each hash to compute: (item, heap position) and its (left, right) halves.
    let mut targets: Vec<(usize, usize)> = Vec::new();
    let mut halves: Vec<(Hash, Hash)> = Vec::new();
    for level in (0..4u32).rev() {
        targets.clear();
        halves.clear();
        for (k, t) in items.iter_mut().enumerate() {
            let u = unhashed(t);
            let positions = (1 << level) - 1..(2 << level) - 1;
            for (p, mask) in MASKS
                .iter()
                .enumerate()
                .take(positions.end)
                .skip(positions.start)
            {
                if mask & u.stale == 0 {
                    continue;
                }
                let known = match u.node.range(p) {
                    Range::Empty => PLACEHOLDER,
                    Range::Lone(n) => u.node.nibble_hash(n),
                    Range::Many => {
                        targets.push((k, p));
                        halves.push((u.node.half_hash(2 * p + 1), u.node.half_hash(2 * p + 2)));
                        continue;
                    }
                };
                u.node.inner_mut()[p] = known;
            }
        }
        for (&(k, p), h) in targets.iter().zip(internal_hashes(&halves)) {
            unhashed(&mut items[k]).node.inner_mut()[p] = h;
        }
    }
    items
        .iter_mut()
        .zip(sparse)
        .map(|(t, sparse)| {
            let node = &mut unhashed(t).node;
            let root = node.inner_mut()[0];
            if sparse {
                node.inner = None;
            }
            root
        })
        .collect()
}

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
        assert!(base.inner.is_some(), "12 children make a dense node");
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
