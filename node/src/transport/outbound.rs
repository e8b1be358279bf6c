//! The outbound path of a connection: the writer draining a peer's queue
//! (bounded in frames and bytes by [`PeerEntry::enqueue`]) onto QUIC.
//!
//! [`PeerEntry::enqueue`]: super::peer_table::PeerEntry::enqueue

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc};

/// Writes queued frames, each on a new unidirectional stream. Streams are
/// opened in queue order and written concurrently (bounded), so a large frame
/// does not delay small ones behind it. A frame's bytes leave `queued` once
/// written to its stream.
pub(super) async fn write_loop(
    conn: quinn::Connection,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
) {
    let permits = Arc::new(Semaphore::new(64));
    while let Some(frame) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let mut send = tokio::select! {
            s = conn.open_uni() => match s { Ok(s) => s, Err(_) => break },
            _ = conn.closed() => break,
        };
        let queued = queued.clone();
        tokio::spawn(async move {
            if send.write_all(&frame).await.is_ok() {
                let _ = send.finish();
            }
            // Written (QUIC holds it now, within its flow control window).
            queued.fetch_sub(frame.len(), Ordering::AcqRel);
            drop(permit);
        });
    }
}
