//! The tree's storage helpers: arenas of nodes and leaves that reuse
//! freed indices, and the cheap hasher for maps keyed by those indices.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes the node arena's indices for a pass's maps: the keys are our
/// own indices, so SipHash's resistance to chosen keys buys nothing there
/// and cost a tenth of a 1 M-account block's tree update.
#[derive(Default)]
pub(super) struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Arena index → position, for the nodes of one pass.
pub(super) type IndexMap = HashMap<u32, usize, BuildHasherDefault<IndexHasher>>;

/// An arena slot list with reuse of freed indices.
#[derive(Debug, Clone, Default)]
pub(super) struct Arena<T> {
    items: Vec<T>,
    free: Vec<u32>,
}

impl<T: Default> Arena<T> {
    pub(super) fn put(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = item;
                i
            }
            None => {
                let i = u32::try_from(self.items.len()).expect("fewer than 2^32 tree items");
                self.items.push(item);
                i
            }
        }
    }

    /// Frees an item, handing back what it holds.
    pub(super) fn free(&mut self, i: u32) -> T {
        self.free.push(i);
        std::mem::take(&mut self.items[i as usize])
    }

    pub(super) fn get(&self, i: u32) -> &T {
        &self.items[i as usize]
    }

    /// Fills a slot [`Self::put`] reserved.
    pub(super) fn set(&mut self, i: u32, item: T) {
        self.items[i as usize] = item;
    }

    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.items.len() - self.free.len()
    }
}
