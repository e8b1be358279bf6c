//! The load generator: signed transfers offered at a fixed total rate,
//! spread over many funded accounts, signed ahead of time ([`signer`]) and
//! submitted in batches (`Staking.SubmitTxs`), so that neither signing nor
//! one gRPC call per transaction limits what is offered.
//!
//! Every 5 ms the scheduler takes the transactions due by then from the
//! pre-signed queue and hands each to the submitter of its account's node
//! (account `k` always goes to node `k % nodes`, so one account's nonces
//! reach one mempool in order). A submitter sends one call at a time (all
//! that queued meanwhile, up to 1,000 transactions) and waits for the
//! per-transaction verdicts before the next, which keeps each account's
//! nonces in order; its queue is bounded ([`SUBMIT_QUEUE`] ticks' worth) and
//! what does not fit is counted as `backlog`, not offered.
//!
//! Submission times are kept per transaction hash, so the bench can report
//! submit-to-commit latency per transaction from the blocks it reads.

mod signer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_proto::v1::staking_client::StakingClient;
use agora_validator::{AccountSecretKey, Address, ChainId, Hash};
use prost::Message;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use signer::Signed;

/// Per-request deadline of a batch submission.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Tokens moved by each transfer.
const AMOUNT: u128 = 1;
/// How often the scheduler releases the transactions due.
const TICK: Duration = Duration::from_millis(5);
/// Batches waiting per submitter at most: two seconds of ticks. A node
/// under load answers a call in a few hundred milliseconds; a queue of a
/// few ticks (it was 16, 80 ms) overflowed while one call was out and
/// counted as backlog what the chain could have taken, so the bench
/// measured its own queue. The transactions held are bounded by the
/// signer's queue either way.
const SUBMIT_QUEUE: usize = 400;
/// Most transactions per `SubmitTxs` call (the server's limit).
const MAX_BATCH: usize = agora_node::rpc::staking::MAX_SUBMIT_BATCH;
/// Most encoded bytes of transactions per call: the server decodes at most
/// `MAX_REQUEST_BYTES` per request; the rest is room for the framing.
const MAX_BATCH_BYTES: usize = agora_node::rpc::limits::MAX_REQUEST_BYTES * 7 / 8;
/// Signed transactions queued at most: two seconds of the rate, within bounds.
fn signer_queue(rate: f64) -> usize {
    ((rate * 2.0) as usize).clamp(1_000, 200_000)
}

/// Transactions signed ahead at least.
const MIN_AHEAD: usize = 1_000;
/// Transactions signed ahead at most: 400,000 transfers of about 300 bytes
/// each in memory (~120 MB), 20 s at 20,000 tx/s.
pub const MAX_AHEAD: usize = 400_000;
/// How long a transaction the node was too busy to take waits before it
/// is offered again.
const RETRY_AFTER: Duration = Duration::from_millis(20);

/// A funded account the generator sends from.
pub struct Account {
    /// Its key.
    pub key: AccountSecretKey,
    /// Its address.
    pub address: Address,
}

/// Counters shared by the scheduler and the submitters.
#[derive(Debug, Default)]
pub struct LoadCounters {
    offered: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    backlog: AtomicU64,
    signer_behind: AtomicU64,
    resets: AtomicU64,
    retried: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
    submitted_at: Mutex<HashMap<Hash, Instant>>,
    /// Hashes admitted so far: a restarted account sends the same bytes
    /// again, and an admission is counted once per transaction.
    accepted_hashes: Mutex<HashSet<Hash>>,
    /// Submit-to-admission time of each admitted transaction, ms: the part
    /// of its latency spent before the node answered (the node's signature
    /// queue and checks), apart from the wait for a block.
    accept_ms: Mutex<Vec<f64>>,
}

/// What the load generator did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Transactions sent to a node.
    pub offered: u64,
    /// Admitted into a mempool (each transaction once, however often sent).
    pub accepted: u64,
    /// Refused by the node (reasons below).
    pub rejected: u64,
    /// Not answered (transport error or timeout).
    pub failed: u64,
    /// Due but not sent because a node's submission queue was full.
    pub backlog: u64,
    /// Ticks at which fewer pre-signed transactions were ready than due.
    pub signer_behind: u64,
    /// Times an account was restarted at a refused nonce.
    pub nonce_resyncs: u64,
    /// Offers refused because the node was busy checking transactions, and
    /// sent again unchanged.
    pub retried_busy: u64,
    /// Refusals by reason (digits replaced by `#`).
    pub rejection_reasons: BTreeMap<String, u64>,
    /// Submit-to-admission latency per transaction, ms: how long the node
    /// took to answer `accepted` (its signature queue and checks).
    pub accept_latency_ms_p50: Option<f64>,
    /// Its 99th percentile.
    pub accept_latency_ms_p99: Option<f64>,
    /// Accepted transactions found in a committed block (filled by the bench).
    pub committed: u64,
    /// Submit-to-commit latency per transaction, ms (filled by the bench).
    pub tx_latency_ms_p50: Option<f64>,
    /// Its 99th percentile.
    pub tx_latency_ms_p99: Option<f64>,
    /// Accepted transactions not seen committed, and where the nodes say
    /// they are (filled by the bench).
    pub unseen: crate::bench::txs::Unseen,
}

