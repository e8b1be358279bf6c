//! The state tree's nodes and leaves for the provable window of versions
//! (one version per height), updated in place of `jmt` (see `mod.rs` for
//! why): a 16-ary tree over the key hashes' nibbles whose root is the
//! sparse binary Merkle root `state.proto` defines, so `jmt` — kept as a
//! test dependency — computes the same roots and proofs (tests below).
//!
//! Shape (canonical, so equal leaf sets give equal trees): a leaf sits in
//! the shallowest slot its key hash's nibbles make unique; an internal
//! node always has two or more leaves below it (a node left with one leaf
//! hands that leaf up to its parent; one left with none disappears).
//!
//! Versions share what they did not change. Nodes and leaves live in two
//! arenas and are never changed once written: an update writes new nodes
//! along the changed paths and records the ones it replaced as stale at
//! its height. A node stale at height h is part of versions below h only,
//! so [`Tree::prune`] frees it once no version below h is kept.
//!
//! Bound: one leaf (key hash and value) per live key, the internal nodes
//! above them (about one per 3–15 leaves), and what the kept versions
//! replaced; `StateTree` keeps [`super::PROVABLE_VERSIONS`] versions.

use super::node::{Child, Internal, Range, Slot, Unhashed, hash_all};
use super::proof::{PLACEHOLDER, leaf_hashes};
use crate::crypto::{Hash, sha3_256};
use crate::types::Height;
use agora_proto::v1 as pb;
use std::collections::BTreeMap;

/// A stored leaf.
#[derive(Debug, Clone, Default)]
struct Leaf {
    key_hash: Hash,
    value: Box<[u8]>,
}

/// One key's change in a version: its new value, or `None` to remove it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    /// SHA3-256 of the leaf's key.
    pub key_hash: Hash,
    /// The new value.
    pub value: Option<&'a [u8]>,
    /// The new leaf's hash, set by [`Tree::update`] for every change with
    /// a value (all of a block's at once).
    leaf_hash: Hash,
}

impl<'a> Change<'a> {
    /// The change of the leaf with this key.
    #[cfg(test)]
    pub(crate) fn new(key: &[u8], value: Option<&'a [u8]>) -> Self {
        Self::hashed(sha3_256(key), value)
    }

    /// The change of the leaf whose key hashes to `key_hash`.
    pub(crate) fn hashed(key_hash: Hash, value: Option<&'a [u8]>) -> Self {
        Self {
            key_hash,
            value,
            leaf_hash: PLACEHOLDER,
        }
    }
}

/// What a proof of one key is made of (see `proof.rs` for the wire form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathProof {
    /// The key's value, if present.
    pub value: Option<Vec<u8>>,
    /// For an absent key: the one leaf (key hash, value hash) alone in the
    /// subtree where the key's path ends, if that subtree is not empty.
    pub other: Option<(Hash, Hash)>,
    /// Sibling hashes from the deepest level up.
    pub siblings: Vec<Hash>,
}

impl PathProof {
    /// The proof as the wire carries it, for `key` in the state of `height`.
    pub(crate) fn into_wire(self, key: &[u8], height: Height) -> pb::StateProof {
        pb::StateProof {
            height,
            key: key.to_vec(),
            present: self.value.is_some(),
            value: self.value.unwrap_or_default(),
            other_key_hash: self.other.map(|(k, _)| k.to_vec()).unwrap_or_default(),
            other_value_hash: self.other.map(|(_, v)| v.to_vec()).unwrap_or_default(),
            siblings: self.siblings.iter().map(|s| s.to_vec()).collect(),
        }
    }
}

/// Nibble `depth` of a key hash (most significant first).
fn nibble(key_hash: &Hash, depth: usize) -> u8 {
    let b = key_hash[depth / 2];
    if depth.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    }
}

