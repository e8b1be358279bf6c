//! The joining side: an empty store filled from a peer's snapshot.
//!
//! 1. *Offers.* Every connected peer is asked for its newest snapshot
//!    (again every [`ASK_EVERY`] while none fits); of those whose next
//!    header is at or above the trusted height, the one most peers offer
//!    is taken, then the highest (`agora_validator::state_sync::offers`).
//! 2. *Anchor.* Header S + 1 is verified from the checkpoint by the light
//!    client over gRPC, with blocks S and S + 1 and the offered seed
//!    ([`super::anchor`]). A seed that does not verify is the offering
//!    peer's fault: charged, and its offer dropped.
//! 3. *Manifest.* Checked against the header's app hash; a peer whose
//!    manifest does not hash to it is charged and dropped.
//! 4. *Chunks.* Fetched from every peer that offered the same manifest
//!    (`agora_validator::state_sync::fetcher`), each checked on arrival; a
//!    forged one is charged to its peer. With no source left, back to 1.
//! 5. *Install.* The ledger is rebuilt from the leaves (strictly decoded),
//!    its root compared with the app hash once more, and the store gets
//!    block S, its certificate, the seed and the state in one durable
//!    transaction ([`crate::storage::Storage::install_snapshot`]). The node
//!    then starts as one that pruned every block below S, and block sync
//!    takes it from S + 1 to the tip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::Hash;
use agora_validator::ledger::Ledger;
use agora_validator::ledger::merkle::chunks::verify_manifest;
use agora_validator::state_sync::fetcher::{ChunkFetcher, Verdict};
use agora_validator::state_sync::{Anchor, offers};
use agora_validator::types::ChainId;
use prost::Message;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::anchor::{self, AnchorFetchError};
use crate::config::StateSyncConfig;
use crate::storage::{SnapshotBase, Storage};
use crate::transport::{ChargeReason, PeerId, Transport, TransportEvent};

/// How often offers are asked for again while none fits.
const ASK_EVERY: Duration = Duration::from_secs(2);
/// How long to wait for more offers after the first usable one.
const GATHER: Duration = Duration::from_millis(500);
/// How often the download is driven (requests, timeouts) between answers.
const TICK: Duration = Duration::from_millis(100);
/// How long the offers of a peer whose snapshot header could not be
/// verified, or that left a chunk unanswered twice, are ignored.
const SET_ASIDE: Duration = Duration::from_secs(30);

/// Why state sync stopped (every other failure is retried).
#[derive(Debug, thiserror::Error)]
pub enum StateSyncError {
    /// The configuration cannot work (a checkpoint that does not hold).
    #[error("state sync: {0}")]
    Config(String),
    /// The transport closed.
    #[error("state sync: the transport stopped")]
    TransportClosed,
    /// The verified leaves do not make a ledger with the certified root.
    #[error("state sync: the verified snapshot does not restore: {0}")]
    Restore(String),
    /// The store refused the snapshot.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// What one pass over the steps came to.
enum Pass {
    Installed(Box<Ledger>),
    Retry,
}

/// The state-sync client over a running transport (see the module docs).
pub struct Joiner<'a> {
    cfg: &'a StateSyncConfig,
    chain: &'a ChainId,
    storage: &'a Storage,
    transport: &'a Transport,
    events: &'a mut mpsc::Receiver<TransportEvent>,
    checkpoint: (u64, Hash),
    offers: HashMap<PeerId, pb::SnapshotOffer>,
    /// Peers whose offers are ignored until the instant given.
    set_aside: HashMap<PeerId, Instant>,
    /// `cfg.rpc_servers`, those that last failed moved to the back
    /// ([`anchor::verify`]): a silent server costs its timeout once, not at
    /// every offer (peers drop a snapshot a few intervals later, so an offer
    /// that waited on it every time could go stale every time).
    servers: Vec<String>,
}

