//! The tree's nodes and leaf values, in memory, for the versions still
//! provable: what `jmt` reads while updating the tree and building proofs.
//!
//! Bound: one leaf node and one value per live key, the internal nodes above
//! them (about one per 15 leaves), and for each of the last
//! [`super::PROVABLE_VERSIONS`] versions the nodes and values it replaced.
//! Older replaced nodes are dropped by [`NodeStore::prune`].
//!
//! Layout, for a state of millions of leaves: the nodes of the provable
//! window are kept per version ([`Nodes`]), so the churn of each block's
//! new and replaced nodes never grows or rehashes a table of the whole
//! tree (one table over every node rehashed its millions of entries,
//! taking up to seconds, whenever the window's replaced nodes grew it);
//! a key's value history is a short vector, not a `BTreeMap` (a node of
//! ~370 bytes per key, most of them holding one value).

use jmt::storage::{LeafNode, NibblePath, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use std::collections::BTreeMap;

/// A hash map with a fast, per-process seeded hasher (see Cargo.toml).
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The key of a version's root (the empty nibble path). `jmt` keeps its
/// constructors to itself, so the root path is built from its empty
/// borsh form (a zero nibble count and no bytes).
fn root_key(version: Version) -> NodeKey {
    // borsh: a u64 nibble count, then a u32-length byte vector; both zero.
    let path: NibblePath = borsh::from_slice(&[0u8; 12]).expect("the empty nibble path");
    debug_assert!(path.is_empty());
    NodeKey::new(version, path)
}

/// The tree's nodes: those of the provable window by the version that
/// wrote them, older ones in one table.
///
/// A node of version v is in `recent[v]` when that table exists, else in
/// `settled`. Replaced nodes mostly leave `recent` tables (they are young),
/// and `settled` only takes each version's survivors as it leaves the
/// window, so it grows with the state, not with the churn.
#[derive(Debug, Clone, Default)]
struct Nodes {
    /// Nodes of versions below the provable window still in the tree.
    settled: Map<NodeKey, Node>,
    /// Nodes of each version in the window.
    recent: BTreeMap<Version, Map<NodeKey, Node>>,
}

impl Nodes {
    fn get(&self, key: &NodeKey) -> Option<&Node> {
        match self.recent.get(&key.version()) {
            Some(nodes) => nodes.get(key),
            None => self.settled.get(key),
        }
    }

    /// Stores a version's nodes (its table is made once, at its size).
    fn insert_version<'a>(
        &mut self,
        version: Version,
        nodes: impl ExactSizeIterator<Item = (&'a NodeKey, &'a Node)>,
    ) {
        let table = self.recent.entry(version).or_default();
        table.reserve(nodes.len());
        for (k, n) in nodes {
            table.insert(k.clone(), n.clone());
        }
    }

    fn remove(&mut self, key: &NodeKey) {
        let version = key.version();
        match self.recent.get_mut(&version) {
            Some(nodes) => {
                nodes.remove(key);
                if nodes.is_empty() {
                    self.recent.remove(&version);
                }
            }
            None => {
                self.settled.remove(key);
            }
        }
    }

    /// Moves the nodes of versions below `version` to `settled`.
    fn settle_below(&mut self, version: Version) {
        let kept = self.recent.split_off(&version);
        for (_, mut nodes) in std::mem::replace(&mut self.recent, kept) {
            // A whole tree's build is one version: adopt its table rather
            // than copy a million nodes into a small one.
            if nodes.len() > self.settled.len() {
                std::mem::swap(&mut nodes, &mut self.settled);
            }
            self.settled.extend(nodes);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.settled.len() + self.recent.values().map(Map::len).sum::<usize>()
    }
}

/// A key's values by version, oldest first (versions only grow, so
/// appending keeps the order).
type History = Vec<(Version, Option<OwnedValue>)>;

/// Nodes by key, value history by key hash, and what each version replaced.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeStore {
    nodes: Nodes,
    values: Map<KeyHash, History>,
    /// Nodes replaced at a version: unreachable from that version's root on.
    stale_nodes: BTreeMap<Version, Vec<NodeKey>>,
    /// Values replaced at a version: (key hash, version of the old value).
    stale_values: BTreeMap<Version, Vec<(KeyHash, Version)>>,
    /// The newest version written.
    latest: Option<Version>,
    /// The oldest version whose nodes are all still here.
    oldest: Version,
}

impl NodeStore {
    /// Where a rebuilt tree starts: an empty root at the version before
    /// `version`, which `jmt` reads as the base of the first update.
    pub(crate) fn empty_before(version: Version) -> Self {
        let mut s = Self {
            oldest: version,
            ..Self::default()
        };
        if let Some(before) = version.checked_sub(1) {
            s.nodes
                .insert_version(before, [(&root_key(before), &Node::Null)].into_iter());
            s.latest = Some(before);
        }
        s
    }