/// `items` (sorted by key hash, all sharing the first `depth` nibbles)
/// split into runs by the nibble at `depth`.
fn by_nibble<T>(
    items: &[T],
    depth: usize,
    key_hash: impl Fn(&T) -> &Hash,
) -> impl Iterator<Item = (u8, &[T])> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let n = nibble(key_hash(rest.first()?), depth);
        let len = rest.partition_point(|t| nibble(key_hash(t), depth) == n);
        let (run, tail) = rest.split_at(len);
        rest = tail;
        Some((n, run))
    })
}

/// The versions of the state tree still provable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    nodes: Arena<Internal>,
    leaves: Arena<Leaf>,
    /// Each version's root (`None`: the empty tree).
    roots: BTreeMap<Height, Option<Slot>>,
    /// What each version replaced: part of the versions below it only.
    stale: BTreeMap<Height, Vec<Child>>,
    buffers: Buffers,
}

impl Tree {
    /// A tree holding `leaves` (key hash, value; distinct key hashes, any
    /// order) as version `height`.
    pub(crate) fn build(height: Height, leaves: Vec<(Hash, Vec<u8>)>) -> Self {
        let mut tree = Self::default();
        let hashes = leaf_hashes(leaves.iter().map(|(k, v)| (k, &v[..])));
        let mut slots: Vec<(Hash, Slot)> = leaves
            .into_iter()
            .zip(hashes)
            .map(|((k, v), hash)| tree.new_leaf(k, v.into_boxed_slice(), hash))
            .collect();
        slots.sort_unstable_by_key(|s| s.0);
        debug_assert!(slots.windows(2).all(|w| w[0].0 != w[1].0), "distinct keys");
        let mut pass = tree.start_pass();
        let root = tree.build_slots(0, &slots, &mut pass);
        let root = tree.finish_pass(&mut pass, root);
        tree.roots.insert(height, root);
        tree
    }

    /// The newest version.
    pub(crate) fn latest(&self) -> Option<Height> {
        self.roots.last_key_value().map(|(h, _)| *h)
    }

    /// The oldest and newest versions kept.
    pub(crate) fn provable(&self) -> Option<(Height, Height)> {
        Some((*self.roots.first_key_value()?.0, self.latest()?))
    }

    /// The root hash of a version.
    pub(crate) fn root(&self, height: Height) -> Option<Hash> {
        let root = self.roots.get(&height)?;
        Some(root.map_or(PLACEHOLDER, |s| s.hash))
    }

