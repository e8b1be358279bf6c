//! The load generator: signed transfers at a fixed total rate, spread over
//! several funded accounts. Each account has one worker that submits its
//! transactions in nonce order and waits for each admission answer before
//! sending the next (the mempool wants contiguous nonces per sender), so the
//! accounts run in parallel while each one's nonces stay in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_proto::v1::staking_client::StakingClient;
use agora_validator::signing::sign_transaction;
use agora_validator::{AccountSecretKey, Address, ChainId};
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use tonic::transport::{Channel, Endpoint};

/// Per-request deadline of a submission.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Tokens moved by each transfer (the accounts hold 10^10).
const AMOUNT: u128 = 1;

/// Submission counters shared by the workers.
#[derive(Debug, Default)]
pub struct LoadCounters {
    submitted: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    resyncs: AtomicU64,
    examples: std::sync::Mutex<Vec<String>>,
}

/// Distinct refusal messages kept as examples.
const MAX_EXAMPLES: usize = 5;

/// What the load generator did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Transactions sent.
    pub submitted: u64,
    /// Admitted into a mempool.
    pub accepted: u64,
    /// Refused by the node (bad nonce, full mempool, ...).
    pub rejected: u64,
    /// Not answered (transport error or timeout).
    pub failed: u64,
    /// Times a worker re-read its account's nonce after a refusal.
    pub nonce_resyncs: u64,
    /// A few distinct refusal or failure messages (digits replaced by `#`).
    pub rejection_examples: Vec<String>,
}

