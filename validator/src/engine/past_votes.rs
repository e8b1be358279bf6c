//! The verified votes of the height just decided, kept until the next one
//! is decided: a conflicting vote that arrives after the decision (the core
//! keeps no vote sets of past heights) still becomes evidence.
//!
//! Bound: what the core verified at that height, at most one vote per
//! (validator, round in the core's window, vote type).

use crate::consensus::evidence::{duplicate_vote, vote_hash};
use crate::types::{Height, Round};
use agora_proto::v1 as pb;
use std::collections::BTreeMap;

/// (validator address, round, vote type).
type Key = (Vec<u8>, Round, i32);

/// Votes of the last decided height.
#[derive(Debug, Clone, Default)]
pub struct PastVotes {
    height: Height,
    votes: BTreeMap<Key, pb::Vote>,
}

impl PastVotes {
    /// Keeps the verified votes of `height` (replacing the previous height's).
    pub fn reset(&mut self, height: Height, verified: Vec<pb::Vote>) {
        self.height = height;
        self.votes = verified
            .into_iter()
            .filter(|v| v.height == height)
            .map(|v| ((v.validator_address.clone(), v.round, v.vote_type), v))
            .collect();
    }

    /// Evidence if `v` is for the kept height and conflicts with a kept
    /// vote of the same validator, round and type. `v`'s signature is not
    /// checked here: the evidence pool verifies the evidence, and the
    /// caller [`Self::spend`]s the kept vote once it did, so a forgery
    /// cannot use the kept vote up before the real conflicting vote comes.
    pub fn conflict(&self, v: &pb::Vote) -> Option<pb::Evidence> {
        if v.height != self.height {
            return None;
        }
        let kept = self.votes.get(&Self::key(v))?;
        if vote_hash(kept)? == vote_hash(v)? {
            return None;
        }
        Some(duplicate_vote(kept.clone(), v.clone()))
    }

    /// The kept vote `v` conflicts with has made its evidence (or was
    /// itself bad): it yields no more.
    pub fn spend(&mut self, v: &pb::Vote) {
        self.votes.remove(&Self::key(v));
    }

    fn key(v: &pb::Vote) -> Key {
        (v.validator_address.clone(), v.round, v.vote_type)
    }
}