impl<'a> Joiner<'a> {
    /// A joiner for an empty store.
    pub fn new(
        cfg: &'a StateSyncConfig,
        chain: &'a ChainId,
        storage: &'a Storage,
        transport: &'a Transport,
        events: &'a mut mpsc::Receiver<TransportEvent>,
    ) -> Result<Self, StateSyncError> {
        let checkpoint = cfg.checkpoint().map_err(StateSyncError::Config)?;
        Ok(Self {
            cfg,
            chain,
            storage,
            transport,
            events,
            checkpoint,
            offers: HashMap::new(),
            set_aside: HashMap::new(),
            servers: cfg.rpc_servers.clone(),
        })
    }

    /// Runs until a verified snapshot is installed; the ledger rebuilt
    /// from it.
    pub async fn run(mut self) -> Result<Ledger, StateSyncError> {
        let t0 = Instant::now();
        info!(
            trust_height = self.checkpoint.0,
            trust_hash = %hex::encode(self.checkpoint.1),
            "state sync: looking for a snapshot"
        );
        loop {
            if let Pass::Installed(ledger) = self.pass().await? {
                info!(
                    height = ledger.height(),
                    seconds = t0.elapsed().as_secs_f64(),
                    "state sync: snapshot installed; following blocks from here"
                );
                return Ok(*ledger);
            }
        }
    }

    async fn pass(&mut self) -> Result<Pass, StateSyncError> {
        let Some((peer, offer)) = self.best_offer().await? else {
            return Ok(Pass::Retry);
        };
        let Some(anchor) = self.anchor_of(peer, &offer).await? else {
            return Ok(Pass::Retry);
        };
        let manifest = offer.manifest.clone().unwrap_or_default();
        if let Err(e) = verify_manifest(&manifest, &anchor.app_hash) {
            return Ok(self.refuse(peer, &e.to_string()));
        }
        let sources = self.sources(offer.height, &manifest, &anchor.app_hash);
        let fetcher =
            ChunkFetcher::new(anchor.height, manifest, sources, self.cfg.chunk_timeout_ms);
        let Some(leaves) = self.download(fetcher).await? else {
            self.offers.clear();
            return Ok(Pass::Retry);
        };
        let ledger = self.install(anchor, leaves).await?;
        Ok(Pass::Installed(Box::new(ledger)))
    }

    /// The verified anchor of `peer`'s offer; None (the offer dropped or
    /// set aside) when it cannot be had now.
    async fn anchor_of(
        &mut self,
        peer: PeerId,
        offer: &pb::SnapshotOffer,
    ) -> Result<Option<Anchor>, StateSyncError> {
        let Ok(seed) = Hash::try_from(offer.seed.as_slice()) else {
            self.refuse(peer, "a seed that is not 32 bytes");
            return Ok(None);
        };
        let t0 = Instant::now();
        let servers = &mut self.servers;
        match anchor::verify(servers, self.chain, self.checkpoint, offer.height, &seed).await {
            Ok(a) => {
                info!(
                    height = a.height,
                    ms = t0.elapsed().as_millis() as u64,
                    "state sync: snapshot header verified from the checkpoint"
                );
                Ok(Some(a))
            }
            Err(e @ AnchorFetchError::Checkpoint(_)) => Err(StateSyncError::Config(e.to_string())),
            Err(AnchorFetchError::Seed(e)) => {
                self.refuse(peer, &e.to_string());
                Ok(None)
            }
            Err(e) => {
                // Not provably the peer's fault (the servers may lag behind
                // it), but an offer no server can back is set aside for a
                // while, so a peer announcing a height that does not exist
                // cannot hold the sync on its offer.
                warn!(%peer, height = offer.height, error = %e,
                    "state sync: cannot verify the snapshot's header; trying other offers");
                self.offers.remove(&peer);
                self.set_aside.insert(peer, Instant::now() + SET_ASIDE);
                if self.offers.is_empty() {
                    tokio::time::sleep(ASK_EVERY).await;
                }
                Ok(None)
            }
        }
    }

    /// The peers offering `manifest` (verified) at `height`: the sources of
    /// its chunks. One offering another manifest for this height is checked
    /// the same way and charged if it does not verify.
    fn sources(
        &mut self,
        height: u64,
        manifest: &pb::SnapshotManifest,
        app_hash: &Hash,
    ) -> Vec<PeerId> {
        let mut sources = Vec::new();
        for (p, o) in self.offers.clone() {
            match o.manifest {
                _ if o.height != height => {}
                Some(m) if m == *manifest => sources.push(p),
                Some(m) => {
                    if let Err(e) = verify_manifest(&m, app_hash) {
                        self.refuse(p, &e.to_string());
                    }
                }
                None => {}
            }
        }
        sources
    }

