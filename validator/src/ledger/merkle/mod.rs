//! The authenticated state: a Jellyfish-shaped Merkle tree (16-ary over
//! the nibbles of SHA3-256 key hashes, `jmt`'s hashing) over the ledger's
//! leaves ([`leaves`]), whose root is the app hash (DESIGN §3).
//!
//! Each block updates the tree with exactly the leaves it changed (the keys
//! its [`super::tracked::TrackedMap`]s recorded), as the version of its
//! height: O(changes · log n), not O(state). The nodes live in a [`Tree`]
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
//! The last [`PROVABLE_VERSIONS`] versions stay provable; what only older
//! versions used is dropped.
//!
//! Why not `jmt` (which built this tree until issue 13's scaling work,
//! and still checks it in tests): with a million leaves a block of 1,000
//! transfers rewrites ~4,200 dense internal nodes, and `jmt` rehashes each
//! whole (up to 15 SHA3-256: ~59,500 a block against ~4,600 with 1 k
//! leaves) and copies each ~900-byte node about four times through its
//! cache and batch: the 1 M block cost 7–9× the 1 k one. [`tree`] keeps
//! each dense node's inner range hashes (4 hashes per changed child, not
//! 15), writes each new node once into an arena, and finds nodes by index
//! rather than by hashed key. Same definition, same roots, same proofs.

pub mod chunks;
pub mod decode;
pub mod delegator_counts;
pub(crate) mod follow;
pub mod leaves;
mod node;
pub mod proof;
mod tree;

use crate::crypto::sha3_batch::sha3_256_batch;
use crate::crypto::{Hash, sha3_256};
use crate::types::Height;
use agora_proto::v1 as pb;
use leaves::LeafChange;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tree::{Change, Tree};

/// How many recent heights of the state can be proven.
pub const PROVABLE_VERSIONS: u64 = 128;

/// SHA3-256 as `jmt`'s hasher, for the tests that check this tree
/// against `jmt`.
#[cfg(test)]
#[derive(Clone)]
pub struct Sha3(sha3::Sha3_256);

#[cfg(test)]
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
}

/// A ledger's view of the shared tree: the version its state is at and that
/// version's root.
#[derive(Clone)]
pub(crate) struct StateTree {
    store: Arc<RwLock<Tree>>,
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

fn read(s: &RwLock<Tree>) -> RwLockReadGuard<'_, Tree> {
    // A panic while holding the lock leaves the store as it was before the
    // write began or fully written (an update stores its root last).
    s.read().unwrap_or_else(|e| e.into_inner())
}

fn write(s: &RwLock<Tree>) -> RwLockWriteGuard<'_, Tree> {
    s.write().unwrap_or_else(|e| e.into_inner())
}

impl StateTree {
    /// A tree built whole from a state's leaves, at its height.
    pub(crate) fn build(state: &mut super::state::State) -> Self {
        leaves::clear_changes(state);
        let all = leaves::all(state)
            .into_iter()
            .map(|(k, v)| (sha3_256(&k), v))
            .collect();
        let tree = Tree::build(state.height, all);
        let root = tree.root(state.height).expect("the version just built");
        Self {
            store: Arc::new(RwLock::new(tree)),
            version: state.height,
            root,
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
    /// ledger forked off the shared store) the same list is returned: a
    /// store holding this ledger's previous leaves that applies it holds
    /// exactly the new state's leaves.
    pub(crate) fn advance(&mut self, state: &mut super::state::State) -> Vec<LeafChange> {
        let height = state.height;
        debug_assert_eq!(height, self.version + 1, "one version per block");
        let changes = leaves::changed(state, self.slash_events);
        let shared = self.store.clone();
        let mut store = write(&shared);
        if store.latest() != Some(self.version) {
            // Another clone moved the shared store on: this ledger forked.
            drop(store);
            *self = Self::build(state);
            return changes;
        }
        let keys: Vec<[&[u8]; 1]> = changes.iter().map(|(k, _)| [&k[..]]).collect();
        let mut update: Vec<Change<'_>> = sha3_256_batch(&keys)
            .into_iter()
            .zip(&changes)
            .map(|(key_hash, (_, v))| Change::hashed(key_hash, v.as_deref()))
            .collect();
        self.root = store.update(height, &mut update);
        store.prune(height.saturating_add(1).saturating_sub(PROVABLE_VERSIONS));
        self.version = height;
        self.slash_events = state.slash_events.len();
        changes
    }

    /// Nodes and leaves the shared store holds (for tests of its bound).
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        read(&self.store).item_count()
    }

    /// A proof of `key`'s value (or absence) in the state of `height`.
    pub(crate) fn prove(&self, key: &[u8], height: Height) -> Result<pb::StateProof, ProveError> {
        let store = read(&self.store);
        let (from, to) = store.provable().unwrap_or((0, 0));
        let to = to.min(self.version);
        let proof = (height >= from && height <= to)
            .then(|| store.prove(&sha3_256(key), height))
            .flatten()
            .ok_or(ProveError::NotProvable { height, from, to })?;
        Ok(proof.into_wire(key, height))
    }
}
