//! The authenticated state: a Jellyfish Merkle tree (`jmt`, SHA3-256) over
//! the ledger's leaves ([`leaves`]), whose root is the app hash (DESIGN §3).
//!
//! Each block updates the tree with exactly the leaves it changed (the keys
//! its [`super::tracked::TrackedMap`]s recorded), as version 2h + 1 (see
//! [`state_version`]): O(changes · log n), not O(state). The nodes live in a [`NodeStore`]
//! shared by every clone of a ledger (the engine's and the copy the gRPC
//! services read), so publishing the ledger after a commit does not copy
//! the tree. Versions only grow: a clone that falls behind the shared store
//! and then executes a block (tests that fork a ledger) rebuilds a tree of
//! its own from its whole state, which is always correct.
//!
//! [`StateTree::advance`] also hands back the changes it applied, for the
//! host to apply to its stored leaves. They come from the state's own
//! record of what it touched (per ledger clone), not from the shared node
//! store, so they are the exact difference between this ledger's previous
//! state and its new one on every path, the rebuilds included: a rebuild
//! only concerns the tree's nodes. Hosts restore a state from its leaves
//! with [`decode`].
//!
//! The last [`PROVABLE_VERSIONS`] versions stay provable; older replaced
//! nodes are dropped.
//!
//! Cost at scale (issue 13; `state_scaling` bench, profiled with perf):
//! a block of 1,000 transfers to random accounts rewrites ~2,000 leaves.
//! With 1 M accounts their paths share few nodes below the top three
//! levels, so it rewrites ~4,200 internal nodes, nearly all with 15–16
//! children, and `jmt` rehashes each whole (up to 15 SHA3-256 per node):
//! ~59,500 hashes a block, ~25 ms of a ~95 ms block, against ~4,600 with
//! 1 k accounts. `jmt` also copies each rewritten internal node (a boxed
//! 16-child array, ~900 B) about four times through its cache and batch,
//! and that memory traffic is most of the rest. Both are the floor of
//! this design, well above 2× the 1 k block: going lower needs the
//! binary subtree hashes cached inside each node (~4 hashes per
//! rewritten node), which `jmt` does not offer.

pub mod chunks;
pub mod decode;
pub(crate) mod follow;
pub mod leaves;
pub mod proof;
mod store;

use crate::crypto::Hash;
use crate::types::Height;
use agora_proto::v1 as pb;
use jmt::{JellyfishMerkleTree, KeyHash, Version};
use leaves::LeafChange;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use store::NodeStore;

/// How many recent heights of the state can be proven.
pub const PROVABLE_VERSIONS: u64 = 128;

/// SHA3-256 as `jmt`'s hasher (its blanket impl needs another `digest`).
#[derive(Clone)]
pub struct Sha3(sha3::Sha3_256);

impl jmt::SimpleHasher for Sha3 {
    fn new() -> Self {
        use sha3::Digest;
        Self(sha3::Sha3_256::new())
    }
    fn update(&mut self, data: &[u8]) {
        sha3::Digest::update(&mut self.0, data);
    }
    fn finalize(self) -> [u8; 32] {
        sha3::Digest::finalize(self.0).into()
    }
}

/// Why a proof could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    /// The height is pruned, not reached yet, or before this node's restore.
    #[error("the state of height {height} is not provable here (provable: {from}..={to})")]
    NotProvable {
        /// Height asked for.
        height: Height,
        /// Oldest provable height.
        from: Height,
        /// Newest provable height.
        to: Height,
    },
    /// The tree store lacks a node it should hold (a bug, not an input).
    #[error("state tree: {0}")]
    Tree(String),
}

/// A ledger's view of the shared tree: the version its state is at and that
/// version's root.
#[derive(Clone)]
pub(crate) struct StateTree {
    store: Arc<RwLock<NodeStore>>,
    version: Height,
    root: Hash,
    /// How many slash events (appended only) the tree holds.
    slash_events: usize,
}

impl std::fmt::Debug for StateTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateTree(v{} {})", self.version, hex::encode(self.root))
    }
}

/// Ledgers compare by state; equal states have equal roots.
impl PartialEq for StateTree {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.root == other.root
    }
}

impl Eq for StateTree {}

fn read(s: &RwLock<NodeStore>) -> RwLockReadGuard<'_, NodeStore> {
    // A panic while holding the lock leaves the store as it was before the
    // write began or fully written (writes do not fail half-way).
    s.read().unwrap_or_else(|e| e.into_inner())
}

fn write(s: &RwLock<NodeStore>) -> RwLockWriteGuard<'_, NodeStore> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

/// The tree version holding the state after block `h`: its root is the app
/// hash. Each block writes two versions: `2h` with the leaves the block
/// deleted (and the globals leaf, so it is never empty), then `2h + 1` with
/// every leaf it wrote, through `jmt`'s batch insertion, which hashes each
/// touched node once (its one-key-at-a-time path rehashes the path to the
/// root for every key, ~5× the work for a block of transfers) but takes no
/// deletions. The even versions are never proven.
fn state_version(h: Height) -> Version {
    2 * h + 1
}

/// Heights whose versions a store holds (see [`state_version`]).
fn provable_heights(store: &NodeStore) -> Option<(Height, Height)> {
    store
        .provable()
        .map(|(oldest, latest)| (oldest / 2, latest.saturating_sub(1) / 2))
}