impl LoadCounters {
    /// The counts so far.
    pub fn report(&self) -> LoadReport {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LoadReport {
            submitted: g(&self.submitted),
            accepted: g(&self.accepted),
            rejected: g(&self.rejected),
            failed: g(&self.failed),
            nonce_resyncs: g(&self.resyncs),
            rejection_examples: self.examples.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }

    fn note_refusal(&self, message: &str) {
        let generic: String = message
            .chars()
            .take(200)
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        if let Ok(mut e) = self.examples.lock()
            && e.len() < MAX_EXAMPLES
            && !e.contains(&generic)
        {
            e.push(generic);
        }
    }
}

/// A funded account the generator sends from.
pub struct Account {
    /// Its key.
    pub key: AccountSecretKey,
    /// Its address.
    pub address: Address,
}

/// The interval between one worker's submissions so that `accounts`
/// workers together offer `rate` transactions per second.
pub fn worker_interval(rate: f64, accounts: usize) -> Option<Duration> {
    if rate.is_nan() || rate <= 0.0 || accounts == 0 || !rate.is_finite() {
        return None;
    }
    Some(Duration::from_secs_f64(accounts as f64 / rate))
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

/// Submits transfers at `rate` per second in total until `until`, account
/// `k` sending to node `k % endpoints.len()` and paying the next account.
/// Returns when every worker has stopped.
pub async fn run(
    endpoints: &[String],
    accounts: Vec<Account>,
    chain: ChainId,
    rate: f64,
    until: Instant,
    counters: Arc<LoadCounters>,
) {
    let Some(interval) = worker_interval(rate, accounts.len()) else {
        return;
    };
    if endpoints.is_empty() {
        return;
    }
    let addresses: Vec<Address> = accounts.iter().map(|a| a.address).collect();
    let n = accounts.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (k, acct) in accounts.into_iter().enumerate() {
        let Some(ch) = channel(&endpoints[k % endpoints.len()]) else {
            continue;
        };
        let to = addresses[(k + 1) % n];
        let chain = chain.clone();
        let counters = counters.clone();
        // Workers start staggered across one interval so that the total
        // rate is smooth rather than bursts of `n`.
        let offset = interval.mul_f64(k as f64 / n as f64);
        tasks.spawn(async move {
            tokio::time::sleep(offset).await;
            worker(ch, acct, to, chain, interval, until, &counters).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn account_nonce(q: &mut QueryClient<Channel>, a: &Address) -> Option<u64> {
    q.get_account(pb::GetAccountRequest {
        address: a.0.to_vec(),
    })
    .await
    .ok()
    .map(|r| r.into_inner().nonce)
}

/// The nonce to use after a refusal with `message` of a transaction with
/// `nonce`, from what the node said; `None` when the message does not tell
/// (then the account is read again).
pub fn nonce_after_refusal(nonce: u64, message: &str) -> Option<u64> {
    let number_after = |marker: &str| -> Option<u64> {
        let tail = message.rsplit_once(marker)?.1;
        let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    // "... the next acceptable nonce is N", "... the account's next nonce is N"
    if let Some(n) = number_after("nonce is ") {
        return Some(n);
    }
    // "wrong nonce: expected N, got M" (the committed next nonce)
    if let Some(n) = number_after("expected ") {
        return Some(n);
    }
    // Taken by a pending transaction (perhaps our own whose answer was
    // lost): the next one is free or tells which is.
    if message.contains("already has nonce") || message.contains("already in the mempool") {
        return Some(nonce + 1);
    }
    None
}

async fn worker(
    ch: Channel,
    acct: Account,
    to: Address,
    chain: ChainId,
    interval: Duration,
    until: Instant,
    counters: &LoadCounters,
) {
    let mut query = QueryClient::new(ch.clone());
    let mut staking = StakingClient::new(ch);
    let mut nonce = account_nonce(&mut query, &acct.address).await.unwrap_or(0);
    let mut tick = tokio::time::interval(interval);
    // A worker that falls behind skips beats rather than bursting later.
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(until) => return,
        }
        if Instant::now() >= until {
            return;
        }
        let body = pb::TxBody {
            chain_id: chain.to_string(),
            nonce,
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: AMOUNT.to_string(),
            })),
            fee: agora_node::client::tx::DEFAULT_FEE.to_string(),
        };
        let tx = sign_transaction(&chain, &acct.key, body);
        counters.submitted.fetch_add(1, Ordering::Relaxed);
        let r = staking
            .transfer(pb::SubmitTxRequest {
                tx: Some(tx),
                wait_for_commit: false,
                timeout_ms: 0,
            })
            .await;
        match r {
            Ok(_) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                nonce += 1;
            }
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                ) =>
            {
                // Unknown outcome: the same transaction goes again (signing
                // is deterministic, so if it was admitted the node answers
                // "already in the mempool" and the worker moves on).
                counters.failed.fetch_add(1, Ordering::Relaxed);
                counters.note_refusal(s.message());
            }
            Err(s) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                counters.note_refusal(s.message());
                counters.resyncs.fetch_add(1, Ordering::Relaxed);
                nonce = match nonce_after_refusal(nonce, s.message()) {
                    Some(n) => n,
                    None => account_nonce(&mut query, &acct.address)
                        .await
                        .unwrap_or(nonce),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_share_the_rate() {
        assert_eq!(worker_interval(200.0, 16), Some(Duration::from_millis(80)));
        assert_eq!(worker_interval(20.0, 4), Some(Duration::from_millis(200)));
        assert_eq!(worker_interval(0.0, 4), None);
        assert_eq!(worker_interval(f64::NAN, 4), None);
        assert_eq!(worker_interval(10.0, 0), None);
    }

    #[test]
    fn nonces_after_refusals() {
        let f = nonce_after_refusal;
        assert_eq!(
            f(7, "nonce 7 leaves a gap; the next acceptable nonce is 5"),
            Some(5)
        );
        assert_eq!(
            f(
                2,
                "rejected: nonce 2 already used; the account's next nonce is 12"
            ),
            Some(12)
        );
        assert_eq!(f(3, "rejected: wrong nonce: expected 14, got 3"), Some(14));
        assert_eq!(f(3, "a pending transaction already has nonce 3"), Some(4));
        assert_eq!(f(9, "transaction already in the mempool"), Some(10));
        assert_eq!(f(9, "mempool full"), None);
    }
}