impl LoadCounters {
    /// The counts so far (latency and commits are the bench's to fill).
    pub fn report(&self) -> LoadReport {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut accept_ms = self.accept_ms.lock().map(|v| v.clone()).unwrap_or_default();
        accept_ms.sort_by(f64::total_cmp);
        LoadReport {
            offered: g(&self.offered),
            accepted: g(&self.accepted),
            rejected: g(&self.rejected),
            failed: g(&self.failed),
            backlog: g(&self.backlog),
            signer_behind: g(&self.signer_behind),
            nonce_resyncs: g(&self.resets),
            retried_busy: g(&self.retried),
            rejection_reasons: self.reasons.lock().map(|r| r.clone()).unwrap_or_default(),
            accept_latency_ms_p50: percentile(&accept_ms, 50.0),
            accept_latency_ms_p99: percentile(&accept_ms, 99.0),
            ..LoadReport::default()
        }
    }

    /// The transactions admitted so far, each once.
    pub fn accepted_hashes(&self) -> HashSet<Hash> {
        self.accepted_hashes
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// When each submitted transaction was sent, by hash.
    pub fn submitted_at(&self) -> HashMap<Hash, Instant> {
        self.submitted_at
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Counts the transactions of `batch` sent for the first time and
    /// notes when (a retried one keeps its first time: its latency is the
    /// client's).
    fn note_offered(&self, batch: &[Signed]) {
        let now = Instant::now();
        let mut first = 0;
        if let Ok(mut m) = self.submitted_at.lock() {
            for s in batch {
                if let std::collections::hash_map::Entry::Vacant(e) = m.entry(s.hash) {
                    e.insert(now);
                    first += 1;
                }
            }
        }
        self.offered.fetch_add(first, Ordering::Relaxed);
    }

    /// Counts an admission, once per transaction, and how long after its
    /// first offer it came.
    fn note_accepted(&self, hash: &Hash) {
        if self
            .accepted_hashes
            .lock()
            .is_ok_and(|mut a| a.insert(*hash))
        {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .submitted_at
                .lock()
                .ok()
                .and_then(|m| m.get(hash).copied());
            if let (Some(sent), Ok(mut v)) = (sent, self.accept_ms.lock()) {
                v.push(sent.elapsed().as_secs_f64() * 1e3);
            }
        }
    }

    fn note_refusal(&self, message: &str) {
        let generic: String = message
            .chars()
            .take(120)
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        if let Ok(mut r) = self.reasons.lock() {
            *r.entry(generic).or_default() += 1;
        }
    }
}

/// A channel to `endpoint` (host:port), connected lazily.
pub fn channel(endpoint: &str) -> Option<Channel> {
    Endpoint::from_shared(format!("http://{endpoint}"))
        .ok()
        .map(|e| {
            e.connect_timeout(SUBMIT_TIMEOUT)
                .timeout(SUBMIT_TIMEOUT)
                .connect_lazy()
        })
}

async fn account_nonce(q: &mut QueryClient<Channel>, a: &Address) -> u64 {
    q.get_account(pb::GetAccountRequest {
        prove: false,
        address: a.0.to_vec(),
    })
    .await
    .map(|r| r.into_inner().nonce)
    .unwrap_or(0)
}

/// A load ready to run: connected, with its transactions signed ahead.
pub struct Prepared {
    channels: Vec<Channel>,
    signed: mpsc::Receiver<Signed>,
    ctl: Arc<signer::Accounts>,
    stop: Arc<AtomicBool>,
    rate: f64,
}

/// Connects to `endpoints`, reads the accounts' nonces and signs `ahead`
/// transfers before returning (at most `MAX_AHEAD`, each a few hundred
/// bytes in memory), so that the run's signing is done before anything is
/// measured. `None` if the rate or the endpoints are unusable.
pub async fn prepare(
    endpoints: &[String],
    accounts: Vec<Account>,
    chain: ChainId,
    rate: f64,
    ahead: usize,
) -> Option<Prepared> {
    if !(rate > 0.0 && rate.is_finite()) || endpoints.is_empty() || accounts.is_empty() {
        return None;
    }
    let channels: Vec<Channel> = endpoints.iter().filter_map(|e| channel(e)).collect();
    if channels.len() != endpoints.len() {
        return None;
    }
    let mut nonces = Vec::with_capacity(accounts.len());
    for (k, a) in accounts.iter().enumerate() {
        let mut q = QueryClient::new(channels[k % channels.len()].clone());
        nonces.push(account_nonce(&mut q, &a.address).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let ahead = ahead.clamp(MIN_AHEAD, MAX_AHEAD);
    let plan = signer::SignerPlan {
        accounts,
        nonces,
        chain,
        fee: agora_node::client::tx::DEFAULT_FEE,
        queue: signer_queue(rate),
        presign: ahead,
    };
    let (signed, ctl, progress) = signer::start(plan, stop.clone());
    // The thread pre-signs a multiple of the account count, `ahead` or more.
    while progress.presigned.load(Ordering::Relaxed) < ahead as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(Prepared {
        channels,
        signed,
        ctl,
        stop,
        rate,
    })
}

impl Prepared {
    /// Offers the signed transfers at the prepared rate until `until`.
    /// Returns when every submitter has finished.
    pub async fn run(mut self, until: Instant, counters: Arc<LoadCounters>) {
        let mut queues = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for ch in self.channels {
            let (tx, rx) = mpsc::channel::<Vec<Signed>>(SUBMIT_QUEUE);
            queues.push(tx);
            let (ctl, counters) = (self.ctl.clone(), counters.clone());
            tasks.spawn(submitter(ch, rx, ctl, counters, until));
        }
        schedule(
            &mut self.signed,
            &queues,
            &self.ctl,
            self.rate,
            until,
            &counters,
        )
        .await;
        self.stop.store(true, Ordering::Relaxed);
        drop(self.signed);
        drop(queues);
        while tasks.join_next().await.is_some() {}
    }
}

/// Releases `rate · elapsed` transactions in total by every tick until `until`.
async fn schedule(
    signed: &mut mpsc::Receiver<Signed>,
    queues: &[mpsc::Sender<Vec<Signed>>],
    ctl: &signer::Accounts,
    rate: f64,
    until: Instant,
    counters: &LoadCounters,
) {
    let start = Instant::now();
    let mut released: u64 = 0;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < until {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        let mut groups: Vec<Vec<Signed>> = queues.iter().map(|_| Vec::new()).collect();
        while released < due {
            match signed.try_recv() {
                Ok(s) if !ctl.is_current(&s) => continue,
                Ok(s) => {
                    released += 1;
                    groups[s.account % queues.len()].push(s);
                }
                Err(_) => {
                    counters.signer_behind.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        for (q, group) in queues.iter().zip(groups) {
            for batch in chunks(group) {
                if let Err(e) = q.try_send(batch) {
                    let batch = match e {
                        mpsc::error::TrySendError::Full(b)
                        | mpsc::error::TrySendError::Closed(b) => b,
                    };
                    counters
                        .backlog
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    restart_first_of_each(&batch, ctl, counters);
                }
            }
        }
    }
}

/// `group` cut into calls within the server's limits, in order.
fn chunks(group: Vec<Signed>) -> Vec<Vec<Signed>> {
    let mut out = Vec::new();
    let mut cur: Vec<Signed> = Vec::new();
    let mut bytes = 0;
    for s in group {
        let size = s.tx.encoded_len();
        if !cur.is_empty() && (cur.len() == MAX_BATCH || bytes + size > MAX_BATCH_BYTES) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += size;
        cur.push(s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Restarts every account of `batch` at its first nonce there (those
/// transactions never reached a node, so the account's sequence has a gap).
fn restart_first_of_each(batch: &[Signed], ctl: &signer::Accounts, counters: &LoadCounters) {
    for s in batch {
        if ctl.reset(s.account, s.epoch, s.nonce) {
            counters.resets.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one node's batches one after another and records the verdicts.
/// A transaction the node was too busy to check is offered again,
/// unchanged, until `until`; any other refusal restarts its account.
async fn submitter(
    ch: Channel,
    mut rx: mpsc::Receiver<Vec<Signed>>,
    ctl: Arc<signer::Accounts>,
    counters: Arc<LoadCounters>,
    until: Instant,
) {
    let mut staking = StakingClient::new(ch);
    let mut carry: Option<Vec<Signed>> = None;
    let mut retry: Vec<Signed> = Vec::new();
    loop {
        let first = if retry.is_empty() {
            match carry.take() {
                Some(b) => b,
                None => match rx.recv().await {
                    Some(b) => b,
                    None => break,
                },
            }
        } else {
            tokio::time::sleep(RETRY_AFTER).await;
            if Instant::now() >= until {
                break;
            }
            std::mem::take(&mut retry)
        };
        let batch = gather(first, &mut carry, &mut rx);
        let batch: Vec<Signed> = batch.into_iter().filter(|s| ctl.is_current(s)).collect();
        if batch.is_empty() {
            continue;
        }
        counters.note_offered(&batch);
        let req = pb::SubmitTxsRequest {
            txs: batch.iter().map(|s| s.tx.clone()).collect(),
        };
        match staking.submit_txs(req).await {
            Ok(r) => {
                let results = r.into_inner().results;
                for (s, res) in batch.into_iter().zip(&results) {
                    if res.status == pb::TxStatus::Pending as i32 {
                        counters.note_accepted(&s.hash);
                    } else if res.log == agora_node::rpc::BUSY_CHECKING_TXS {
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        retry.push(s);
                    } else {
                        counters.rejected.fetch_add(1, Ordering::Relaxed);
                        counters.note_refusal(&res.log);
                        if ctl.reset(s.account, s.epoch, s.nonce) {
                            counters.resets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Err(status) => {
                counters
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counters.note_refusal(status.message());
                restart_first_of_each(&batch, &ctl, &counters);
            }
        }
    }
}

/// `first` and whatever else queued up while the last call was out, within
/// the server's limits per call; what does not fit is carried to the next.
fn gather(
    first: Vec<Signed>,
    carry: &mut Option<Vec<Signed>>,
    rx: &mut mpsc::Receiver<Vec<Signed>>,
) -> Vec<Signed> {
    let mut batch = first;
    let mut bytes: usize = batch.iter().map(|s| s.tx.encoded_len()).sum();
    if carry.is_some() {
        return batch;
    }
    while let Ok(more) = rx.try_recv() {
        let more_bytes: usize = more.iter().map(|s| s.tx.encoded_len()).sum();
        if batch.len() + more.len() > MAX_BATCH || bytes + more_bytes > MAX_BATCH_BYTES {
            *carry = Some(more);
            break;
        }
        bytes += more_bytes;
        batch.extend(more);
    }
    batch
}

/// Percentile `p` (0..=100) of `sorted` values by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction admitted twice (its account restarted and sent the
    /// same bytes again) is one admission: the bench waits for that many
    /// commits.
    #[test]
    fn an_admission_counts_once_per_transaction() {
        let c = LoadCounters::default();
        c.note_accepted(&[1; 32]);
        c.note_accepted(&[1; 32]);
        c.note_accepted(&[2; 32]);
        assert_eq!(c.report().accepted, 2);
    }

    /// The admission latency runs from the first offer (a retried offer
    /// keeps it) and is taken once per transaction.
    #[test]
    fn admission_latency_is_timed_from_the_first_offer_once() {
        let c = LoadCounters::default();
        let sent = Instant::now() - Duration::from_millis(500);
        c.submitted_at.lock().unwrap().insert([1; 32], sent);
        c.note_accepted(&[1; 32]);
        c.note_accepted(&[1; 32]);
        c.note_accepted(&[2; 32]); // never offered: no time to take
        let r = c.report();
        assert_eq!(c.accept_ms.lock().unwrap().len(), 1);
        let p50 = r.accept_latency_ms_p50.expect("one latency");
        assert!((500.0..5_000.0).contains(&p50), "{p50}");
        assert_eq!(r.accept_latency_ms_p99, Some(p50));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn batches_are_cut_at_the_server_limit() {
        let make = |i: u64| Signed {
            account: 0,
            epoch: 0,
            nonce: i,
            hash: [0; 32],
            tx: pb::Transaction::default(),
        };
        let group: Vec<Signed> = (0..2_500).map(make).collect();
        let sizes: Vec<usize> = chunks(group).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
        assert!(chunks(Vec::new()).is_empty());
    }

    #[test]
    fn a_refusal_restarts_an_account_and_keeps_what_came_before() {
        let ctl = signer::Accounts::new_for_test(2);
        let s = |account, epoch, nonce| Signed {
            account,
            epoch,
            nonce,
            hash: [0; 32],
            tx: pb::Transaction::default(),
        };
        assert!(ctl.reset(1, 0, 7));
        // The refusals the gap caused (nonces after 7) do not reset again.
        assert!(!ctl.reset(1, 0, 8));
        // Queued before the restart: nonce 6 is still needed, 7 and 8 are not.
        assert!(ctl.is_current(&s(1, 0, 6)));
        assert!(!ctl.is_current(&s(1, 0, 7)) && !ctl.is_current(&s(1, 0, 8)));
        assert!(ctl.is_current(&s(1, 1, 7)));
        // A refusal of the re-signed 7 restarts again; an earlier 5 too.
        assert!(ctl.reset(1, 1, 7));
        assert!(ctl.reset(1, 0, 5));
        assert!(!ctl.is_current(&s(1, 0, 6)));
        // Other accounts are untouched.
        assert!(ctl.is_current(&s(0, 0, 100)));
    }
}
