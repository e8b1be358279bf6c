//! Recycled hash buffers for the state tree's nodes (see [`BufferPool`]).

use super::super::proof::PLACEHOLDER;
use super::Internal;
use crate::crypto::Hash;

/// The hash buffers of pruned nodes, by length, for the nodes the next
/// updates shape: a 1 M-account block shapes thousands of nodes and
/// prunes as many, and handing the buffers straight back keeps that off
/// the allocator's slow paths (which fetched fresh, zeroed pages). Bound:
/// [`BufferPool::MAX_HELD`] buffers of at most 31 hashes (about 32 MB);
/// what a prune frees past it goes back to the allocator.
#[derive(Debug, Default)]
pub(in super::super) struct BufferPool {
    /// Index: the buffers' length in hashes.
    by_len: Vec<Vec<Box<[Hash]>>>,
    held: usize,
}

impl BufferPool {
    /// How many buffers the pool holds.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held
    }

    const MAX_HELD: usize = 1 << 15;

    /// A buffer of `len` hashes (their values are left to the caller).
    pub(super) fn take(&mut self, len: usize) -> Box<[Hash]> {
        match self.by_len.get_mut(len).and_then(Vec::pop) {
            Some(b) => {
                self.held -= 1;
                debug_assert_eq!(b.len(), len);
                b
            }
            None => vec![PLACEHOLDER; len].into_boxed_slice(),
        }
    }

    /// Keeps the buffer of a node no version uses any more.
    pub(in super::super) fn recycle(&mut self, node: Internal) {
        let len = node.hashes.len();
        if self.held >= Self::MAX_HELD || len == 0 {
            return;
        }
        if self.by_len.len() <= len {
            self.by_len.resize_with(len + 1, Vec::new);
        }
        self.by_len[len].push(node.hashes);
        self.held += 1;
    }
}

/// Clones start empty: the buffers are spare memory, not state.
impl Clone for BufferPool {
    fn clone(&self) -> Self {
        Self::default()
    }
}
