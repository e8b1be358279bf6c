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
    /// vote of the same validator, round and type. Each kept vote yields
    /// evidence once. `v`'s signature is not checked here: the evidence
    /// pool verifies the evidence before keeping it.
    pub fn conflict(&mut self, v: &pb::Vote) -> Option<pb::Evidence> {
        if v.height != self.height {
            return None;
        }
        let key = (v.validator_address.clone(), v.round, v.vote_type);
        let kept = self.votes.get(&key)?;
        if vote_hash(kept)? == vote_hash(v)? {
            return None;
        }
        let kept = self.votes.remove(&key)?;
        Some(duplicate_vote(kept, v.clone()))
    }
}