    /// Charges `peer` for a snapshot that does not verify and forgets its offer.
    fn refuse(&mut self, peer: PeerId, why: &str) -> Pass {
        warn!(%peer, reason = why, "state sync: peer served a snapshot that does not verify");
        self.transport.charge(peer, ChargeReason::BadSnapshot, why);
        self.offers.remove(&peer);
        Pass::Retry
    }

    /// Asks every connected peer for offers and returns the best one at or
    /// above the checkpoint, after a short wait for others.
    async fn best_offer(&mut self) -> Result<Option<(PeerId, pb::SnapshotOffer)>, StateSyncError> {
        let min = self.checkpoint.0.saturating_sub(1).max(1);
        self.offers.retain(|_, o| o.height >= min);
        self.ask_all();
        let mut next_ask = Instant::now() + ASK_EVERY;
        let mut decide_at: Option<Instant> = None;
        let mut warned = false;
        loop {
            let usable = self.offers.values().any(|o| o.height >= min);
            if usable && decide_at.is_none() {
                decide_at = Some(Instant::now() + GATHER);
            }
            if decide_at.is_some_and(|t| Instant::now() >= t) {
                return Ok(offers::best(&self.offers, min));
            }
            if Instant::now() >= next_ask {
                if !warned && !self.offers.is_empty() {
                    warn!(
                        trust_height = self.checkpoint.0,
                        offered = ?self.offers.values().map(|o| o.height).collect::<Vec<_>>(),
                        "state sync: no peer holds a snapshot at or above the trusted height yet; waiting"
                    );
                    warned = true;
                }
                self.ask_all();
                next_ask = Instant::now() + ASK_EVERY;
            }
            let wake = decide_at.unwrap_or(next_ask).min(next_ask);
            match tokio::time::timeout_at(wake.into(), self.events.recv()).await {
                Err(_) => {}
                Ok(None) => return Err(StateSyncError::TransportClosed),
                Ok(Some(ev)) => self.on_event(ev, None),
            }
        }
    }

    fn ask_all(&self) {
        let ask = PeerMessage {
            kind: Some(Kind::SnapshotRequest(pb::SnapshotRequest {})),
        };
        for p in self.transport.peers() {
            let _ = self.transport.send(p.id, &ask);
        }
    }

    /// Handles an event outside the download: offers are kept, new peers
    /// asked, a departed peer's offer forgotten; everything else (votes,
    /// proposals, transactions of a chain not yet followed) is dropped.
    fn on_event(&mut self, ev: TransportEvent, fetch: Option<&mut ChunkFetcher<PeerId>>) {
        match ev {
            TransportEvent::Connected { peer, .. } => {
                if let Some(f) = fetch {
                    f.reconnected(peer);
                }
                let ask = PeerMessage {
                    kind: Some(Kind::SnapshotRequest(pb::SnapshotRequest {})),
                };
                let _ = self.transport.send(peer, &ask);
            }
            TransportEvent::Disconnected { peer } => {
                self.offers.remove(&peer);
                if let Some(f) = fetch {
                    f.drop_source(peer);
                }
            }
            TransportEvent::Message { peer, message, .. } => match message.kind {
                Some(Kind::SnapshotOffer(o)) if o.height > 0 => {
                    if let Err(why) = offers::check(&o) {
                        let _ = self.refuse(peer, &why.to_string());
                        return;
                    }
                    let now = Instant::now();
                    self.set_aside.retain(|_, until| *until > now);
                    if !self.set_aside.contains_key(&peer) {
                        self.offers.insert(peer, o);
                    }
                }
                Some(Kind::ChunkResponse(r)) => {
                    if let Some(f) = fetch {
                        self.on_chunk(f, peer, r);
                    }
                }
                _ => {}
            },
        }
    }

