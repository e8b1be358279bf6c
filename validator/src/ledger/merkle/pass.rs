//! What one update or build of the state tree collects on its way down
//! (the nodes it shaped, the items it replaced) and the buffers the tree
//! keeps for it between blocks.

use super::super::node::{BufferPool, Child, HashScratch, Unhashed};
use super::arena::IndexMap;

/// A node shaped during an update or build, waiting for its hashes.
#[derive(Debug)]
pub(super) struct Fresh {
    /// Its place in the node arena (reserved when it was shaped).
    pub(super) index: u32,
    /// Its nibble depth: every child is one deeper.
    pub(super) depth: usize,
    /// Its parent's position in the pass's list and its nibble there
    /// (`None`: the root).
    pub(super) parent: Option<(usize, u8)>,
    pub(super) unhashed: Unhashed,
}

/// What one update or build collects on its way down: the items it
/// replaced, and the nodes it shaped, hashed together at the end
/// (`Tree::hash_fresh`) so that each bit level of a whole nibble depth
/// is one batch.
#[derive(Debug, Default)]
pub(super) struct Pass {
    pub(super) stale: Vec<Child>,
    pub(super) fresh: Vec<Fresh>,
    /// Arena index → position in `fresh`.
    pub(super) fresh_at: IndexMap,
}

/// The buffers of a pass, kept by the tree from one update to the next
/// so that, once grown, a block reuses them instead of allocating (and
/// faulting in) fresh memory: a 1 M-account block shapes thousands of
/// nodes. Bound: about one block's shaped nodes.
#[derive(Debug, Default)]
pub(super) struct Buffers {
    pub(super) fresh: Vec<Fresh>,
    pub(super) fresh_at: IndexMap,
    /// `hash_fresh`'s positions in depth order.
    pub(super) order: Vec<u32>,
    pub(super) hash: HashScratch,
    /// Pruned nodes' hash buffers, for the next update's nodes.
    pub(super) pool: BufferPool,
}

/// Clones start with empty buffers: they hold nothing between passes.
impl Clone for Buffers {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// The positions of `fresh` ordered deepest nibble depth first (within a
/// depth, in list order), by counting: sorting the nodes themselves moved
/// every ~150-byte entry several times and allocated a list as long.
pub(super) fn by_depth_deepest_first(fresh: &[Fresh], order: &mut Vec<u32>) {
    // Nibble depths run below 64 (distinct key hashes part within 64).
    let mut starts = [0usize; 65];
    for f in fresh {
        debug_assert!(f.depth < 64, "a node's depth is a nibble index");
        starts[63 - f.depth] += 1;
    }
    let mut sum = 0;
    for s in &mut starts {
        (*s, sum) = (sum, sum + *s);
    }
    order.clear();
    order.resize(fresh.len(), 0);
    for (k, f) in fresh.iter().enumerate() {
        let at = &mut starts[63 - f.depth];
        order[*at] = u32::try_from(k).expect("fewer than 2^32 shaped nodes");
        *at += 1;
    }
}
