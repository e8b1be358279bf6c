//! State-sync serving glue (see `crate::state_sync::serve`): snapshots are
//! taken every `state_sync.snapshot_interval` heights once the tip is
//! durable, and peers' requests are answered under their serving budget.

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use prost::Message;
use tracing::{debug, warn};

use super::{RunError, Runner};
use crate::transport::PeerId;

impl Runner {
    /// Takes a snapshot when the run up to `tip` crossed a multiple of the
    /// interval (a synced run may step over it), or at start (`force`).
    pub(super) fn maybe_snapshot(&mut self, tip: u64, force: bool) {
        let every = self.snapshot_interval;
        if every == 0 || tip == 0 {
            return;
        }
        if !force && tip / every <= self.last_snapshot / every {
            return;
        }
        self.last_snapshot = tip;
        match self.storage.tip_state() {
            Ok(view) => self.snapshots.take(view),
            Err(e) => warn!(error = %e, "snapshot not taken: storage error"),
        }
    }

    /// Answers a snapshot request with the newest snapshot's offer.
    pub(super) fn serve_offer(&mut self, peer: PeerId) -> Result<(), RunError> {
        if !self.transport.may_serve(&peer) {
            debug!(%peer, "snapshot request over the serving budget; dropped");
            return Ok(());
        }
        let offer = self.snapshots.offer();
        self.send_served(peer, Kind::SnapshotOffer(offer));
        Ok(())
    }

    /// Answers a chunk request from the snapshots held.
    pub(super) fn serve_chunk(
        &mut self,
        peer: PeerId,
        req: &pb::ChunkRequest,
    ) -> Result<(), RunError> {
        if !self.transport.may_serve(&peer) {
            debug!(%peer, index = req.index, "chunk request over the serving budget; dropped");
            return Ok(());
        }
        if self.withhold_chunk && self.snapshots.first_filled(req.height) == Some(req.index) {
            debug!(%peer, index = req.index, "testing: chunk request withheld");
            return Ok(());
        }
        let mut chunk = self.snapshots.chunk(req.height, req.index);
        if self.tamper_chunks
            && let Some(first) = chunk.leaves.first_mut()
        {
            first.value.push(0);
        }
        self.send_served(peer, Kind::ChunkResponse(chunk));
        Ok(())
    }

    fn send_served(&self, peer: PeerId, kind: Kind) {
        let msg = PeerMessage { kind: Some(kind) };
        self.transport.served(&peer, msg.encoded_len());
        let _ = self.transport.send(peer, &msg);
    }
}