    /// The newest version written, if any.
    pub(crate) fn latest(&self) -> Option<Version> {
        self.latest
    }

    /// The versions proofs can be made for.
    pub(crate) fn provable(&self) -> Option<(Version, Version)> {
        self.latest.map(|l| (self.oldest.min(l), l))
    }

    /// Stores what one version's update made.
    pub(crate) fn write(&mut self, version: Version, batch: TreeUpdateBatch) {
        debug_assert!(
            self.latest.is_none_or(|l| l < version),
            "versions only grow"
        );
        self.nodes
            .insert_version(version, batch.node_batch.nodes().iter());
        for ((v, kh), value) in batch.node_batch.values() {
            let history = self.values.entry(*kh).or_default();
            if let Some(&(old, _)) = history.last() {
                self.stale_values.entry(*v).or_default().push((*kh, old));
            }
            history.push((*v, value.clone()));
        }
        for s in batch.stale_node_index_batch {
            self.stale_nodes
                .entry(s.stale_since_version)
                .or_default()
                .push(s.node_key);
        }
        self.latest = Some(version);
    }

    /// Whether `version` has a root.
    pub(crate) fn has_root(&self, version: Version) -> bool {
        self.nodes.get(&root_key(version)).is_some()
    }

    /// Gives `version`, which has no root, the root of `version − 1`
    /// unchanged: that root is replaced (stale) from `version` on, exactly
    /// as an update that changed nothing would leave them.
    pub(crate) fn carry_root(&mut self, version: Version) -> anyhow::Result<()> {
        let Some(before) = version.checked_sub(1) else {
            anyhow::bail!("version 0 has no version before it to carry");
        };
        if self.latest.is_none_or(|l| l > version) || self.has_root(version) {
            anyhow::bail!("version {version} is not the latest without a root");
        }
        let from = root_key(before);
        let Some(root) = self.nodes.get(&from).cloned() else {
            anyhow::bail!("version {before} has no root");
        };
        self.nodes
            .insert_version(version, [(&root_key(version), &root)].into_iter());
        self.stale_nodes.entry(version).or_default().push(from);
        self.latest = Some(version);
        Ok(())
    }

    /// Drops every node and value only versions below `keep_from` need.
    pub(crate) fn prune(&mut self, keep_from: Version) {
        if keep_from <= self.oldest {
            return;
        }
        // A node replaced at version v is still part of versions < v only.
        let kept = self.stale_nodes.split_off(&keep_from.saturating_add(1));
        for key in std::mem::replace(&mut self.stale_nodes, kept)
            .into_values()
            .flatten()
        {
            self.nodes.remove(&key);
        }
        self.nodes.settle_below(keep_from);
        let kept = self.stale_values.split_off(&keep_from.saturating_add(1));
        for (kh, old) in std::mem::replace(&mut self.stale_values, kept)
            .into_values()
            .flatten()
        {
            if let Some(history) = self.values.get_mut(&kh) {
                if let Ok(i) = history.binary_search_by_key(&old, |(v, _)| *v) {
                    history.remove(i);
                }
                if history.iter().all(|(_, v)| v.is_none()) {
                    self.values.remove(&kh);
                }
            }
        }
        self.oldest = keep_from;
    }

    /// Nodes held (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

impl TreeReader for NodeStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self
            .values
            .get(&key_hash)
            .and_then(|h| {
                let newer = h.partition_point(|(v, _)| *v <= max_version);
                h[..newer].last()
            })
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only jmt's restore and overwrite paths ask for it; neither is used.
        anyhow::bail!("the in-memory state tree does not index its rightmost leaf")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::Sha3;
    use jmt::{JellyfishMerkleTree, RootHash};

    /// Versions written, pruned to a window of 10, settled on the way: every
    /// version in the window still proves each key's value of its time.
    #[test]
    fn the_window_stays_provable_across_settling_and_pruning() {
        let key = |i: u64| KeyHash::with::<Sha3>(i.to_be_bytes());
        let mut store = NodeStore::empty_before(0);
        let mut roots: Vec<RootHash> = Vec::new();
        // Key i is rewritten every i + 1 versions, so nodes of many ages
        // are replaced while young and while settled.
        let value = |i: u64, v: u64| (v / (i + 1)).to_be_bytes().to_vec();
        for v in 0..60u64 {
            let set: Vec<_> = (0..20)
                .filter(|i| v % (i + 1) == 0)
                .map(|i| (key(i), value(i, v)))
                .collect();
            let (r, batch) = JellyfishMerkleTree::<_, Sha3>::new(&store)
                .batch_put_value_sets(vec![set], None, v)
                .expect("update");
            store.write(v, batch);
            roots.push(r[0]);
            store.prune(v.saturating_sub(9));
        }
        assert_eq!(store.provable(), Some((50, 59)));
        let tree = JellyfishMerkleTree::<_, Sha3>::new(&store);
        for v in 50..60u64 {
            for i in 0..20 {
                let (got, proof) = tree.get_with_proof(key(i), v).expect("provable");
                // The value written at the last multiple of i + 1.
                let want = value(i, v - v % (i + 1));
                assert_eq!(got.as_deref(), Some(&want[..]), "key {i} at {v}");
                proof.verify(roots[v as usize], key(i), got).expect("proof");
            }
        }
        assert!(store.nodes.recent.keys().all(|&v| v >= 50));
    }

