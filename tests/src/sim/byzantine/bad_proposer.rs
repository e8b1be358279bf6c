//! Proposes blocks that break a header rule (DESIGN §6): a
//! `proposal_round` other than the round it proposes in, a `time_ms` too
//! far ahead of the clock or not after the parent's, or an `app_hash` that
//! is not the state after the parent. It signs the broken header (the VRF
//! proof stays valid: it does not cover those fields), so only the header
//! rules can refuse the block. The change is a function of the proposal,
//! so gossiping it again never makes two different ones.

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use crate::sim::scenario::HeaderFault;
use agora_proto::v1 as pb;

pub(crate) struct BadProposer {
    fault: HeaderFault,
    sent: u64,
}

impl BadProposer {
    pub fn new(fault: HeaderFault) -> Self {
        Self { fault, sent: 0 }
    }
}

impl Byzantine for BadProposer {
    fn proposal(&mut self, cx: &mut Cx<'_>, mut p: pb::Proposal) -> Vec<Out> {
        if !cx.own(&p) || p.pol_round != -1 {
            return vec![Out::all(Wire::Proposal(Box::new(p)))];
        }
        let parent_time = cx
            .store
            .blocks
            .get(&p.height.saturating_sub(1))
            .and_then(|b| b.block.header.as_ref())
            .map_or(0, |h| h.time_ms);
        let Some(header) = p.block.as_mut().and_then(|b| b.header.as_mut()) else {
            return Vec::new();
        };
        match self.fault {
            HeaderFault::WrongRound => header.proposal_round = p.round + 1,
            HeaderFault::FutureTime => header.time_ms += 60_000,
            HeaderFault::StaleTime => header.time_ms = parent_time,
            HeaderFault::WrongAppHash => {
                if let Some(b) = header.app_hash.first_mut() {
                    *b ^= 1;
                }
            }
        }
        cx.resign(&mut p);
        self.sent += 1;
        vec![Out::all(Wire::Proposal(Box::new(p)))]
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("bad headers proposed", self.sent)]
    }
}