    /// Writes version `height` (above the latest) as the latest version
    /// with `changes` applied, and returns its root. Removing a key the
    /// tree does not hold changes nothing.
    pub(crate) fn update(&mut self, height: Height, changes: &mut [Change<'_>]) -> Hash {
        let latest = self.latest().expect("a tree has a version");
        assert!(
            height > latest,
            "versions only grow: {height} after {latest}"
        );
        changes.sort_unstable_by_key(|c| c.key_hash);
        debug_assert!(
            changes.windows(2).all(|w| w[0].key_hash != w[1].key_hash),
            "one change per key"
        );
        let valued = changes.iter().filter_map(|c| Some((&c.key_hash, c.value?)));
        let mut hashes = leaf_hashes(valued).into_iter();
        for c in changes.iter_mut().filter(|c| c.value.is_some()) {
            c.leaf_hash = hashes.next().expect("a leaf hash per value");
        }
        let old = self.roots[&latest];
        let mut pass = self.start_pass();
        let root = self.update_slot(old, 0, changes, &mut pass);
        let root = self.finish_pass(&mut pass, root);
        self.roots.insert(height, root);
        if !pass.stale.is_empty() {
            self.stale.insert(height, pass.stale);
        }
        root.map_or(PLACEHOLDER, |s| s.hash)
    }

    /// A pass with the tree's buffers (empty, their capacity kept).
    fn start_pass(&mut self) -> Pass {
        let mut fresh = std::mem::take(&mut self.buffers.fresh);
        let mut fresh_at = std::mem::take(&mut self.buffers.fresh_at);
        fresh.clear();
        fresh_at.clear();
        Pass {
            stale: Vec::new(),
            fresh,
            fresh_at,
        }
    }

    /// Hashes what the pass shaped (see [`Self::hash_fresh`]) and takes
    /// its buffers back.
    fn finish_pass(&mut self, pass: &mut Pass, root: Option<Slot>) -> Option<Slot> {
        let root = self.hash_fresh(&mut pass.fresh, root);
        self.buffers.fresh = std::mem::take(&mut pass.fresh);
        self.buffers.fresh_at = std::mem::take(&mut pass.fresh_at);
        root
    }

    /// Puts a shaped node in the arena (its hashes still to come) and
    /// links the shaped children it holds to it; `new` names the nibbles
    /// whose children may have been shaped in this pass (the others are
    /// its base's, already hashed).
    fn put_fresh(&mut self, unhashed: Unhashed, depth: usize, new: u16, pass: &mut Pass) -> Slot {
        let index = self.nodes.put(Internal::default());
        for n in (0..16u8).filter(|n| new & (1 << n) != 0) {
            if let Some(s) = unhashed.node.slot(n)
                && let Child::Node(j) = s.child
                && let Some(&f) = pass.fresh_at.get(&j)
            {
                debug_assert_eq!(pass.fresh[f].depth, depth + 1);
                // This node's position: it is pushed below.
                pass.fresh[f].parent = Some((pass.fresh.len(), n));
            }
        }
        pass.fresh_at.insert(index, pass.fresh.len());
        pass.fresh.push(Fresh {
            index,
            depth,
            parent: None,
            unhashed,
        });
        Slot {
            hash: PLACEHOLDER,
            child: Child::Node(index),
        }
    }

    /// Hashes the nodes a pass shaped, deepest nibble depth first (each
    /// depth's nodes together, see `node::hash_all`), sets each one's hash
    /// in its parent, fills their arena slots, and returns `root` with its
    /// hash set if it is one of them.
    /// `fresh` is left empty.
    fn hash_fresh(&mut self, fresh: &mut Vec<Fresh>, root: Option<Slot>) -> Option<Slot> {
        let mut order = std::mem::take(&mut self.buffers.order);
        let mut scratch = std::mem::take(&mut self.buffers.hash);
        by_depth_deepest_first(fresh, &mut order);
        let mut root_hash = None;
        let mut rest = &order[..];
        while let Some(&first) = rest.first() {
            let depth = fresh[first as usize].depth;
            let len = rest.partition_point(|&k| fresh[k as usize].depth == depth);
            let (group, tail) = rest.split_at(len);
            let roots = hash_all(fresh, group, |f| &mut f.unhashed, &mut scratch);
            for (&k, hash) in group.iter().zip(roots) {
                match fresh[k as usize].parent {
                    Some((p, n)) => {
                        debug_assert_eq!(fresh[p].depth + 1, depth, "a parent is one depth up");
                        fresh[p].unhashed.node.set_child_hash(n, hash);
                    }
                    None => {
                        debug_assert!(root_hash.is_none(), "one parentless node: the root");
                        root_hash = Some((fresh[k as usize].index, hash));
                    }
                }
            }
            rest = tail;
        }
        for f in fresh.drain(..) {
            self.nodes.set(f.index, f.unhashed.node);
        }
        self.buffers.order = order;
        self.buffers.hash = scratch;
        match (root, root_hash) {
            (Some(mut s), Some((i, hash))) => {
                debug_assert_eq!(s.child, Child::Node(i), "the parentless node is the root");
                s.hash = hash;
                Some(s)
            }
            (root, None) => root,
            (None, Some(_)) => unreachable!("a shaped node is under the root"),
        }
    }

    /// Drops the versions below `keep_from` and every node and leaf only
    /// they used. The latest version is always kept.
    pub(crate) fn prune(&mut self, keep_from: Height) {
        let keep_from = keep_from.min(self.latest().unwrap_or(keep_from));
        self.roots = self.roots.split_off(&keep_from);
        // Stale at h: used by versions below h only, so unused once the
        // oldest kept version is h or above.
        let kept = self.stale.split_off(&keep_from.saturating_add(1));
        for child in std::mem::replace(&mut self.stale, kept)
            .into_values()
            .flatten()
        {
            match child {
                Child::Leaf(i) => drop(self.leaves.free(i)),
                Child::Node(i) => self.buffers.pool.recycle(self.nodes.free(i)),
            }
        }
    }

    /// Nodes and leaves held (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn item_count(&self) -> usize {
        self.nodes.live() + self.leaves.live()
    }