    fn on_chunk(&mut self, f: &mut ChunkFetcher<PeerId>, peer: PeerId, r: pb::ChunkResponse) {
        let index = r.index;
        match f.on_response(peer, r) {
            Verdict::Accepted | Verdict::Ignored => {}
            Verdict::Gone => {
                info!(%peer, "state sync: peer no longer holds the snapshot");
                self.offers.remove(&peer);
            }
            Verdict::Bad(e) => {
                warn!(%peer, index, error = %e, "state sync: forged chunk refused");
                self.transport
                    .charge(peer, ChargeReason::BadSnapshot, &e.to_string());
                self.offers.remove(&peer);
            }
        }
    }

    /// Drives the download to the end; None when every source is gone.
    async fn download(
        &mut self,
        mut f: ChunkFetcher<PeerId>,
    ) -> Result<Option<Vec<(Vec<u8>, Vec<u8>)>>, StateSyncError> {
        let t0 = Instant::now();
        let total = f.remaining();
        let mut report = Instant::now() + Duration::from_secs(5);
        while !f.is_done() {
            if !f.has_sources() {
                warn!(
                    height = f.height(),
                    "state sync: every source of the snapshot left; looking again"
                );
                return Ok(None);
            }
            // The fetcher's clock: milliseconds since the download began.
            for (peer, req) in f.requests(t0.elapsed().as_millis() as u64) {
                let msg = PeerMessage {
                    kind: Some(Kind::ChunkRequest(req)),
                };
                if self.transport.send(peer, &msg).is_err() {
                    f.drop_source(peer);
                }
            }
            for peer in f.take_silenced() {
                warn!(%peer, height = f.height(),
                    "state sync: peer left a chunk unanswered twice; setting its offers aside");
                self.offers.remove(&peer);
                self.set_aside.insert(peer, Instant::now() + SET_ASIDE);
            }
            if Instant::now() >= report {
                info!(
                    height = f.height(),
                    done = total - f.remaining(),
                    total,
                    "state sync: fetching chunks"
                );
                report = Instant::now() + Duration::from_secs(5);
            }
            match tokio::time::timeout(TICK, self.events.recv()).await {
                Err(_) => {}
                Ok(None) => return Err(StateSyncError::TransportClosed),
                Ok(Some(ev)) => self.on_event(ev, Some(&mut f)),
            }
        }
        info!(
            height = f.height(),
            chunks = total,
            ms = t0.elapsed().as_millis() as u64,
            "state sync: every chunk verified"
        );
        Ok(Some(f.into_leaves().collect()))
    }

    /// Rebuilds the ledger off the loop, checks it once more against the
    /// certified root and stores the base.
    async fn install(
        &self,
        anchor: Anchor,
        leaves: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Ledger, StateSyncError> {
        let t0 = Instant::now();
        let (ledger, leaves) = tokio::task::spawn_blocking(move || {
            Ledger::from_leaves(leaves.iter().map(|(k, v)| (k, v))).map(|l| (l, leaves))
        })
        .await
        .map_err(|e| StateSyncError::Restore(e.to_string()))?
        .map_err(|e| StateSyncError::Restore(e.to_string()))?;
        if ledger.app_hash() != anchor.app_hash || ledger.height() != anchor.height {
            return Err(StateSyncError::Restore(format!(
                "rebuilt state is height {} root {}, the header says height {} root {}",
                ledger.height(),
                hex::encode(ledger.app_hash()),
                anchor.height,
                hex::encode(anchor.app_hash)
            )));
        }
        let sets: Vec<(u64, Vec<u8>)> = [anchor.height + 1, anchor.height + 2]
            .into_iter()
            .filter_map(|h| {
                ledger
                    .validator_set(h)
                    .map(|s| (h, s.to_proto().encode_to_vec()))
            })
            .collect();
        let cert = anchor.certificate.to_proto();
        self.storage.install_snapshot(SnapshotBase {
            block: &anchor.block,
            certificate: &cert,
            seed: &anchor.seed,
            leaves: &leaves,
            validator_sets: &sets,
        })?;
        info!(
            height = anchor.height,
            leaves = leaves.len(),
            ms = t0.elapsed().as_millis() as u64,
            "state sync: state rebuilt and stored"
        );
        Ok(ledger)
    }
}
