//! Block sync glue. Serving: a peer's request is answered from storage
//! (`crate::sync::serve_request`). Fetching is the engine's: it decides
//! when and whom to ask (`Action::RequestBlocks`), accepts only the answer
//! to its request, and checks each block before it applies it; here a
//! response is handed over and the queued blocks are applied one by one,
//! each one's actions (its commit included) executed before the next.
//!
//! Verification overlaps with applying: the certificates of each newly
//! queued run go to a blocking thread as one job (the engine's
//! `CertificateJob`, a pure function of its items) while the loop applies
//! the blocks queued before them, at most [`SYNC_CHUNK`] per turn of the
//! event loop so that the next response is read (and its job started)
//! between chunks. The job's verdict comes back as an event; the blocks
//! it covers wait for it.

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use prost::Message;
use tracing::{debug, info, warn};

use agora_validator::engine::{Action, CertificateVerdict};

use super::{Executed, RunError, Runner};
use crate::metrics::BudgetKind;
use crate::sync::serve_request;
use crate::transport::PeerId;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Block requests served at once, on blocking threads. Reading, decoding
/// and re-encoding up to a 4 MiB response took the consensus loop's time
/// before (a request flood that never read the replies cut the commit rate
/// to a third in a debug build); off the loop, one at a time, a flood costs
/// at most one core and its own peers' budgets, never a height. A request
/// that finds the slot taken waits for it, one per peer ([`ServeSlot`]):
/// dropping it cost the asker a whole request timeout and made it charge
/// an honest server for a false height (seen as a 5 s stall in catch-up).
pub(super) const SERVE_TASKS: usize = 1;

/// Block requests waiting for the serving slot, at most (see [`ServeSlot`]).
pub(super) const SERVE_WAITING: usize = 64;

/// The serving slot ([`SERVE_TASKS`]) and the peers whose request waits
/// for it.
///
/// Bound: at most one waiting request per peer and [`SERVE_WAITING`] in
/// all (each a small task holding a 16-byte request); a peer's second
/// request while one waits, or any request past the bound, is dropped (a
/// syncing node has one request in flight, so only a peer breaking that,
/// or a crowd of new identities, meets a drop).
#[derive(Debug, Clone)]
pub(super) struct ServeSlot {
    permits: Arc<tokio::sync::Semaphore>,
    waiting: Arc<Mutex<BTreeSet<PeerId>>>,
}

impl Default for ServeSlot {
    fn default() -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(SERVE_TASKS)),
            waiting: Arc::default(),
        }
    }
}

impl ServeSlot {
    /// Whether `peer` may wait (no request of its own waits, and there is
    /// room); it then does.
    fn enter(&self, peer: PeerId) -> bool {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.len() < SERVE_WAITING && w.insert(peer)
    }

    /// Waits for the slot for `peer` (which [`Self::enter`]ed), and leaves
    /// the waiting set when it is its turn.
    async fn take(&self, peer: &PeerId) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.permits.clone().acquire_owned().await.ok();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(peer);
        permit
    }
}

/// Synced heights stored in one durable transaction, at most.
pub(super) const SYNC_RUN: usize = 512;

/// Synced blocks applied per turn of the event loop, at most. Each turn
/// ends with one durable write of what it applied (3–5 ms here, against
/// 15–40 ms of applying), and between turns the loop reads the next
/// response and starts its certificate job. 48, 64 and 96 were measured
/// in a quiet catch-up: 48 came out ahead, within the runs' noise.
pub(super) const SYNC_CHUNK: usize = 48;

