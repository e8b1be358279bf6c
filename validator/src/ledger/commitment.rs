//! The ledger's state as committed, stored and proven: the app hash (the
//! Merkle root, moved on once per block), proofs, the leaves a node stores
//! and restores from, whole snapshots, and the copies the node keeps (a
//! follower for gRPC, a fork for side-by-side execution).

use super::merkle::{self, StateTree};
use super::snapshot::{self, SnapshotError};
use super::{LeafChange, LeafError, LeafKey, Ledger};
use crate::crypto::Hash;
use crate::types::Height;
use agora_proto::v1 as pb;

impl Ledger {
    /// The app hash of the state after the last executed block: the root
    /// of its Merkle tree (DESIGN §3; leaves in `state.proto`). Mid-block it
    /// is still the root before the block.
    pub fn app_hash(&self) -> Hash {
        self.tree.root()
    }

    /// Brings this read-only copy up to `leader`, which executed the blocks
    /// whose leaf changes (`EndBlock::state_changes`, in order) are given:
    /// O(changes), where `clone` is O(state). Returns false when it cannot
    /// (the blocks do not lead from this copy's height to the leader's, or
    /// a change does not decode); this copy is then unusable and the caller
    /// replaces it with a clone.
    pub fn follow<'c>(
        &mut self,
        blocks: impl IntoIterator<Item = &'c [LeafChange]>,
        leader: &Ledger,
    ) -> bool {
        let mut height = self.state.height;
        let mut followed = self.block.is_none();
        for changes in blocks {
            height += 1;
            followed = followed && merkle::follow::apply(&mut self.state, changes).is_ok();
            // Each block's globals leaf carries its height.
            followed = followed && self.state.height == height;
        }
        if !followed || height != leader.state.height {
            return false;
        }
        self.tree = leader.tree.clone();
        debug_assert!(self.state == leader.state, "a follower matches its leader");
        true
    }

    /// A copy that will execute blocks of its own beside this ledger (a
    /// speculative run, a benchmark's fresh start): it gets its own copy of
    /// the Merkle tree's nodes. A plain `clone` shares them — right for a
    /// read-only copy such as the one the gRPC services read — and a shared
    /// copy that executes a block after the other moved on rebuilds its
    /// tree from its whole state.
    pub fn fork(&self) -> Self {
        Self {
            state: self.state.clone(),
            block: self.block.clone(),
            tree: self.tree.fork(),
        }
    }

    /// A digest of the whole current state, mid-block included: SHA3-256
    /// of its snapshot encoding. O(state); for checks that a step changed
    /// nothing (the app hash moves only at `end_block`).
    pub fn state_digest(&self) -> Hash {
        crate::crypto::sha3_256(&snapshot::encode(&self.state))
    }

    /// Moves the tree on with what the block changed; its new root and
    /// the changed leaves.
    pub(super) fn seal(&mut self) -> (Hash, Vec<LeafChange>) {
        let changes = self.tree.advance(&mut self.state);
        (self.tree.root(), changes)
    }

    /// A proof of a leaf's value (or absence) in the state of `height`
    /// (one of the last [`merkle::PROVABLE_VERSIONS`] heights this ledger
    /// executed or was restored at); keys are made by [`merkle::leaves`].
    pub fn prove(&self, key: &[u8], height: Height) -> Result<pb::StateProof, merkle::ProveError> {
        self.tree.prove(key, height)
    }

    /// The canonical encoding of the whole state (the snapshot the node
    /// stores).
    pub fn encode(&self) -> Vec<u8> {
        snapshot::encode(&self.state)
    }

    /// Every leaf of the state (key, value), in ascending key order: what
    /// a node stores at genesis; each block's
    /// [`EndBlock::state_changes`] keep it up to date.
    pub fn leaves(&self) -> Vec<(LeafKey, Vec<u8>)> {
        merkle::leaves::all(&self.state)
    }

    /// Restores a ledger from its leaves (any order), rejecting unknown
    /// kinds, wrong key lengths, repeated keys, values that do not decode
    /// or are not canonical, and states whose parts disagree. Its tree is
    /// rebuilt from the state, so only the restored height is provable
    /// until more blocks run.
    pub fn from_leaves<K, V>(leaves: impl IntoIterator<Item = (K, V)>) -> Result<Self, LeafError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut state = merkle::decode::state(leaves)?;
        let tree = StateTree::build(&mut state);
        Ok(Self {
            state,
            block: None,
            tree,
        })
    }

    /// Restores a ledger from [`Self::encode`] output, rejecting malformed
    /// bytes; its tree is rebuilt from the state, so only the restored
    /// height is provable until more blocks run.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut state = snapshot::decode(bytes)?;
        let tree = StateTree::build(&mut state);
        Ok(Self {
            state,
            block: None,
            tree,
        })
    }
}
