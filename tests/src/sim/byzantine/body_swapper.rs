//! Relays every proposal it receives, and every one it re-gossips, with a
//! swapped body: header, signature and VRF proof untouched, so only the
//! body-against-header check tells the copy from the genuine block.

use super::{Byzantine, Cx, Out, forge_body};
use crate::sim::Wire;
use agora_proto::v1 as pb;

#[derive(Default)]
pub(crate) struct BodySwapper {
    swapped: u64,
}

impl BodySwapper {
    fn swap(&mut self, mut p: pb::Proposal) -> Out {
        if let Some(b) = p.block.as_mut() {
            forge_body(b);
        }
        self.swapped += 1;
        Out::all(Wire::Proposal(Box::new(p)))
    }
}

impl Byzantine for BodySwapper {
    fn proposal(&mut self, cx: &mut Cx<'_>, p: pb::Proposal) -> Vec<Out> {
        if cx.own(&p) {
            return vec![Out::all(Wire::Proposal(Box::new(p)))];
        }
        vec![self.swap(p)]
    }

    fn received(&mut self, _cx: &mut Cx<'_>, _from: usize, wire: &Wire) -> Vec<Out> {
        match wire {
            Wire::Proposal(p) => vec![self.swap((**p).clone())],
            _ => Vec::new(),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("swapped bodies relayed", self.swapped)]
    }
}