impl StateTree {
    /// A tree built whole from a state's leaves, at its height.
    pub(crate) fn build(state: &mut super::state::State) -> Self {
        leaves::clear_changes(state);
        let version = state_version(state.height);
        let mut store = NodeStore::empty_before(version);
        let all: Vec<_> = leaves::all(state)
            .into_iter()
            .map(|(k, v)| (KeyHash::with::<Sha3>(&k), v))
            .collect();
        let (roots, batch) = JellyfishMerkleTree::<_, Sha3>::new(&store)
            .batch_put_value_sets(vec![all], None, version)
            // Building from an empty root cannot miss a node.
            .expect("state tree built from an empty store");
        store.write(version, batch);
        Self {
            store: Arc::new(RwLock::new(store)),
            version: state.height,
            root: roots[0].0,
            slash_events: state.slash_events.len(),
        }
    }

    /// A copy with a store of its own (O(nodes)), for a ledger that will
    /// execute blocks beside this one.
    pub(crate) fn fork(&self) -> Self {
        let store = read(&self.store).clone();
        Self {
            store: Arc::new(RwLock::new(store)),
            ..self.clone()
        }
    }

    /// The root of this state: the app hash.
    pub(crate) fn root(&self) -> Hash {
        self.root
    }

    /// Moves the tree to the state after block `state.height`, with the
    /// leaves that block changed, and returns those changes (new value, or
    /// `None` for a removed leaf).
    ///
    /// The changes are complete on every path: they are what the state
    /// recorded since the last `advance` or `build` of this ledger, taken
    /// before the tree is touched. When the tree is rebuilt whole (this
    /// ledger forked off the shared store, or an update failed) the same
    /// list is returned: a store holding this ledger's previous leaves
    /// that applies it holds exactly the new state's leaves.
    pub(crate) fn advance(&mut self, state: &mut super::state::State) -> Vec<LeafChange> {
        let height = state.height;
        debug_assert_eq!(height, self.version + 1, "one version per block");
        let changes = leaves::changed(state, self.slash_events);
        let shared = self.store.clone();
        let mut store = write(&shared);
        if store.latest() != Some(state_version(self.version)) {
            // Another clone moved the shared store on: this ledger forked.
            drop(store);
            *self = Self::build(state);
            return changes;
        }
        match Self::update(&mut store, &changes, height) {
            Ok(root) => {
                let keep_from = height.saturating_add(1).saturating_sub(PROVABLE_VERSIONS);
                store.prune(2 * keep_from);
                self.version = height;
                self.root = root;
                self.slash_events = state.slash_events.len();
            }
            Err(e) => {
                // Unreachable while the store holds this version's nodes;
                // a whole rebuild is still the right answer.
                debug_assert!(false, "state tree update at height {height}: {e}");
                drop(store);
                *self = Self::build(state);
            }
        }
        changes
    }

    /// Writes block `height`'s two versions; the root of the second.
    fn update(
        store: &mut NodeStore,
        changes: &[LeafChange],
        height: Height,
    ) -> anyhow::Result<Hash> {
        let mut deletions = Vec::new();
        let mut writes = Vec::with_capacity(changes.len());
        for (k, v) in changes {
            let kh = KeyHash::with::<Sha3>(k);
            match v {
                Some(v) => writes.push((kh, v.clone())),
                None => deletions.push((kh, None)),
            }
        }
        if !deletions.is_empty() {
            let tree = JellyfishMerkleTree::<_, Sha3>::new(&*store);
            let (_, batch) = tree.put_value_set(deletions, 2 * height)?;
            store.write(2 * height, batch);
        }
        // A block that deletes nothing (or only keys the tree never held)
        // leaves version 2h equal to 2h − 1, and `jmt` writes no root for
        // an empty change: the root is carried over as it is. (Padding the
        // version with a rewrite of a leaf would rehash a path per block.)
        if !store.has_root(2 * height) {
            store.carry_root(2 * height)?;
        }
        let tree = JellyfishMerkleTree::<_, Sha3>::new(&*store);
        let (roots, batch) =
            tree.batch_put_value_sets(vec![writes], None, state_version(height))?;
        store.write(state_version(height), batch);
        Ok(roots[0].0)
    }

    /// Nodes the shared store holds (for tests of its bound).
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        read(&self.store).node_count()
    }

    /// `jmt`'s own proof, for checking our verifier against its.
    #[cfg(test)]
    pub(crate) fn jmt_proof(
        &self,
        key: &[u8],
        height: Height,
    ) -> jmt::proof::SparseMerkleProof<Sha3> {
        let store = read(&self.store);
        JellyfishMerkleTree::<_, Sha3>::new(&*store)
            .get_with_proof(KeyHash::with::<Sha3>(key), state_version(height))
            .expect("provable")
            .1
    }

    /// A proof of `key`'s value (or absence) in the state of `height`.
    pub(crate) fn prove(&self, key: &[u8], height: Height) -> Result<pb::StateProof, ProveError> {
        let store = read(&self.store);
        let (from, to) = provable_heights(&store).unwrap_or((0, 0));
        if height < from || height > to.min(self.version) {
            return Err(ProveError::NotProvable {
                height,
                from,
                to: to.min(self.version),
            });
        }
        let tree = JellyfishMerkleTree::<_, Sha3>::new(&*store);
        let (value, proof) = tree
            .get_with_proof(KeyHash::with::<Sha3>(key), state_version(height))
            .map_err(|e| ProveError::Tree(e.to_string()))?;
        let (leaf, siblings) =
            proof::from_jmt(&proof).map_err(|e| ProveError::Tree(e.to_string()))?;
        let present = value.is_some();
        let other = leaf.filter(|_| !present);
        Ok(pb::StateProof {
            height,
            key: key.to_vec(),
            value: value.unwrap_or_default(),
            present,
            other_key_hash: other.map(|(k, _)| k.to_vec()).unwrap_or_default(),
            other_value_hash: other.map(|(_, v)| v.to_vec()).unwrap_or_default(),
            siblings: siblings.iter().map(|s| s.to_vec()).collect(),
        })
    }
}