    /// The value of `key_hash` in version `height` with the path that
    /// proves it (or its absence); `None` if the version is not kept.
    pub(crate) fn prove(&self, key_hash: &Hash, height: Height) -> Option<PathProof> {
        let mut slot = *self.roots.get(&height)?;
        let mut siblings = Vec::new();
        let mut depth = 0;
        let (value, other) = loop {
            let Some(s) = slot else { break (None, None) };
            match s.child {
                Child::Node(i) => {
                    slot = self
                        .nodes
                        .get(i)
                        .descend(nibble(key_hash, depth), &mut siblings);
                    depth += 1;
                }
                Child::Leaf(i) => {
                    let leaf = self.leaves.get(i);
                    if leaf.key_hash == *key_hash {
                        break (Some(leaf.value.to_vec()), None);
                    }
                    break (None, Some((leaf.key_hash, sha3_256(&leaf.value))));
                }
            }
        };
        siblings.reverse();
        Some(PathProof {
            value,
            other,
            siblings,
        })
    }

    /// Puts a leaf in the arena; `hash` is its leaf hash (`leaf_hashes`).
    fn new_leaf(&mut self, key_hash: Hash, value: Box<[u8]>, hash: Hash) -> (Hash, Slot) {
        let i = self.leaves.put(Leaf { key_hash, value });
        let slot = Slot {
            hash,
            child: Child::Leaf(i),
        };
        (key_hash, slot)
    }

    /// The subtree at nibble depth `depth` holding `slots` (sorted by key
    /// hash, all sharing the first `depth` nibbles): nothing, a lone leaf,
    /// or a new node.
    fn build_slots(
        &mut self,
        depth: usize,
        slots: &[(Hash, Slot)],
        pass: &mut Pass,
    ) -> Option<Slot> {
        match slots {
            [] => return None,
            [(_, one)] => return Some(*one),
            _ => {}
        }
        debug_assert!(depth < 64, "distinct key hashes part within 64 nibbles");
        let mut children: [Option<Slot>; 16] = [None; 16];
        for (n, run) in by_nibble(slots, depth, |(k, _)| k) {
            children[usize::from(n)] = self.build_slots(depth + 1, run, pass);
        }
        let node = Internal::shape(&children, None, u16::MAX, &mut self.buffers.pool);
        Some(self.put_fresh(node, depth, u16::MAX, pass))
    }

