//! Stuffs the vote sets: with each of its own votes it also signs, for the
//! same height, round and type, a vote for nil, for every block it has seen
//! proposed at that height and for two made-up blocks, and sends them all
//! to every peer. Each conflicting vote is an equivocation (evidence).
//! Under the old keep rule an honest node stored one vote from it per block
//! it knew, in every round, so the vote sets of a height grew with the
//! square of its rounds; now only the blocks a round's votes can matter for
//! are kept (`consensus/state/votes.rs`), and what is dropped must not cost
//! the chain its liveness.

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use agora_proto::v1 as pb;
use agora_validator::Height;
use agora_validator::block::header_hash;
use agora_validator::crypto::{Hash, ZERO_HASH, sha3_256};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub(crate) struct VoteStuffer {
    /// Blocks seen proposed, per height (heights below the last vote's
    /// are forgotten).
    seen: BTreeMap<Height, BTreeSet<Hash>>,
    /// Extra votes sent.
    stuffed: u64,
}

impl VoteStuffer {
    fn note(&mut self, p: &pb::Proposal) {
        if let Some(header) = p.block.as_ref().and_then(|b| b.header.as_ref()) {
            let hash = header_hash(header);
            self.seen.entry(p.height).or_default().insert(hash);
        }
    }
}

impl Byzantine for VoteStuffer {
    fn proposal(&mut self, _cx: &mut Cx<'_>, p: pb::Proposal) -> Vec<Out> {
        self.note(&p);
        vec![Out::all(Wire::Proposal(Box::new(p)))]
    }

    fn received(&mut self, _cx: &mut Cx<'_>, _from: usize, wire: &Wire) -> Vec<Out> {
        if let Wire::Proposal(p) = wire {
            self.note(p);
        }
        Vec::new()
    }

    fn vote(&mut self, cx: &mut Cx<'_>, v: pb::Vote) -> Vec<Out> {
        let mut out = vec![Out::all(Wire::Vote(v.clone()))];
        if !cx.own_vote(&v) {
            return out;
        }
        self.seen.retain(|h, _| *h >= v.height);
        let made_up = (0u8..2).map(|i| {
            let round = v.round.to_be_bytes();
            sha3_256(&[&v.height.to_be_bytes()[..], &round, &[i]].concat())
        });
        let seen = self.seen.get(&v.height).into_iter().flatten().copied();
        let own = v.block_hash.as_slice();
        let values: BTreeSet<Hash> = std::iter::once(ZERO_HASH)
            .chain(seen)
            .chain(made_up)
            .filter(|h| *h != ZERO_HASH || !own.is_empty())
            .filter(|h| h.as_slice() != own)
            .collect();
        for value in values {
            self.stuffed += 1;
            out.push(Out::all(Wire::Vote(cx.vote_for(&v, value))));
        }
        out
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("stuffed votes sent", self.stuffed)]
    }
}
