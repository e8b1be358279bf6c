//! Equivocates at every height: two blocks for each fresh proposal, one to
//! each half of the peers, and conflicting votes to different peers (for
//! the other block where it proposed two, else nil against a value or a
//! made-up value against nil).

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::crypto::{Hash, ZERO_HASH, sha3_256};
use agora_validator::{Height, Round};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub(crate) struct Equivocator {
    /// Its split per (height, round): the half that got block B, and B's hash.
    splits: BTreeMap<(Height, Round), (BTreeSet<usize>, Hash)>,
}

impl Byzantine for Equivocator {
    fn proposal(&mut self, cx: &mut Cx<'_>, p: pb::Proposal) -> Vec<Out> {
        if !cx.own(&p) || p.pol_round != -1 {
            return vec![Out::all(Wire::Proposal(Box::new(p)))];
        }
        // A second block for the same (height, round), signed with the key.
        let mut alt = p.clone();
        let Some(header) = alt.block.as_mut().and_then(|b| b.header.as_mut()) else {
            return Vec::new();
        };
        header.time_ms += 1;
        let alt_hash = header_hash(header);
        cx.resign(&mut alt);
        let (a, b) = cx.halves();
        let mut out: Vec<Out> = a
            .into_iter()
            .map(|j| Out::to(j, Wire::Proposal(Box::new(p.clone()))))
            .collect();
        out.extend(
            b.iter()
                .map(|j| Out::to(*j, Wire::Proposal(Box::new(alt.clone())))),
        );
        self.splits.insert((p.height, p.round), (b, alt_hash));
        out
    }

    fn vote(&mut self, cx: &mut Cx<'_>, v: pb::Vote) -> Vec<Out> {
        if !cx.own_vote(&v) {
            return vec![Out::all(Wire::Vote(v))];
        }
        let (a, b, other) = match self.splits.get(&(v.height, v.round)) {
            // For block A to the half that saw A, for B to the other.
            Some((half_b, alt)) if !v.block_hash.is_empty() => {
                let a: Vec<usize> = (0..cx.n)
                    .filter(|j| *j != cx.me && !half_b.contains(j))
                    .collect();
                (a, half_b.clone(), *alt)
            }
            _ => {
                let (a, b) = cx.halves();
                let other = if v.block_hash.is_empty() {
                    sha3_256(&v.round.to_be_bytes())
                } else {
                    ZERO_HASH
                };
                (a, b, other)
            }
        };
        let w = cx.vote_for(&v, other);
        let mut out: Vec<Out> = a
            .into_iter()
            .map(|j| Out::to(j, Wire::Vote(v.clone())))
            .collect();
        out.extend(b.into_iter().map(|j| Out::to(j, Wire::Vote(w.clone()))));
        out
    }
}
