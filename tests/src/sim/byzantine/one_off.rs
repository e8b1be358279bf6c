//! Equivocates exactly once, then behaves: at its first prevote from a
//! given height on, it also signs a prevote for another value (nil against
//! a block, a made-up block against nil) and sends both to every peer.

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use agora_proto::v1 as pb;
use agora_validator::crypto::{ZERO_HASH, sha3_256};
use agora_validator::{Height, VoteType};

pub(crate) struct OneOff {
    at_height: Height,
    done: bool,
}

impl OneOff {
    pub fn new(at_height: Height) -> Self {
        Self {
            at_height,
            done: false,
        }
    }
}

impl Byzantine for OneOff {
    fn vote(&mut self, cx: &mut Cx<'_>, v: pb::Vote) -> Vec<Out> {
        let mut out = vec![Out::all(Wire::Vote(v.clone()))];
        if self.done
            || !cx.own_vote(&v)
            || v.height < self.at_height
            || v.vote_type != VoteType::Prevote as i32
        {
            return out;
        }
        self.done = true;
        let other = if v.block_hash.is_empty() {
            sha3_256(&[&v.height.to_be_bytes()[..], &v.round.to_be_bytes()].concat())
        } else {
            ZERO_HASH
        };
        out.push(Out::all(Wire::Vote(cx.vote_for(&v, other))));
        out
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("one-off equivocations", u64::from(self.done))]
    }
}