    /// Block updates as `StateTree::update` makes them (deletion version,
    /// then the writes) give the root of the same state built whole: with
    /// nothing deleted, with a key deleted, and with a deletion of a key
    /// the tree never held (a key made and removed within one block).
    #[test]
    fn block_updates_match_the_state_built_whole() {
        use super::super::StateTree;
        use std::collections::BTreeMap;
        let mut state: BTreeMap<Vec<u8>, Vec<u8>> =
            (0..30u8).map(|i| (vec![i], vec![i; 4])).collect();
        let whole = |state: &BTreeMap<Vec<u8>, Vec<u8>>| {
            let set = state
                .iter()
                .map(|(k, v)| (KeyHash::with::<Sha3>(k), v.clone()))
                .collect();
            let s = NodeStore::empty_before(0);
            JellyfishMerkleTree::<_, Sha3>::new(&s)
                .batch_put_value_sets(vec![set], None, 0)
                .expect("build")
                .0[0]
                .0
        };
        let mut store = NodeStore::empty_before(1);
        let set = state
            .iter()
            .map(|(k, v)| (KeyHash::with::<Sha3>(k), v.clone()))
            .collect();
        let (_, batch) = JellyfishMerkleTree::<_, Sha3>::new(&store)
            .batch_put_value_sets(vec![set], None, 1)
            .expect("genesis");
        store.write(1, batch);
        let blocks: [Vec<super::super::leaves::LeafChange>; 4] = [
            vec![(vec![1], Some(vec![9]))],
            vec![(vec![2], None), (vec![3], Some(vec![8]))],
            vec![(vec![200], None), (vec![4], Some(vec![7]))],
            vec![(vec![5], None), (vec![201], None), (vec![6], Some(vec![6]))],
        ];
        for (h, changes) in (1..).zip(blocks) {
            for (k, v) in &changes {
                match v {
                    Some(v) => state.insert(k.clone(), v.clone()),
                    None => state.remove(k),
                };
            }
            let root = StateTree::update(&mut store, &changes, h).expect("update");
            assert_eq!(root, whole(&state), "after block {h}");
            assert!(store.has_root(2 * h) && store.has_root(2 * h + 1));
        }
    }

    /// A carried version proves what the version before it proved, and
    /// the roots it replaces are pruned like any replaced node: a run of
    /// carried versions does not grow the store.
    #[test]
    fn carried_roots_prove_the_same_state_and_are_pruned() {
        let key = |i: u64| KeyHash::with::<Sha3>(i.to_be_bytes());
        let mut store = NodeStore::empty_before(0);
        let set: Vec<_> = (0..50).map(|i| (key(i), vec![i as u8; 3])).collect();
        let (roots, batch) = JellyfishMerkleTree::<_, Sha3>::new(&store)
            .batch_put_value_sets(vec![set], None, 0)
            .expect("build");
        store.write(0, batch);
        let settled = store.node_count();
        for v in 1..40u64 {
            store.carry_root(v).expect("carry");
            store.prune(v.saturating_sub(9));
            assert!(
                store.node_count() <= settled + 10,
                "at {v}: {}",
                store.node_count()
            );
        }
        assert_eq!(store.latest(), Some(39));
        let tree = JellyfishMerkleTree::<_, Sha3>::new(&store);
        for v in 30..40u64 {
            let (got, proof) = tree.get_with_proof(key(7), v).expect("provable");
            assert_eq!(got.as_deref(), Some(&[7u8; 3][..]));
            proof.verify(roots[0], key(7), got).expect("proof");
        }
        // And an update on top of a carried root is an ordinary update.
        let (next, batch) = JellyfishMerkleTree::<_, Sha3>::new(&store)
            .batch_put_value_sets(vec![vec![(key(7), vec![1])]], None, 40)
            .expect("update");
        store.write(40, batch);
        assert_ne!(next[0], roots[0]);
        assert!(store.carry_root(40).is_err(), "40 has a root");
        assert!(store.carry_root(39).is_err(), "versions only grow");
    }
}
