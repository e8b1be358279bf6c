//! What the gRPC services see of a running node.
//!
//! The runner (the only writer) publishes a snapshot after every commit: the
//! ledger after the block, the tip, the mempool's contents, and validator-set
//! changes. Reads are served from that snapshot under short read locks, so
//! gRPC never waits for consensus. Writes (transactions, evidence) go to the
//! runner over a channel and are answered with the runner's own verdict.

use crate::rpc::{ApiError, NodeApi, TxInfo, api::Page, ledger_views};
use crate::storage::{Storage, TxOutcome};
use agora_proto::v1 as pb;
use agora_validator::consensus::CheckedEvidence;
use agora_validator::ledger::{Ledger, slashing};
use agora_validator::{Address, ChainId, Hash, ValidatorSet};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

/// Rejections remembered for GetTx (transactions dropped by a re-check).
const MAX_REMEMBERED_REJECTIONS: usize = 10_000;

/// Evidence submissions checked at once, at most. A check costs a few
/// pairings (about 2 ms each here); two checkers keep a flood of forged
/// submissions from occupying more than the machine's two cores' worth of
/// blocking threads, and never touch the consensus thread.
pub const MAX_EVIDENCE_CHECKS: usize = 2;

/// A write request from the API to the runner.
#[derive(Debug)]
pub enum ApiRequest {
    /// Admit a transaction to the mempool (and gossip it).
    SubmitTx {
        /// The signed transaction.
        tx: pb::Transaction,
        /// The runner's verdict: the hash, or why not.
        reply: oneshot::Sender<Result<Hash, ApiError>>,
    },
    /// Queue evidence for inclusion (and gossip it).
    SubmitEvidence {
        /// The evidence, its signatures already checked on a worker thread.
        evidence: CheckedEvidence,
        /// The runner's verdict.
        reply: oneshot::Sender<Result<Hash, ApiError>>,
    },
}

/// The snapshot the runner publishes and the API reads.
pub struct Shared {
    /// The chain.
    pub chain: ChainId,
    /// This node's validator address.
    pub address: Address,
    /// The database (reads only from here).
    pub storage: Arc<Storage>,
    /// The ledger after the latest committed block.
    pub ledger: RwLock<Ledger>,
    /// Latest committed height and block hash.
    pub latest: RwLock<(u64, Hash)>,
    /// Validator sets by the height they take effect, at every change.
    pub set_changes: RwLock<BTreeMap<u64, ValidatorSet>>,
    /// Hashes of the transactions in the mempool.
    pub pending: Mutex<HashSet<Hash>>,
    /// The next nonce of every sender with transactions in the mempool
    /// (one past its last pending one): GetAccount's `pending_nonce`, so
    /// that a client signs a second transaction before the first commits.
    /// One entry per sender in the mempool (at most `mempool.max_txs`).
    pub pending_nonces: Mutex<HashMap<Address, u64>>,
    /// Transactions dropped from the mempool by a re-check, with the reason.
    pub rejected: Mutex<VecDeque<(Hash, String)>>,
    /// Notified with the height after each commit.
    pub commits: broadcast::Sender<u64>,
    /// Requests to the runner.
    pub to_runner: mpsc::Sender<ApiRequest>,
    /// Metrics (round and peers for GetStatus).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Evidence checks running on worker threads; at most
    /// [`MAX_EVIDENCE_CHECKS`] at once, further submissions are refused
    /// (UNAVAILABLE) rather than queued.
    pub evidence_checks: Arc<Semaphore>,
    /// `testing.tamper_state_proofs`: forge the value of every proof served.
    pub tamper_state_proofs: bool,
    /// `testing.hide_listed_items`: leave the first item out of every list
    /// page served.
    pub hide_listed_items: bool,
}

impl Shared {
    /// Remembers why a transaction was dropped.
    pub fn remember_rejection(&self, hash: Hash, reason: String) {
        if let Ok(mut r) = self.rejected.lock() {
            if r.len() >= MAX_REMEMBERED_REJECTIONS {
                r.pop_front();
            }
            r.push_back((hash, reason));
        }
    }

    /// The validator set of a height: from the ledger's window, else the
    /// last recorded change at or before it. None past the window's far
    /// end: the set of h is decided at the end of h − 2, so two heights
    /// past the latest block there is none yet, and the last change would
    /// only be a guess (it answered any future height as if decided).
    pub fn validator_set_at(&self, height: u64) -> Option<ValidatorSet> {
        {
            let l = self.ledger.read().ok()?;
            if let Some(s) = l.validator_set(height) {
                return Some(s.clone());
            }
            if height > l.last_decided_set_height() {
                return None;
            }
        }
        let changes = self.set_changes.read().ok()?;
        changes.range(..=height).next_back().map(|(_, s)| s.clone())
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Hash, ApiError>>) -> ApiRequest,
    ) -> Result<Vec<u8>, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.to_runner
            .try_send(make(reply))
            .map_err(|_| ApiError::Unavailable("the node is busy; try again".into()))?;
        let h = rx
            .await
            .map_err(|_| ApiError::Unavailable("the node is shutting down".into()))??;
        Ok(h.to_vec())
    }
}

