//! Who delivered each vote the core stores at the current height, so that
//! one found bad later (checked alone after a quorum check holding it
//! failed, or when it had to stand alone; `consensus::vote_set` docs) is
//! charged to the peer that sent it, as a vote rejected on arrival is.
//! Sound because an honest node sends only its own votes and votes it
//! verified, each of which is its signer's signature.
//!
//! Bound: an entry is kept only while the core stores those very bytes
//! after the vote was fed (`Consensus::holds_vote`), one per stored vote,
//! and all are dropped when votes of a new height come; so at most as many
//! entries as the core's vote sets hold votes, each its key's bytes
//! (≈ 170 B of vote fields) plus the map's node overhead: about as much
//! again as the stored votes themselves. (The current height's vote sets,
//! and so this map, are not yet a term of `node/src/memory.rs`: they grow
//! linearly with the rounds a height takes, by the keep rule of
//! `consensus/state/votes.rs`; ARCHITECTURE.md "Worst-case memory".)

use crate::types::{Height, Round};
use agora_proto::v1 as pb;
use std::collections::BTreeMap;

/// A vote's identity: round, type, validator, value and signature bytes.
type Key = (Round, i32, Vec<u8>, Vec<u8>, Vec<u8>);

fn key(v: &pb::Vote) -> Key {
    (
        v.round,
        v.vote_type,
        v.validator_address.clone(),
        v.block_hash.clone(),
        v.signature.clone(),
    )
}

/// The first sender of each stored vote of one height.
#[derive(Debug, Clone)]
pub(super) struct VoteSenders<P> {
    height: Height,
    senders: BTreeMap<Key, P>,
}

impl<P> Default for VoteSenders<P> {
    fn default() -> Self {
        Self {
            height: 0,
            senders: BTreeMap::new(),
        }
    }
}

impl<P: Copy> VoteSenders<P> {
    /// Notes `peer` as the sender of `v` unless another peer sent those
    /// bytes first. True if this is the first sender: the caller then
    /// calls [`Self::settle`] once the core has seen the vote.
    pub fn note(&mut self, peer: P, v: &pb::Vote) -> bool {
        if v.height != self.height {
            self.height = v.height;
            self.senders.clear();
        }
        let k = key(v);
        if self.senders.contains_key(&k) {
            return false;
        }
        self.senders.insert(k, peer);
        true
    }

    /// Forgets the sender of `v` if the core did not store it.
    pub fn settle(&mut self, v: &pb::Vote, stored: bool) {
        if !stored && v.height == self.height {
            self.senders.remove(&key(v));
        }
    }

    /// The peer that sent the stored vote `v`, forgotten now: each stored
    /// vote fails alone at most once.
    pub fn take(&mut self, v: &pb::Vote) -> Option<P> {
        if v.height != self.height {
            return None;
        }
        self.senders.remove(&key(v))
    }

    /// Entries held (for the memory bound's tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.senders.len()
    }
}
