//! The inbound path of a connection: a task per unidirectional stream reads
//! one frame within the connection's share of [`MAX_INBOUND_BYTES`], decodes
//! it within [`MAX_EVENT_BYTES`], and delivers the message to the runner if
//! the peer's budget allows and it is not a gossip copy already seen.
//!
//! [`MAX_EVENT_BYTES`]: super::MAX_EVENT_BYTES

use std::sync::Arc;
use std::time::Instant;

use agora_proto::v1::{PeerMessage, peer_message::Kind};
use agora_validator::crypto::sha3_256;
use tokio::sync::Semaphore;
use tracing::debug;

use super::hello::PeerIdentity;
use super::score::ChargeReason;
use super::wire::{self, WireError};
use super::{
    EventBytes, MAX_INBOUND_BYTES, PeerId, Transport, TransportEvent, accounting, close_code,
    decoded, is_gossip, lock,
};
use crate::metrics::BudgetKind;

impl Transport {
    /// Reads the connection's streams, each in its own task (bounded by the
    /// stream timeout), until the connection closes; then takes the peer out
    /// of the table.
    pub(super) async fn read_loop(
        self,
        conn: quinn::Connection,
        peer: PeerId,
        identity: PeerIdentity,
    ) {
        let inbound = Arc::new(Semaphore::new(MAX_INBOUND_BYTES));
        loop {
            let mut recv = match conn.accept_uni().await {
                Ok(r) => r,
                Err(_) => break,
            };
            let t = self.clone();
            let conn = conn.clone();
            let identity = identity.clone();
            let inbound = inbound.clone();
            tokio::spawn(async move {
                let res = tokio::time::timeout(t.inner.cfg.stream_timeout, async {
                    let (body, reading) =
                        wire::read_body_within(&mut recv, wire::MAX_FRAME, &inbound).await?;
                    t.decode(body, reading).await
                })
                .await;
                match res {
                    Ok(Ok((msg, held))) => t.deliver(peer, identity, msg, held).await,
                    Ok(Err(e)) if e.is_misbehaviour() => {
                        t.charge_at(
                            peer,
                            Some(conn.remote_address()),
                            ChargeReason::Frame,
                            &e.to_string(),
                        );
                        conn.close(close_code::MISBEHAVED.into(), b"bad frame");
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "stream failed"),
                    Err(_) => debug!(%peer, "stream timed out"),
                }
            });
        }
        self.unregister(&conn, peer).await;
    }

    /// Decodes a frame's body once its decoded estimate (refused if out of
    /// proportion, see [`decoded`]) is taken from [`MAX_EVENT_BYTES`]:
    /// meanwhile only the body's bytes are held, under `reading`, the
    /// connection's share of [`MAX_INBOUND_BYTES`], let go once decoded.
    ///
    /// [`MAX_EVENT_BYTES`]: super::MAX_EVENT_BYTES
    async fn decode(
        &self,
        body: Vec<u8>,
        reading: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(PeerMessage, tokio::sync::OwnedSemaphorePermit), WireError> {
        let estimate = decoded::checked_estimate(&body)?;
        let held = self
            .inner
            .event_bytes
            .clone()
            .acquire_many_owned(u32::try_from(estimate).unwrap_or(u32::MAX))
            .await
            .map_err(|e| WireError::Stream(e.to_string()))?;
        let msg = wire::decode_body(&body)?;
        drop((body, reading));
        Ok((msg, held))
    }

    /// Hands a message to the runner if the peer's budget allows and it is
    /// not a gossip copy already seen. `held` is its share of
    /// [`MAX_EVENT_BYTES`], travelling with the event.
    ///
    /// [`MAX_EVENT_BYTES`]: super::MAX_EVENT_BYTES
    async fn deliver(
        &self,
        peer: PeerId,
        identity: PeerIdentity,
        message: PeerMessage,
        held: tokio::sync::OwnedSemaphorePermit,
    ) {
        let Some(kind) = message.kind.as_ref() else {
            return;
        };
        if matches!(kind, Kind::Hello(_)) {
            return;
        }
        // Within the peer's budget, or dropped before anything verifies it.
        // Checked before the seen-cache: a copy dropped here must not make
        // another peer's copy of the same message look like a duplicate.
        let cost = accounting::check_cost(kind);
        if cost > 0 {
            let fits = lock(&self.inner.peers)
                .get_mut(&peer)
                .is_some_and(|e| e.budget.checks.try_take(cost, Instant::now()));
            if !fits {
                self.inner.cfg.metrics.budget_drop(BudgetKind::Checks);
                return;
            }
        }
        if is_gossip(kind) {
            use prost::Message;
            let h = sha3_256(&message.encode_to_vec());
            if !lock(&self.inner.seen).insert(h) {
                return;
            }
        }
        let _ = self
            .inner
            .events
            .send(TransportEvent::Message {
                peer,
                identity,
                message,
                held: EventBytes(Arc::new(held)),
            })
            .await;
    }
}