/// The gRPC view of a node.
pub struct Api(pub Arc<Shared>);

impl Api {
    /// Checks submitted evidence's signatures on a blocking worker thread
    /// against the validator set of its infraction height (as the latest
    /// snapshot knows it). The runner then takes it with state checks only,
    /// after comparing that set with its own, so a stale snapshot can only
    /// cause a refusal, never an acceptance.
    async fn check_evidence(&self, evidence: pb::Evidence) -> Result<CheckedEvidence, ApiError> {
        let height = slashing::infraction_height(&evidence)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let set = self.0.validator_set_at(height).ok_or_else(|| {
            ApiError::FailedPrecondition(format!("no validator set known for height {height}"))
        })?;
        let permit = self
            .0
            .evidence_checks
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                self.0
                    .metrics
                    .grpc_refused(crate::metrics::GrpcRefusal::EvidenceChecks);
                ApiError::Unavailable("the node is busy checking evidence; try again".into())
            })?;
        let chain = self.0.chain.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            CheckedEvidence::check(&chain, &set, evidence)
        })
        .await
        .map_err(|_| ApiError::Unavailable("the evidence checker stopped".into()))?;
        checked.map_err(|e| ApiError::FailedPrecondition(format!("evidence refused: {e}")))
    }

    /// A page of a list read from the ledger view (empty if the view is
    /// unavailable), without its first item under
    /// `testing.hide_listed_items`.
    fn list<T>(&self, read: impl FnOnce(&Ledger) -> Page<T>) -> Page<T> {
        let Ok(l) = self.0.ledger.read() else {
            return (Vec::new(), Vec::new());
        };
        let (mut items, next) = read(&l);
        if self.0.hide_listed_items && !items.is_empty() {
            items.remove(0);
        }
        (items, next)
    }
}

impl NodeApi for Api {
    fn status(&self) -> pb::GetStatusResponse {
        let s = &self.0;
        let (h, hash) = s.latest.read().map(|g| *g).unwrap_or((0, [0; 32]));
        pb::GetStatusResponse {
            chain_id: s.chain.to_string(),
            latest_height: h,
            latest_block_hash: if h == 0 { Vec::new() } else { hash.to_vec() },
            round: s.metrics.round.load(Ordering::Relaxed) as u32,
            node_address: s.address.0.to_vec(),
            peers: s.metrics.peers_total() as u32,
        }
    }

    fn block(&self, height: u64) -> Option<(pb::Block, Vec<u8>)> {
        let b = self.0.storage.block(height).ok()??;
        let hash = agora_validator::block::header_hash(b.header.as_ref()?).to_vec();
        Some((b, hash))
    }

    fn lowest_height(&self) -> u64 {
        self.0
            .storage
            .lowest_block_height()
            .ok()
            .flatten()
            .unwrap_or(1)
    }

    fn certificate(&self, height: u64) -> Option<(pb::CommitCertificate, pb::Header)> {
        let c = self.0.storage.certificate(height).ok()??;
        let h = self.0.storage.block(height).ok()??.header?;
        Some((c, h))
    }

    fn certified_block(&self, height: u64) -> Option<pb::CertifiedBlockEntry> {
        let block = self.0.storage.block(height).ok()??;
        let certificate = self.0.storage.certificate(height).ok()??;
        let block_hash = agora_validator::block::header_hash(block.header.as_ref()?).to_vec();
        Some(pb::CertifiedBlockEntry {
            block: Some(block),
            certificate: Some(certificate),
            block_hash,
        })
    }

    fn validator_set(&self, height: u64) -> Option<(u64, pb::ValidatorSet)> {
        let h = if height == 0 {
            self.0.latest.read().map(|g| g.0 + 1).unwrap_or(1)
        } else {
            height
        };
        self.0.validator_set_at(h).map(|s| (h, s.to_proto()))
    }

    fn last_decided_set_height(&self) -> u64 {
        self.0
            .ledger
            .read()
            .map(|l| l.last_decided_set_height())
            .unwrap_or(0)
    }

    fn set_change_heights(&self) -> Vec<u64> {
        let Ok(changes) = self.0.set_changes.read() else {
            return Vec::new();
        };
        // A recorded entry may repeat the set before it (a change computed
        // back to the same set); only a different hash is a crossing.
        let mut out = Vec::new();
        let mut previous = None;
        for (h, set) in changes.iter() {
            if previous.is_some_and(|p| p != set.hash()) {
                out.push(*h);
            }
            previous = Some(set.hash());
        }
        out
    }

    fn subscribe_commits(&self) -> broadcast::Receiver<u64> {
        self.0.commits.subscribe()
    }

    async fn submit_tx(&self, tx: pb::Transaction) -> Result<Vec<u8>, ApiError> {
        self.0.ask(|reply| ApiRequest::SubmitTx { tx, reply }).await
    }

