//! A `BTreeMap` that remembers which keys a block touched, so the state
//! tree is updated with exactly what the block changed (O(changes), not
//! O(state)) — see [`super::merkle`].
//!
//! Reads go through `Deref` to the map; every way of changing it is a method
//! here that records the key first, so a change the tree does not see is
//! impossible to write. A key touched and left unchanged is harmless: its
//! leaf is rewritten with the same value.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

/// A map and the keys changed since the last [`TrackedMap::take_dirty`].
#[derive(Debug, Clone)]
pub struct TrackedMap<K, V> {
    map: BTreeMap<K, V>,
    dirty: BTreeSet<K>,
}

impl<K, V> Default for TrackedMap<K, V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

/// Two states are equal when their contents are: what a block touched is
/// bookkeeping, not state.
impl<K: PartialEq, V: PartialEq> PartialEq for TrackedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Eq, V: Eq> Eq for TrackedMap<K, V> {}

impl<K, V> Deref for TrackedMap<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<'a, K, V> IntoIterator for &'a TrackedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

/// A map built whole (genesis, a decoded snapshot) starts clean: the tree
/// over it is built from every leaf, not from a change list.
impl<K, V> From<BTreeMap<K, V>> for TrackedMap<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        Self {
            map,
            dirty: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone, V> TrackedMap<K, V> {
    /// A value to change in place; the key is recorded only if present.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let v = self.map.get_mut(k)?;
        self.dirty.insert(k.clone());
        Some(v)
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.dirty.insert(k.clone());
        self.map.insert(k, v)
    }

    /// Removes a key (its leaf is deleted).
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k)?;
        self.dirty.insert(k.clone());
        Some(v)
    }

    /// The entry of a key, recorded as changed.
    pub fn entry(&mut self, k: K) -> std::collections::btree_map::Entry<'_, K, V> {
        self.dirty.insert(k.clone());
        self.map.entry(k)
    }

    /// Every value, to change in place: every key is recorded.
    pub fn values_mut(&mut self) -> std::collections::btree_map::ValuesMut<'_, K, V> {
        self.dirty.extend(self.map.keys().cloned());
        self.map.values_mut()
    }

    /// Drops every key below `from` (recorded as removed).
    pub fn remove_below(&mut self, from: &K) {
        let kept = self.map.split_off(from);
        let dropped = std::mem::replace(&mut self.map, kept);
        self.dirty.extend(dropped.into_keys());
    }

    /// The keys changed since the last call, in order; clears the record.
    pub fn take_dirty(&mut self) -> BTreeSet<K> {
        std::mem::take(&mut self.dirty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutation_is_recorded_and_reads_are_not() {
        let mut m: TrackedMap<u32, u32> = BTreeMap::from([(1, 1), (2, 2), (3, 3)]).into();
        assert!(m.take_dirty().is_empty(), "a map built whole starts clean");
        let _ = m.get(&1);
        assert!(m.get_mut(&9).is_none());
        assert!(m.take_dirty().is_empty(), "reads and misses change nothing");
        *m.get_mut(&1).unwrap() = 10;
        m.insert(4, 4);
        m.remove(&2);
        *m.entry(5).or_default() += 1;
        assert_eq!(m.take_dirty(), BTreeSet::from([1, 2, 4, 5]));
        m.remove_below(&4);
        assert_eq!(m.take_dirty(), BTreeSet::from([1, 3]));
        for v in m.values_mut() {
            *v += 1;
        }
        assert_eq!(m.take_dirty(), BTreeSet::from([4, 5]));
        assert_eq!(m.iter().collect::<Vec<_>>(), [(&4, &5), (&5, &2)]);
    }

    #[test]
    fn equality_ignores_what_was_touched() {
        let a: TrackedMap<u8, u8> = BTreeMap::from([(1, 1)]).into();
        let mut b = a.clone();
        b.insert(1, 1);
        assert_eq!(a, b);
    }
}
