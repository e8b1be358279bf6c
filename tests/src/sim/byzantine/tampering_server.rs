//! Serves sync requests with genuine headers and certificates but forged
//! bodies (a transaction dropped, or one added), and now and then sends a
//! response nobody asked for.

use super::{Byzantine, Cx, Out, forge_body};
use crate::sim::Wire;
use crate::sim::host::serve_blocks;
use agora_proto::v1 as pb;
use agora_validator::Height;
use rand::Rng;

#[derive(Default)]
pub(crate) struct TamperingServer {
    asked: u64,
    unsolicited: u64,
}

fn forged(cx: &Cx<'_>, from: Height, count: u32) -> pb::BlockResponse {
    let mut resp = serve_blocks(cx.store, from, count);
    for cb in &mut resp.blocks {
        if let Some(b) = cb.block.as_mut() {
            forge_body(b);
        }
    }
    resp
}

impl Byzantine for TamperingServer {
    fn serve(
        &mut self,
        cx: &mut Cx<'_>,
        peer: usize,
        from: Height,
        count: u32,
    ) -> Option<Vec<Out>> {
        self.asked += 1;
        let resp = forged(cx, from, count);
        Some(vec![Out::to(peer, Wire::BlockResponse(Box::new(resp)))])
    }

    fn tick(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        let tip = cx.store.tip_height();
        if tip == 0 || !cx.rng.random_bool(0.3) {
            return Vec::new();
        }
        let to = cx.rng.random_range(0..cx.n);
        if to == cx.me {
            return Vec::new();
        }
        self.unsolicited += 1;
        let from = cx.rng.random_range(1..=tip);
        let resp = forged(cx, from, 4);
        vec![Out::to(to, Wire::BlockResponse(Box::new(resp)))]
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("tampered responses to requests", self.asked),
            ("unsolicited responses", self.unsolicited),
        ]
    }
}
