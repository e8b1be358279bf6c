//! The consensus driver's main loop: feeds the core with inputs from the
//! transport, timers and the WAL, answers its requests with the ledger, and
//! stores decided blocks.
//!
//! Order of effects for safety: every input is appended to the WAL before the
//! core sees it (not fsynced on its own: the signing-state fsync that precedes
//! anything we send makes it durable); outputs run through [`Executor`], which
//! persists the signing state durably before any later broadcast; a decided
//! block is applied to the ledger and stored with its certificate, state and
//! seed in one durable transaction before the next height starts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agora_proto::v1::{self as pb, PeerMessage, peer_message::Kind};
use agora_validator::block::{header_hash, list_hash, tx_hash};
use agora_validator::consensus::{
    Consensus, ConsensusConfig, Decision, HeightParams, Input, TimeoutConfig,
};
use agora_validator::crypto::{ZERO_HASH, vrf};
use agora_validator::ledger::{BlockInfo, DecodedTx, Ledger, TxOutcome as LedgerOutcome};
use agora_validator::{ChainId, CommitCertificate, Hash, Height};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::api::{ApiRequest, Shared};
use crate::driver::{DriverError, Executor, HostRequest, consensus_input, restore_signing_state};
use crate::mempool::{Admission, CheckMode, Mempool};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::rpc::ApiError;
use crate::storage::{CommittedBlock, Storage, TxOutcome, TxRecord};
use crate::sync::{PeerHeights, serve_request};
use crate::transport::{Transport, TransportEvent};
use crate::tx_verifier::{Checked, Origin, TxVerifier};
use crate::wal;

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Executing outputs failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The stored or genesis ledger state is unusable.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The transaction verifier thread could not be started.
    #[error("starting the transaction verifier: {0}")]
    Verifier(std::io::Error),
    /// A decided block could not be applied.
    #[error("applying decided block {height}: {reason}")]
    Apply {
        /// Height.
        height: Height,
        /// Why.
        reason: String,
    },
}

/// Pending evidence kept for the next proposal at most.
const MAX_PENDING_EVIDENCE: usize = 64;
/// How often the current height's messages are re-sent.
const REGOSSIP_INTERVAL: Duration = Duration::from_millis(1000);
/// Blocks asked for per sync request (a response is bounded by one block
/// frame too; the serving side caps it at `sync::MAX_BLOCKS_PER_RESPONSE`).
/// Applying a block costs a few milliseconds (certificate check, execution,
/// one fsync), so a batch is about a second of work per round trip.
const SYNC_BATCH: u32 = 256;
/// Transactions waiting for their signature check at most.
const VERIFY_QUEUE: usize = 4096;

struct Tip {
    seed: Hash,
    parent_hash: Hash,
    last_commit: Option<CommitCertificate>,
}