    /// The subtree at `depth` that `old` was, with `changes` (sorted, all
    /// on its path) applied. What it replaces goes to `stale`.
    fn update_slot(
        &mut self,
        old: Option<Slot>,
        depth: usize,
        changes: &[Change<'_>],
        pass: &mut Pass,
    ) -> Option<Slot> {
        match old {
            Some(
                s @ Slot {
                    child: Child::Node(i),
                    ..
                },
            ) => self.update_node(s, i, depth, changes, pass),
            _ => self.update_leaf(old, depth, changes, pass),
        }
    }

    /// A subtree that was one leaf (or nothing), with `changes` applied.
    fn update_leaf(
        &mut self,
        old: Option<Slot>,
        depth: usize,
        changes: &[Change<'_>],
        pass: &mut Pass,
    ) -> Option<Slot> {
        // The common case, a leaf given a new value, without the general
        // path's list (the same result: one leaf replaced by one leaf).
        if let (
            [c],
            Some(Slot {
                hash,
                child: Child::Leaf(i),
            }),
        ) = (changes, old)
            && let Some(v) = c.value
            && self.leaves.get(i).key_hash == c.key_hash
        {
            if c.leaf_hash == hash {
                return old;
            }
            pass.stale.push(Child::Leaf(i));
            return Some(self.new_leaf(c.key_hash, v.into(), c.leaf_hash).1);
        }
        let mut slots = Vec::with_capacity(changes.len() + 1);
        let mut changed = false;
        // The old leaf's key, when its value stays as it is.
        let mut kept = None;
        if let Some(
            s @ Slot {
                child: Child::Leaf(i),
                ..
            },
        ) = old
        {
            let leaf = self.leaves.get(i);
            let change = changes.binary_search_by(|c| c.key_hash.cmp(&leaf.key_hash));
            // Same key: the leaf changes unless its leaf hash does (equal
            // leaf hashes mean equal values), which spares reading the old
            // value — a cache miss per leaf in a big tree.
            match change {
                Ok(c) if changes[c].value.is_none() || changes[c].leaf_hash != s.hash => {
                    pass.stale.push(Child::Leaf(i));
                    changed = true;
                }
                _ => {
                    kept = Some(leaf.key_hash);
                    slots.push((leaf.key_hash, s));
                }
            }
        }
        for c in changes {
            if let (Some(v), false) = (c.value, kept == Some(c.key_hash)) {
                let leaf = self.new_leaf(c.key_hash, v.into(), c.leaf_hash);
                slots.push(leaf);
                changed = true;
            }
        }
        if !changed {
            return old;
        }
        slots.sort_unstable_by_key(|s| s.0);
        self.build_slots(depth, &slots, pass)
    }

    /// Node `i` (held by `old`) at `depth`, with `changes` applied: a new
    /// node, or what is left of it (a lone leaf, or nothing) when fewer
    /// than two leaves remain.
    fn update_node(
        &mut self,
        old: Slot,
        i: u32,
        depth: usize,
        changes: &[Change<'_>],
        pass: &mut Pass,
    ) -> Option<Slot> {
        // The children that changed: (nibble, new child), in nibble order.
        let mut touched: [(u8, Option<Slot>); 16] = [(0, None); 16];
        let mut count = 0;
        let mut dirty = 0u16;
        // Whether every change replaced a child by another (the node keeps
        // its shape).
        let mut replaced_only = true;
        for (n, run) in by_nibble(changes, depth, |c| &c.key_hash) {
            let before = self.nodes.get(i).slot(n);
            let after = self.update_slot(before, depth + 1, run, pass);
            if after != before {
                touched[count] = (n, after);
                count += 1;
                dirty |= 1 << n;
                replaced_only &= before.is_some() && after.is_some();
            }
        }
        if dirty == 0 {
            return Some(old);
        }
        pass.stale.push(Child::Node(i));
        let base = self.nodes.get(i);
        let pool = &mut self.buffers.pool;
        let node = if replaced_only {
            let replaced = touched[..count]
                .iter()
                .map(|&(n, after)| (n, after.expect("a replaced child")));
            Internal::patched(base, replaced, pool)
        } else {
            let mut children: [Option<Slot>; 16] = [None; 16];
            for (n, s) in base.children() {
                children[usize::from(n)] = Some(s);
            }
            for &(n, after) in &touched[..count] {
                children[usize::from(n)] = after;
            }
            Internal::shape(&children, Some(base), dirty, pool)
        };
        match node.node.range(0) {
            Range::Empty => None,
            Range::Lone(n) => node.node.slot(n),
            Range::Many => Some(self.put_fresh(node, depth, dirty, pass)),
        }
    }
}

#[path = "arena.rs"]
mod arena;
use arena::Arena;
#[path = "pass.rs"]
mod pass;
use pass::{Buffers, Fresh, Pass, by_depth_deepest_first};

#[cfg(test)]
#[path = "tests/tree.rs"]
mod tests;
