//! Block sync glue. Serving: a peer's request is answered from storage
//! (`crate::sync::serve_request`). Fetching is the engine's: it decides
//! when and whom to ask (`Action::RequestBlocks`), accepts only the answer
//! to its request, and checks each block before it applies it; here a
//! response is handed over and the queued blocks are applied one by one,
//! each one's actions (its commit included) executed before the next.

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use prost::Message;
use tracing::debug;

use super::{RunError, Runner, now_ms};
use crate::sync::serve_request;
use crate::transport::PeerId;

impl Runner {
    /// Answers a block request (forged with `testing.tamper_sync_bodies`)
    /// if the peer's serving budget allows (checked before any block is
    /// read; the bytes served are taken after, see `transport::budget`).
    pub(super) fn serve_blocks(
        &mut self,
        peer: PeerId,
        req: &pb::BlockRequest,
    ) -> Result<(), RunError> {
        if !self.transport.may_serve(&peer) {
            debug!(%peer, from = req.from_height, "block request over the serving budget; dropped");
            return Ok(());
        }
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