/// The running driver.
pub struct Runner {
    chain: ChainId,
    storage: Arc<Storage>,
    transport: Transport,
    metrics: Arc<Metrics>,
    ledger: Ledger,
    core: Consensus,
    /// Pending transactions, kept decoded and verified (decode once).
    mempool: Mempool<DecodedTx>,
    verifier: TxVerifier,
    checked: Option<mpsc::Receiver<Checked>>,
    exec: Executor<Arc<Storage>, Transport>,
    timers: mpsc::Receiver<Input>,
    peers: PeerHeights,
    evidence: Vec<pb::Evidence>,
    tip: Tip,
    height: Height,
    commit_delay: Duration,
    max_block_bytes: usize,
    max_block_txs: usize,
    next_start: Option<tokio::time::Instant>,
    last_sync_request: Option<Instant>,
    height_started: Instant,
    shared: Arc<Shared>,
    /// Admitted transactions waiting to be gossiped as one batch.
    tx_outbox: crate::tx_gossip::TxOutbox,
    /// Precommits of the last committed block that came after its quorum.
    late_precommits: crate::late_precommits::LatePrecommits,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Runner {
    /// Restores the chain tip, ledger and signing state from storage (or genesis).
    pub fn new(node: &Node, shared: Arc<Shared>) -> Result<Self, RunError> {
        let storage = node.storage.clone();
        let latest = storage.latest_height()?.unwrap_or(0);
        let ledger = match storage.latest_state()? {
            Some((_, bytes)) => {
                Ledger::decode(&bytes).map_err(|e| RunError::Ledger(e.to_string()))?
            }
            None => Ledger::from_genesis(&node.genesis.genesis)
                .map_err(|e| RunError::Ledger(e.to_string()))?,
        };
        let tip = if latest == 0 {
            Tip {
                seed: vrf::genesis_seed(&node.genesis.file_hash),
                parent_hash: ZERO_HASH,
                last_commit: None,
            }
        } else {
            let block = storage
                .block(latest)?
                .ok_or_else(|| RunError::Ledger(format!("block {latest} missing")))?;
            let header = block
                .header
                .as_ref()
                .ok_or_else(|| RunError::Ledger(format!("block {latest} has no header")))?;
            let cert = storage
                .certificate(latest)?
                .and_then(|c| CommitCertificate::from_proto(&c).ok());
            Tip {
                seed: storage
                    .seed(latest)?
                    .ok_or_else(|| RunError::Ledger(format!("seed {latest} missing")))?,
                parent_hash: header_hash(header),
                last_commit: cert,
            }
        };
        let c = &node.config.consensus;
        let config = ConsensusConfig {
            timeouts: TimeoutConfig {
                propose_base_ms: c.timeout_propose_ms,
                propose_increment_ms: c.timeout_propose_delta_ms,
                prevote_base_ms: c.timeout_prevote_ms,
                prevote_increment_ms: c.timeout_prevote_delta_ms,
                precommit_base_ms: c.timeout_precommit_ms,
                precommit_increment_ms: c.timeout_precommit_delta_ms,
            },
            ..Default::default()
        };
        let signing = restore_signing_state(&storage)?;
        let core = Consensus::new(config, node.chain.clone(), Some(node.key.clone()), signing);
        let (tx, timers) = mpsc::channel(1024);
        let mut exec = Executor::new(
            storage.clone(),
            node.transport.clone(),
            node.metrics.clone(),
            tx,
        );
        if node.config.testing.double_sign {
            tracing::warn!(
                "testing.double_sign is on: this validator will double-sign and be slashed"
            );
            exec = exec.with_double_sign(node.key.clone(), node.chain.clone());
        }
        let (verifier, checked) =
            TxVerifier::start(node.chain.clone(), VERIFY_QUEUE).map_err(RunError::Verifier)?;
        Ok(Self {
            chain: node.chain.clone(),
            storage,
            transport: node.transport.clone(),
            metrics: node.metrics.clone(),
            ledger,
            core,
            mempool: Mempool::new(node.config.mempool),
            verifier,
            checked: Some(checked),
            exec,
            timers,
            peers: PeerHeights::default(),
            evidence: Vec::new(),
            tip,
            height: latest + 1,
            commit_delay: Duration::from_millis(c.timeout_commit_ms),
            max_block_bytes: c.max_block_bytes,
            max_block_txs: c.max_block_txs,
            next_start: None,
            last_sync_request: None,
            height_started: Instant::now(),
            shared,
            tx_outbox: crate::tx_gossip::TxOutbox::default(),
            late_precommits: Default::default(),
        })
    }

    /// Starts the current height and replays its WAL records.
    pub fn begin(&mut self) -> Result<(), RunError> {
        self.start_height()?;
        let replay = wal::replay(&self.storage.wal_records()?, self.height)
            .map_err(|e| RunError::Ledger(e.to_string()))?;
        if !replay.is_empty() {
            info!(height = self.height, inputs = replay.len(), "replaying WAL");
        }
        for input in replay {
            // Not re-logged: these records are already in the WAL.
            self.feed_unlogged(input)?;
        }
        Ok(())
    }

    fn start_height(&mut self) -> Result<(), RunError> {
        let h = self.height;
        let set = self
            .ledger
            .validator_set(h)
            .cloned()
            .ok_or_else(|| RunError::Ledger(format!("no validator set for height {h}")))?;
        self.height_started = Instant::now();
        let params = HeightParams {
            height: h,
            validator_set: set,
            prev_seed: self.tip.seed,
            parent_hash: self.tip.parent_hash,
            last_commit: self.tip.last_commit.clone(),
        };
        self.feed_unlogged(Input::StartHeight(Box::new(params)))
    }

    fn feed(&mut self, input: Input) -> Result<(), RunError> {
        if let Some((h, rec)) = wal::encode_input(&input)
            && h == self.height
        {
            self.storage.wal_append(h, &rec, false)?;
        }
        self.feed_unlogged(input)
    }

    fn feed_unlogged(&mut self, input: Input) -> Result<(), RunError> {
        let mut queue = VecDeque::from([input]);
        let mut first = true;
        while let Some(input) = queue.pop_front() {
            if !first
                && let Some((h, rec)) = wal::encode_input(&input)
                && h == self.height
            {
                self.storage.wal_append(h, &rec, false)?;
            }
            first = false;
            let outputs = self.core.handle(input);
            for req in self.exec.execute(outputs)? {
                match req {
                    HostRequest::Propose { height, round } => {
                        self.widen_last_commit();
                        let block = self.template(height, round);
                        queue.push_back(Input::ProposalContent {
                            height,
                            round,
                            block,
                        });
                    }
                    HostRequest::Validate {
                        height,
                        round,
                        block,
                    } => {
                        let valid = self.validate(height, &block);
                        let block_hash = block.header.as_ref().map_or(ZERO_HASH, header_hash);
                        queue.push_back(Input::BlockValidity {
                            height,
                            round,
                            block_hash,
                            valid,
                        });
                    }
                    HostRequest::Commit(d) => self.commit(*d)?,
                }
            }
        }
        Metrics::set(&self.metrics.round, u64::from(self.core.round()));
        Ok(())
    }

    /// Adds the precommits that arrived after the quorum to the certificate
    /// of the parent before it goes into our proposal (see `late_precommits`).
    fn widen_last_commit(&mut self) {
        let Some(cert) = &self.tip.last_commit else {
            return;
        };
        let Some(set) = self.ledger.validator_set(cert.height) else {
            return;
        };
        if let Some(wider) = self.late_precommits.widen(cert, set, &self.chain) {
            debug!(
                height = cert.height,
                "certificate widened with late precommits"
            );
            self.tip.last_commit = Some(wider);
        }
    }

    fn template(&self, height: Height, round: u32) -> pb::Block {
        let header_budget = 2048;
        let txs = self.mempool.reap(
            self.max_block_bytes.saturating_sub(header_budget),
            self.max_block_txs,
        );
        let evidence: Vec<pb::Evidence> = self
            .evidence
            .iter()
            .filter(|e| self.ledger.check_evidence(e).is_ok())
            .cloned()
            .collect();
        let set_hash = |h| self.ledger.validator_set(h).map(|s| s.hash().to_vec());
        let header = pb::Header {
            chain_id: self.chain.as_str().to_string(),
            height,
            parent_hash: self.tip.parent_hash.to_vec(),
            txs_hash: list_hash(&txs).to_vec(),
            evidence_hash: list_hash(&evidence).to_vec(),
            last_commit_hash: self
                .tip
                .last_commit
                .as_ref()
                .map_or(ZERO_HASH, |c| c.hash())
                .to_vec(),
            app_hash: self.ledger.app_hash().to_vec(),
            validators_hash: set_hash(height).unwrap_or_default(),
            next_validators_hash: set_hash(height + 1).unwrap_or_default(),
            time_ms: now_ms(),
            // The lottery round this proposer won: auditors check the
            // proposer against (height, proposal_round).
            proposal_round: round,
            ..Default::default()
        };
        pb::Block {
            header: Some(header),
            txs,
            evidence,
            last_commit: self.tip.last_commit.as_ref().map(|c| c.to_proto()),
        }
    }

    /// The host's content check (the core checks proposer, VRF, height, chain, parent).
    fn validate(&self, height: Height, block: &pb::Block) -> bool {
        use prost::Message;
        let Some(h) = block.header.as_ref() else {
            return false;
        };
        let set_hash = |x| self.ledger.validator_set(x).map(|s| s.hash().to_vec());
        let last_commit_ok = match (&block.last_commit, height) {
            (None, 1) => h.last_commit_hash == ZERO_HASH.to_vec(),
            (Some(c), hh) if hh > 1 => CommitCertificate::from_proto(c).is_ok_and(|c| {
                let hash = c.hash();
                c.height == hh - 1
                    && c.block_hash == self.tip.parent_hash
                    && hash.to_vec() == h.last_commit_hash
                    // The certificate we committed h-1 with was verified
                    // already; a different one (other signers) is checked.
                    && (self.tip.last_commit.as_ref().is_some_and(|ours| ours.hash() == hash)
                        || self
                            .ledger
                            .validator_set(hh - 1)
                            .is_some_and(|s| c.verify(&self.chain, s).is_ok()))
            }),
            _ => false,
        };
        last_commit_ok
            && block.encoded_len() <= self.max_block_bytes
            && block.txs.len() <= self.max_block_txs
            && h.txs_hash == list_hash(&block.txs).to_vec()
            && h.evidence_hash == list_hash(&block.evidence).to_vec()
            && h.app_hash == self.ledger.app_hash().to_vec()
            && Some(h.validators_hash.clone()) == set_hash(height)
            && Some(h.next_validators_hash.clone()) == set_hash(height + 1)
            && block
                .evidence
                .iter()
                .all(|e| self.ledger.check_evidence(e).is_ok())
    }

    fn commit(&mut self, d: Decision) -> Result<(), RunError> {
        let h = d.height;
        let batch_seed: [u8; 32] = rand::random();
        // Transactions still in our mempool were decoded and their
        // signatures verified at admission: block execution takes their
        // decoded form; only the others are decoded and verified here.
        let mempool = &self.mempool;
        let result = self
            .ledger
            .apply_block_with_decoded(
                h,
                &BlockInfo::of_block(&d.block),
                &d.block.txs,
                &d.block.evidence,
                &batch_seed,
                &|hash| mempool.decoded(hash),
            )
            .map_err(|e| RunError::Apply {
                height: h,
                reason: e.to_string(),
            })?;
        let records: Vec<(Hash, TxRecord)> = result
            .receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let outcome = match r.outcome {
                    LedgerOutcome::Ok => TxOutcome::Committed,
                    LedgerOutcome::Failed(_) => TxOutcome::Failed,
                    LedgerOutcome::Rejected(_) => TxOutcome::Rejected,
                };
                (
                    r.hash,
                    TxRecord {
                        height: h,
                        index: i as u32,
                        outcome: outcome as i32,
                        reason: if r.is_ok() {
                            String::new()
                        } else {
                            r.log.clone()
                        },
                    },
                )
            })
            .collect();
        let cert = d.certificate.to_proto();
        // DURABILITY: block, certificate, state, seed and tx index in one
        // Immediate transaction (Storage::commit_block), which also drops the
        // height's WAL.
        self.storage.commit_block(CommittedBlock {
            block: &d.block,
            certificate: &cert,
            state: &self.ledger.encode(),
            seed: &d.seed,
            txs: &records,
        })?;
        let included: Vec<Hash> = d.block.txs.iter().map(tx_hash).collect();
        let dropped = self
            .mempool
            .update(&included, &verified_checker(&self.ledger));
        for (hash, reason) in dropped {
            self.shared.remember_rejection(hash, reason);
        }
        self.evidence.retain(|e| !d.block.evidence.contains(e));
        Metrics::set(&self.metrics.height, h);
        Metrics::set(&self.metrics.mempool_txs, self.mempool.len() as u64);
        Metrics::set(&self.metrics.mempool_bytes, self.mempool.bytes() as u64);
        Metrics::inc(&self.metrics.certificates_verified);
        self.metrics
            .observe_step(crate::metrics::Step::Commit, self.height_started.elapsed());
        info!(height = h, round = d.round, txs = d.block.txs.len(), hash = %hex::encode(&d.block_hash[..8]), "committed");
        if let Some(set) = self.ledger.validator_set(h) {
            self.late_precommits.reset(&d.certificate, set);
        }
        self.tip = Tip {
            seed: d.seed,
            parent_hash: d.block_hash,
            last_commit: Some(d.certificate),
        };
        self.height = h + 1;
        self.transport.set_height(h);
        self.transport.broadcast(&PeerMessage {
            kind: Some(Kind::Status(pb::StatusUpdate { latest_height: h })),
        });
        self.next_start = Some(tokio::time::Instant::now() + self.commit_delay);
        self.publish(h, d.block_hash)?;
        Ok(())
    }

    /// Publishes the post-commit snapshot to the API and records a
    /// validator-set change (the set for h+2, computed by this block).
    fn publish(&mut self, h: Height, block_hash: Hash) -> Result<(), RunError> {
        if let (Some(next), prev) = (
            self.ledger.validator_set(h + 2),
            self.ledger.validator_set(h + 1),
        ) && prev.map(|p| p.hash()) != Some(next.hash())
        {
            use prost::Message;
            self.storage
                .put_validator_set(h + 2, &next.to_proto().encode_to_vec())?;
            if let Ok(mut c) = self.shared.set_changes.write() {
                c.insert(h + 2, next.clone());
            }
        }
        if let Ok(mut l) = self.shared.ledger.write() {
            *l = self.ledger.clone();
        }
        if let Ok(mut l) = self.shared.latest.write() {
            *l = (h, block_hash);
        }
        self.publish_pending();
        let _ = self.shared.commits.send(h);
        Ok(())
    }

    fn regossip(&mut self) {
        // One height behind is normal gossip lag for a moment. Still one
        // behind a whole interval later means we missed that height's
        // messages, and the others no longer send them (they moved on, and
        // may need our vote for their height): fetch the block instead.
        if self.height_started.elapsed() >= REGOSSIP_INTERVAL {
            self.request_blocks_if_behind(0);
        }
        let (proposals, votes) = self.core.gossip_messages();
        for p in proposals {
            self.transport.broadcast(&PeerMessage {
                kind: Some(Kind::Proposal(p)),
            });
        }
        for v in votes {
            self.transport.broadcast(&PeerMessage {
                kind: Some(Kind::Vote(v)),
            });
        }
    }

    fn publish_pending(&self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            *p = self.mempool.hashes().collect();
        }
    }

    /// Sends a transaction to the signature checker after the cheap checks
    /// (size, duplicate, room); its verdict comes back to [`Self::on_checked`].
    fn verify_then_admit(&mut self, tx: pb::Transaction, origin: Origin) {
        if let Err(e) = self.mempool.precheck(&tx) {
            if let Origin::Client(reply) = origin {
                let _ = reply.send(Err(crate::mempool::api_error(&e)));
            }
            return;
        }
        if let Err(Origin::Client(reply)) = self.verifier.submit(tx, origin) {
            let _ = reply.send(Err(ApiError::Unavailable(
                "the node is busy checking transactions; retry shortly".into(),
            )));
        }
    }

    /// Admits a transaction whose signature was checked, gossips it on, and
    /// answers the client that submitted it, if any.
    fn on_checked(&mut self, c: Checked) {
        let tx = c.tx;
        let result = match c.verdict {
            Err(reason) => Err(crate::mempool::MempoolError::Rejected(reason)),
            Ok(decoded) => self.admit(tx.clone(), decoded),
        };
        if result.is_ok()
            && let Some(batch) = self.tx_outbox.push(tx, tokio::time::Instant::now())
        {
            self.transport.broadcast(&batch);
        }
        if let Origin::Client(reply) = c.origin {
            let _ = reply.send(result.map_err(|e| crate::mempool::api_error(&e)));
        }
    }

    /// Adds a transaction whose signature is already verified.
    fn admit(
        &mut self,
        tx: pb::Transaction,
        decoded: DecodedTx,
    ) -> Result<Hash, crate::mempool::MempoolError> {
        let r = self
            .mempool
            .add(tx, decoded, &verified_checker(&self.ledger));
        for hash in self.mempool.take_evicted() {
            self.shared.remember_rejection(
                hash,
                "evicted from the full mempool by a transaction paying more per byte".into(),
            );
        }
        if r.is_ok() {
            Metrics::set(&self.metrics.mempool_txs, self.mempool.len() as u64);
            Metrics::set(&self.metrics.mempool_bytes, self.mempool.bytes() as u64);
            self.publish_pending();
        }
        r
    }

    fn on_api(&mut self, req: ApiRequest) -> Result<(), RunError> {
        use crate::rpc::ApiError;
        match req {
            ApiRequest::SubmitTx { tx, reply } => {
                self.verify_then_admit(tx, Origin::Client(reply));
            }
            ApiRequest::SubmitEvidence { evidence, reply } => {
                let res = match self.ledger.check_evidence(&evidence) {
                    Err(e) => Err(ApiError::FailedPrecondition(format!(
                        "evidence refused: {e}"
                    ))),
                    Ok(_) => {
                        use prost::Message;
                        let hash = agora_validator::crypto::sha3_256(&evidence.encode_to_vec());
                        if self.storage.put_evidence(&evidence)? {
                            Metrics::inc(&self.metrics.evidence_seen);
                        }
                        if !self.evidence.contains(&evidence)
                            && self.evidence.len() < MAX_PENDING_EVIDENCE
                        {
                            self.evidence.push(evidence.clone());
                        }
                        self.transport.broadcast(&PeerMessage {
                            kind: Some(Kind::Evidence(evidence)),
                        });
                        Ok(hash)
                    }
                };
                let _ = reply.send(res);
            }
        }
        Ok(())
    }

    fn on_event(&mut self, ev: TransportEvent) -> Result<(), RunError> {
        match &ev {
            TransportEvent::Connected { peer, .. } => {
                let _ = self.transport.send(
                    *peer,
                    &PeerMessage {
                        kind: Some(Kind::Status(pb::StatusUpdate {
                            latest_height: self.height - 1,
                        })),
                    },
                );
                self.update_peer_metrics();
                return Ok(());
            }
            TransportEvent::Disconnected { peer } => {
                self.peers.remove(peer);
                self.update_peer_metrics();
                return Ok(());
            }
            TransportEvent::Message { .. } => {}
        }
        Metrics::inc(&self.metrics.messages_received);
        let TransportEvent::Message { peer, message, .. } = &ev else {
            return Ok(());
        };
        let peer = *peer;
        match &message.kind {
            Some(Kind::Transaction(tx)) => {
                self.verify_then_admit(tx.clone(), Origin::Peer);
            }
            Some(Kind::Transactions(batch)) => {
                for tx in &batch.txs {
                    self.verify_then_admit(tx.clone(), Origin::Peer);
                }
            }
            Some(Kind::Evidence(e)) => {
                if self.ledger.check_evidence(e).is_ok() && !self.evidence.contains(e) {
                    if self.storage.put_evidence(e)? {
                        Metrics::inc(&self.metrics.evidence_seen);
                    }
                    if self.evidence.len() < MAX_PENDING_EVIDENCE {
                        self.evidence.push(e.clone());
                    }
                    self.transport.broadcast(message);
                }
            }
            Some(Kind::BlockRequest(req)) => {
                let resp = serve_request(&self.storage, req)?;
                let _ = self.transport.send(
                    peer,
                    &PeerMessage {
                        kind: Some(Kind::BlockResponse(resp)),
                    },
                );
            }
            Some(Kind::BlockResponse(resp)) => {
                self.peers.update(peer, resp.latest_height);
                self.last_sync_request = None;
                for cb in &resp.blocks {
                    let (Some(block), Some(cert)) = (&cb.block, &cb.certificate) else {
                        continue;
                    };
                    let Ok(certificate) = CommitCertificate::from_proto(cert) else {
                        continue;
                    };
                    if certificate.height != self.height {
                        continue;
                    }
                    self.feed_unlogged(Input::SyncedBlock {
                        block: block.clone(),
                        certificate,
                    })?;
                    // A synced decision starts the next height at once.
                    if self.next_start.is_some() {
                        self.next_start = None;
                        self.start_height()?;
                    }
                }
                self.maybe_sync();
            }
            Some(Kind::Status(s)) => {
                self.peers.update(peer, s.latest_height);
                self.maybe_sync();
            }
            _ => {
                if let Some(Kind::Vote(v)) = &message.kind
                    && let Some(set) = self.ledger.validator_set(self.height.saturating_sub(1))
                {
                    self.late_precommits.offer(v, set);
                }
                if let Some((_, input)) = consensus_input(ev) {
                    self.feed(input)?;
                }
            }
        }
        Ok(())
    }

    fn maybe_sync(&mut self) {
        // At once only when at least two heights behind: one behind is
        // normal gossip lag (`regossip` handles one behind for too long).
        self.request_blocks_if_behind(1);
    }

    /// Asks the peer furthest ahead for blocks if it is more than `slack`
    /// heights ahead of our last committed one (at most one request per 2 s).
    fn request_blocks_if_behind(&mut self, slack: u64) {
        let ours = self.height - 1;
        let Some((peer, theirs)) = self.peers.best_ahead(ours + slack) else {
            return;
        };
        if self
            .last_sync_request
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        debug!(%peer, ours, theirs, "requesting blocks");
        self.last_sync_request = Some(Instant::now());
        let _ = self.transport.send(
            peer,
            &PeerMessage {
                kind: Some(Kind::BlockRequest(pb::BlockRequest {
                    from_height: self.height,
                    count: SYNC_BATCH,
                })),
            },
        );
    }

    fn update_peer_metrics(&self) {
        let peers = self.transport.peers();
        Metrics::set(&self.metrics.peers, peers.len() as u64);
        Metrics::set(
            &self.metrics.validator_peers,
            peers
                .iter()
                .filter(|p| p.identity.validator_address().is_some())
                .count() as u64,
        );
    }

    /// Runs until `shutdown` resolves or a fatal error.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<TransportEvent>,
        mut api: mpsc::Receiver<ApiRequest>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunError> {
        tokio::pin!(shutdown);
        let mut checked = self
            .checked
            .take()
            .ok_or_else(|| RunError::Ledger("the runner was already run".into()))?;
        self.begin()?;
        // Periodic re-gossip of the current height's verified proposals and
        // votes: a message lost to a dropped connection or a full queue (or an
        // equivocator's vote that reached only some nodes) still reaches
        // everyone, which liveness needs. Receivers drop what they have seen.
        let mut regossip = tokio::time::interval(REGOSSIP_INTERVAL);
        regossip.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let start_at = self.next_start;
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                // A due start (timeout_commit 0) is taken at once: a timer
                // would round it up to the next millisecond tick.
                _ = async { match start_at {
                    Some(t) if t <= tokio::time::Instant::now() => {}
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                } } => {
                    self.next_start = None;
                    self.start_height()?;
                }
                _ = regossip.tick() => self.regossip(),
                _ = async { match self.tx_outbox.deadline() {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                } } => {
                    if let Some(batch) = self.tx_outbox.take() {
                        self.transport.broadcast(&batch);
                    }
                }
                r = api.recv() => if let Some(r) = r {
                    self.on_api(r)?;
                },
                t = self.timers.recv() => if let Some(t) = t {
                    self.feed(t)?;
                },
                c = checked.recv() => if let Some(c) = c {
                    self.on_checked(c);
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev)?,
                    None => return Ok(()),
                },
            }
        }
    }
}

/// The mempool's view of the ledger for transactions the [`TxVerifier`]
/// already decoded and verified: the state checks alone
/// ([`Ledger::recheck_decoded`]), at admission and when re-checking after a
/// commit; nothing is decoded or verified again.
fn verified_checker(
    ledger: &Ledger,
) -> impl Fn(&pb::Transaction, &DecodedTx, CheckMode) -> Result<Admission, String> + '_ {
    move |_tx, d, _mode: CheckMode| {
        ledger
            .recheck_decoded(d)
            .map(|c| Admission {
                sender: c.signer,
                nonce: c.nonce,
                account_nonce: c.next_nonce,
                fee: c.fee,
            })
            .map_err(|e| e.to_string())
    }
}
