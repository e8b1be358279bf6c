//! The tree's nodes and leaf values, in memory, for the versions still
//! provable: what `jmt` reads while updating the tree and building proofs.
//!
//! Bound: one leaf node and one value per live key, the internal nodes above
//! them (about one per 15 leaves), and for each of the last
//! [`super::PROVABLE_VERSIONS`] versions the nodes and values it replaced.
//! Older replaced nodes are dropped by [`NodeStore::prune`].

use jmt::storage::{LeafNode, NibblePath, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use std::collections::{BTreeMap, HashMap};

/// The key of a version's root (the empty nibble path). `jmt` keeps its
/// constructors to itself, so the root path is built from its empty
/// borsh form (a zero nibble count and no bytes).
fn root_key(version: Version) -> NodeKey {
    // borsh: a u64 nibble count, then a u32-length byte vector; both zero.
    let path: NibblePath = borsh::from_slice(&[0u8; 12]).expect("the empty nibble path");
    debug_assert!(path.is_empty());
    NodeKey::new(version, path)
}

/// Nodes by key, value history by key hash, and what each version replaced.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeStore {
    nodes: HashMap<NodeKey, Node>,
    values: HashMap<KeyHash, BTreeMap<Version, Option<OwnedValue>>>,
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
            s.nodes.insert(root_key(before), Node::Null);
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
        for (k, n) in batch.node_batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((v, kh), value) in batch.node_batch.values() {
            let history = self.values.entry(*kh).or_default();
            if let Some((&old, _)) = history.range(..*v).next_back() {
                self.stale_values.entry(*v).or_default().push((*kh, old));
            }
            history.insert(*v, value.clone());
        }
        for s in batch.stale_node_index_batch {
            self.stale_nodes
                .entry(s.stale_since_version)
                .or_default()
                .push(s.node_key);
        }
        self.latest = Some(version);
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
        let kept = self.stale_values.split_off(&keep_from.saturating_add(1));
        for (kh, old) in std::mem::replace(&mut self.stale_values, kept)
            .into_values()
            .flatten()
        {
            if let Some(history) = self.values.get_mut(&kh) {
                history.remove(&old);
                if history.values().all(Option::is_none) {
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
            .and_then(|h| h.range(..=max_version).next_back())
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only jmt's restore and overwrite paths ask for it; neither is used.
        anyhow::bail!("the in-memory state tree does not index its rightmost leaf")
    }
}