    fn tx(&self, hash: &[u8]) -> Option<TxInfo> {
        let h: Hash = hash.try_into().ok()?;
        if let Ok(Some(rec)) = self.0.storage.tx(&h) {
            let status = match TxOutcome::try_from(rec.outcome) {
                Ok(TxOutcome::Committed) => pb::TxStatus::Committed,
                Ok(TxOutcome::Failed) => pb::TxStatus::Failed,
                Ok(TxOutcome::Rejected) => pb::TxStatus::Rejected,
                _ => pb::TxStatus::Unspecified,
            };
            let tx = self
                .0
                .storage
                .block(rec.height)
                .ok()
                .flatten()
                .and_then(|b| b.txs.get(rec.index as usize).cloned());
            return Some(TxInfo {
                status,
                height: rec.height,
                log: if rec.reason.is_empty() {
                    "ok".into()
                } else {
                    rec.reason
                },
                tx,
            });
        }
        if self.0.pending.lock().ok()?.contains(&h) {
            return Some(TxInfo {
                status: pb::TxStatus::Pending,
                height: 0,
                log: "in the mempool".into(),
                tx: None,
            });
        }
        let rejected = self.0.rejected.lock().ok()?;
        rejected
            .iter()
            .rev()
            .find(|(x, _)| *x == h)
            .map(|(_, reason)| TxInfo {
                status: pb::TxStatus::Rejected,
                height: 0,
                log: reason.clone(),
                tx: None,
            })
    }

    async fn submit_evidence(&self, evidence: pb::Evidence) -> Result<Vec<u8>, ApiError> {
        let evidence = self.check_evidence(evidence).await?;
        self.0
            .ask(|reply| ApiRequest::SubmitEvidence { evidence, reply })
            .await
    }

    fn validator(&self, address: &[u8]) -> Option<pb::ValidatorRecord> {
        ledger_views::validator(&*self.0.ledger.read().ok()?, address)
    }

    fn validators(&self, after: &[u8], limit: usize) -> Page<pb::ValidatorRecord> {
        match self.0.ledger.read() {
            Ok(l) => ledger_views::validators(&l, after, limit),
            Err(_) => (Vec::new(), Vec::new()),
        }
    }

    fn account(&self, address: &[u8]) -> pb::GetAccountResponse {
        // The pending nonce is read before the ledger: a commit updates
        // the ledger first and the mempool after, so a commit between the
        // two reads can only make the ledger's nonce the larger one, which
        // the max below takes. (Read the other way round, a commit
        // including the account's last pending transaction in between
        // would leave the old committed nonce, already used.)
        let pending = <[u8; 20]>::try_from(address).ok().and_then(|a| {
            let p = self.0.pending_nonces.lock().ok()?;
            p.get(&Address(a)).copied()
        });
        let mut a = match self.0.ledger.read() {
            Ok(l) => ledger_views::account(&l, address),
            Err(_) => return pb::GetAccountResponse::default(),
        };
        a.pending_nonce = pending.map_or(a.nonce, |n| n.max(a.nonce));
        a
    }

    fn delegation(&self, delegator: &[u8], validator: &[u8]) -> Option<pb::Delegation> {
        ledger_views::delegation_of(&*self.0.ledger.read().ok()?, delegator, validator)
    }

    fn delegations(&self, delegator: &[u8], after: &[u8], limit: usize) -> Page<pb::Delegation> {
        self.list(|l| ledger_views::delegations(l, delegator, after, limit))
    }

    fn unbonding(&self, delegator: &[u8], after: &[u8], limit: usize) -> Page<pb::UnbondingEntry> {
        self.list(|l| ledger_views::unbonding(l, delegator, after, limit))
    }

    fn slashes(&self, validator: &[u8], after: &[u8], limit: usize) -> Page<pb::SlashingEvent> {
        self.list(|l| ledger_views::slashes(l, validator, after, limit))
    }

    fn rewards(&self, delegator: &[u8], validator: &[u8]) -> Option<pb::GetRewardsResponse> {
        let l = self.0.ledger.read().ok()?;
        ledger_views::rewards(&l, delegator, validator)
    }

    fn redelegations(
        &self,
        delegator: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Page<pb::RedelegationEntry> {
        self.list(|l| ledger_views::redelegations(l, delegator, after, limit))
    }

    fn prove(&self, keys: &[Vec<u8>]) -> Result<Vec<pb::StateProof>, ApiError> {
        let l = self
            .0
            .ledger
            .read()
            .map_err(|_| ApiError::Unavailable("the ledger view is unavailable".into()))?;
        let mut proofs = ledger_views::prove(&l, keys)?;
        if self.0.tamper_state_proofs {
            for p in &mut proofs {
                if let Some(b) = p.value.last_mut() {
                    *b ^= 1;
                }
            }
        }
        Ok(proofs)
    }

    fn supply(&self) -> pb::GetSupplyResponse {
        match self.0.ledger.read() {
            Ok(l) => l.supply().to_proto(l.height()),
            Err(_) => pb::GetSupplyResponse::default(),
        }
    }
}
