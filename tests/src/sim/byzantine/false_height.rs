//! Announces a height far above the chain's; asked for blocks, it answers
//! with none (still claiming the height) or does not answer at all.

use super::{Byzantine, Cx, Out};
use crate::sim::Wire;
use agora_proto::v1 as pb;
use agora_validator::Height;

/// The height it claims above its real one.
const LIE: Height = 1_000_000;

pub(crate) struct FalseHeight {
    answers: bool,
    asked: u64,
}

impl FalseHeight {
    pub fn new(answers: bool) -> Self {
        Self { answers, asked: 0 }
    }
}

impl Byzantine for FalseHeight {
    fn serve(
        &mut self,
        cx: &mut Cx<'_>,
        peer: usize,
        _from: Height,
        _count: u32,
    ) -> Option<Vec<Out>> {
        self.asked += 1;
        if !self.answers {
            return Some(Vec::new());
        }
        let resp = pb::BlockResponse {
            blocks: Vec::new(),
            latest_height: cx.store.tip_height() + LIE,
            lowest_height: 0,
        };
        Some(vec![Out::to(peer, Wire::BlockResponse(Box::new(resp)))])
    }

    fn announce(&self, height: Height) -> Height {
        height + LIE
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("false-height requests", self.asked)]
    }
}
