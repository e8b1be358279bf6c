//! Block sync glue. Serving: a peer's request is answered from storage
//! (`crate::sync::serve_request`). Fetching is the engine's: it decides
//! when and whom to ask (`Action::RequestBlocks`), accepts only the answer
//! to its request, and checks each block before it applies it; here a
//! response is handed over and the queued blocks are applied one by one,
//! each one's actions (its commit included) executed before the next.

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use prost::Message;
use tracing::{debug, warn};

use super::{RunError, Runner, now_ms};
use crate::metrics::BudgetKind;
use crate::sync::serve_request;
use crate::transport::PeerId;

/// Block requests served at once, on blocking threads. Reading, decoding
/// and re-encoding up to a 4 MiB response took the consensus loop's time
/// before (a request flood that never read the replies cut the commit rate
/// to a third in a debug build); off the loop, one at a time, a flood costs
/// at most one core and its own peers' budgets, never a height. A request
/// that finds the slot taken is dropped like one over the budget (a
/// syncing peer asks again).
pub(super) const SERVE_TASKS: usize = 1;

impl Runner {
    /// Answers a block request if the peer's serving budget allows
    /// (checked before any block is read; the bytes served are taken after,
    /// see `transport::budget`), off the consensus loop.
    pub(super) fn serve_blocks(
        &mut self,
        peer: PeerId,
        req: &pb::BlockRequest,
    ) -> Result<(), RunError> {
        if !self.transport.may_serve(&peer) {
            debug!(%peer, from = req.from_height, "block request over the serving budget; dropped");
            return Ok(());
        }
        if self.tamper.is_some() {
            return self.serve_tampered(peer, req);
        }
        let Ok(permit) = self.serving.clone().try_acquire_owned() else {
            self.metrics.budget_drop(BudgetKind::Serve);
            debug!(%peer, from = req.from_height, "block request while serving another; dropped");
            return Ok(());
        };
        let (storage, transport, req) = (self.storage.clone(), self.transport.clone(), *req);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match serve_request(&storage, &req) {
                Ok(resp) => {
                    transport.served(&peer, resp.encoded_len());
                    let msg = PeerMessage {
                        kind: Some(Kind::BlockResponse(resp)),
                    };
                    let _ = transport.send(peer, &msg);
                }
                Err(e) => warn!(%peer, error = %e, "block request not served: storage error"),
            }
        });
        Ok(())
    }

    /// `testing.tamper_sync_bodies`: answered on the loop, forged.
    fn serve_tampered(&mut self, peer: PeerId, req: &pb::BlockRequest) -> Result<(), RunError> {
        let mut resp = serve_request(&self.storage, req)?;
        self.transport.served(&peer, resp.encoded_len());
        if let Some(t) = &mut self.tamper {
            t.forge(peer, &mut resp);
        }
        let _ = self.transport.send(
            peer,
            &PeerMessage {
                kind: Some(Kind::BlockResponse(resp)),
            },
        );
        Ok(())
    }

    /// Hands a response to the engine, then applies what it queued.
    pub(super) fn on_blocks(
        &mut self,
        peer: PeerId,
        resp: pb::BlockResponse,
    ) -> Result<(), RunError> {
        let actions = self.engine.on_block_response(peer, resp);
        self.execute(actions)?;
        while let Some(actions) = self.engine.next_synced_block(now_ms(), &self.mempool)? {
            self.execute(actions)?;
        }
        Ok(())
    }

    /// `testing.tamper_sync_bodies`: responses nobody asked for.
    pub(super) fn send_unsolicited(&mut self) {
        let Some(t) = &mut self.tamper else { return };
        for (peer, msg) in t.unsolicited() {
            let _ = self.transport.send(peer, &msg);
        }
    }
}
