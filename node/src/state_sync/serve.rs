//! The serving side: snapshots of this node's state for joining peers.
//!
//! Every `state_sync.snapshot_interval` heights (and once at start), the
//! runner opens a read transaction on the store at the tip it just made
//! durable ([`crate::storage::TipState`]) and hands it to a blocking task,
//! which reads the leaves and splits them into chunks
//! ([`agora_validator::ledger::merkle::chunks::split`]); the consensus loop
//! only pays for opening the transaction. At most one snapshot is being
//! taken at a time (a due one is skipped while another is in progress).
//!
//! Bound: the last [`KEEP`] snapshots are held in memory, each about the
//! size of the state's leaves (100 k accounts: ~10 MB), so a joiner that
//! started on the older one can finish while a newer one is taken. What a
//! peer asks is answered from them under the peer's serving budget, as
//! block requests are (`transport::budget`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agora_proto::v1 as pb;
use agora_validator::Hash;
use agora_validator::ledger::merkle::chunks;
use tracing::{info, warn};

use crate::storage::TipState;

/// Snapshots held for peers at once.
pub const KEEP: usize = 2;

/// One snapshot, split for serving.
#[derive(Debug)]
struct Served {
    height: u64,
    seed: Hash,
    manifest: pb::SnapshotManifest,
    chunks: Vec<Vec<pb::StateLeaf>>,
}

/// The snapshots this node serves (cheap to clone; clones share them).
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    held: Arc<Mutex<VecDeque<Arc<Served>>>>,
    taking: Arc<AtomicBool>,
}

impl Snapshots {
    /// Takes a snapshot of the state `tip` sees, off the calling thread;
    /// nothing if one is being taken already.
    pub fn take(&self, tip: TipState) {
        if self.taking.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let t0 = std::time::Instant::now();
            match tip.read() {
                Ok(Some(t)) => {
                    let split = chunks::split(t.leaves);
                    info!(
                        height = t.height,
                        chunks = split.chunks.len(),
                        ms = t0.elapsed().as_millis() as u64,
                        "snapshot taken for state sync"
                    );
                    this.hold(Served {
                        height: t.height,
                        seed: t.seed,
                        manifest: split.manifest,
                        chunks: split.chunks,
                    });
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "snapshot not taken: storage error"),
            }
            this.taking.store(false, Ordering::Release);
        });
    }

    fn hold(&self, s: Served) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.back().is_some_and(|b| b.height >= s.height) {
            return;
        }
        held.push_back(Arc::new(s));
        while held.len() > KEEP {
            held.pop_front();
        }
    }

    fn find(&self, height: Option<u64>) -> Option<Arc<Served>> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match height {
            None => held.back().cloned(),
            Some(h) => held.iter().find(|s| s.height == h).cloned(),
        }
    }

    /// The newest snapshot's offer (height 0 when none is held).
    pub fn offer(&self) -> pb::SnapshotOffer {
        self.find(None)
            .map(|s| pb::SnapshotOffer {
                height: s.height,
                seed: s.seed.to_vec(),
                manifest: Some(s.manifest.clone()),
            })
            .unwrap_or_default()
    }

    /// Chunk `index` of the snapshot of `height`, or `unavailable`.
    pub fn chunk(&self, height: u64, index: u32) -> pb::ChunkResponse {
        let leaves = self
            .find(Some(height))
            .and_then(|s| s.chunks.get(index as usize).cloned());
        pb::ChunkResponse {
            height,
            index,
            unavailable: leaves.is_none(),
            leaves: leaves.unwrap_or_default(),
        }
    }

    /// The index of the first chunk holding leaves in the snapshot of
    /// `height` (for `testing.withhold_snapshot_chunk`).
    pub fn first_filled(&self, height: u64) -> Option<u32> {
        let s = self.find(Some(height))?;
        let i = s.chunks.iter().position(|c| !c.is_empty())?;
        u32::try_from(i).ok()
    }

    /// Heights of the snapshots held, oldest first.
    pub fn heights(&self) -> Vec<u64> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.iter().map(|s| s.height).collect()
    }
}