/// Actions that may run while synced heights wait for their durable write:
/// they neither sign nor tell anyone anything about our state (a block
/// request only asks; a WAL record is made durable by the next fsync anyway).
fn quiet(a: &Action<PeerId>) -> bool {
    matches!(
        a,
        Action::Commit(_)
            | Action::Wal(_)
            | Action::ScheduleTimeout { .. }
            | Action::RequestBlocks { .. }
            | Action::Penalize { .. }
            | Action::Rejected(_)
            | Action::InvalidBlock { .. }
    )
}

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
        if self.drop_block_requests > 0 {
            self.drop_block_requests -= 1;
            warn!(%peer, from = req.from_height, "block request left unanswered (testing.drop_block_requests)");
            return Ok(());
        }
        if !self.serving.enter(peer) {
            self.metrics.budget_drop(BudgetKind::Serve);
            debug!(%peer, from = req.from_height, "block request while one waits (or too many wait); dropped");
            return Ok(());
        }
        let (storage, transport, req) = (self.storage.clone(), self.transport.clone(), *req);
        let serving = self.serving.clone();
        tokio::spawn(async move {
            let Some(permit) = serving.take(&peer).await else {
                return;
            };
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

    /// Hands a response to the engine, then applies what it queued. The
    /// heights decided from it are stored as runs of up to [`SYNC_RUN`] in
    /// one durable transaction each (`flush_synced`), not one fsync per
    /// height; nothing is acknowledged (status, gRPC) before its run is
    /// durable, and the run is flushed before any action that signs or
    /// tells peers something (see [`quiet`]), so no signature can leave
    /// while a height it builds on could still be lost.
    pub(super) fn on_blocks(
        &mut self,
        peer: PeerId,
        resp: pb::BlockResponse,
    ) -> Result<(), RunError> {
        if resp.blocks.is_empty() && resp.lowest_height > self.engine.tip_height() + 1 {
            // Not a fault (the engine asks someone else); only an operator
            // whose every peer prunes this far needs to know.
            info!(%peer, lowest = resp.lowest_height, need = self.engine.tip_height() + 1,
                "peer pruned the heights we need; syncing from peers that keep them");
        }
        let actions = self
            .engine
            .on_block_response(peer, resp, self.clock.now_ms());
        self.execute(actions)?;
        self.apply_synced_chunk()
    }

    /// Applies up to [`SYNC_CHUNK`] queued blocks and stores them durably;
    /// starts the next certificate job before each block if none is
    /// running. The loop calls it again while the engine has a block ready.
    pub(super) fn apply_synced_chunk(&mut self) -> Result<(), RunError> {
        let applied = (|| {
            for _ in 0..SYNC_CHUNK {
                // Not only at the chunk's start: a run held back at a
                // validator-set change (`sync_batch.rs`) may be taken as
                // soon as the tip comes near it. Taken only then, the
                // engine verified it on the loop, up to 256 certificates
                // in one go (a 90 ms stall seen in `agora-testnet bench`).
                self.start_certificate_job();
                let Some(actions) = self
                    .engine
                    .next_synced_block(self.clock.now_ms(), &self.mempool)?
                else {
                    break;
                };
                self.execute_synced(actions)?;
            }
            Ok::<(), RunError>(())
        })();
        // What was applied before an error is still stored (it was valid).
        let flushed = self.flush_synced();
        applied.and(flushed)
    }

    /// Hands the next unverified queued run to a blocking thread.
    fn start_certificate_job(&mut self) {
        if self.certificate_job.is_some() {
            return;
        }
        let Some(job) = self.engine.take_certificate_job() else {
            return;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            // The loop may have stopped; the verdict is then moot.
            let _ = tx.send(job.run());
        });
        self.certificate_job = Some(rx);
    }

    /// A certificate job's verdict (or its loss: the thread panicked or
    /// the runtime is going down); then the blocks it held go on.
    pub(super) fn on_certificate_verdict(
        &mut self,
        verdict: Result<CertificateVerdict, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), RunError> {
        self.certificate_job = None;
        match verdict {
            Ok(v) => self.engine.on_certificate_verdict(v),
            Err(_) => {
                warn!("a certificate check was lost; its blocks are checked on the loop");
                self.engine.abandon_certificate_job();
            }
        }
        self.apply_synced_chunk()
    }

    /// [`Runner::execute`] for the actions of one synced block: its commit
    /// joins the pending run instead of being stored at once.
    fn execute_synced(&mut self, actions: Vec<Action<PeerId>>) -> Result<(), RunError> {
        for a in actions {
            if !quiet(&a) {
                self.flush_synced()?;
            }
            if let Executed::Commit(record) = self.exec.execute(a)? {
                self.synced.push(*record);
                if self.synced.len() >= SYNC_RUN {
                    self.flush_synced()?;
                }
            }
        }
        self.after_actions();
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
