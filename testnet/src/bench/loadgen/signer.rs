//! Transactions signed ahead of time: a thread signs transfers round-robin
//! over the funded accounts, each account's nonces in order, into a bounded
//! queue that the scheduler drains at the offered rate, so signing never
//! limits the submission rate (until the queue runs dry, which the report
//! shows as `signer_behind`).
//!
//! When a submission of account `a` at nonce `n` is refused, everything the
//! thread already signed for `a` after `n` is useless (the node wants
//! contiguous nonces). [`Accounts::reset`] bumps the account's epoch and
//! makes the thread restart it at `n`; a queued transaction of an older
//! epoch is dropped unsent if its nonce is at or above a restart point since
//! its epoch (those below are still needed, or the account would have a gap).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use agora_proto::v1 as pb;
use agora_validator::signing::sign_transaction;
use agora_validator::{Address, ChainId, Hash};
use tokio::sync::mpsc;

use super::{AMOUNT, Account};

/// One pre-signed transaction.
#[derive(Debug)]
pub struct Signed {
    /// Index of the sending account.
    pub account: usize,
    /// The account's epoch when it was signed.
    pub epoch: u64,
    /// Its nonce.
    pub nonce: u64,
    /// Its hash.
    pub hash: Hash,
    /// The transaction.
    pub tx: pb::Transaction,
}

#[derive(Debug, Default, Clone)]
struct Ctl {
    epoch: u64,
    reset_to: Option<u64>,
    /// Restart nonce of each epoch change so far (`cuts[e]` ended epoch `e`).
    cuts: Vec<u64>,
}

impl Ctl {
    fn wants(&self, epoch: u64, nonce: u64) -> bool {
        let from = usize::try_from(epoch).unwrap_or(usize::MAX);
        self.cuts
            .get(from..)
            .is_none_or(|c| c.iter().all(|cut| nonce < *cut))
    }
}

/// Per-account epochs and pending resets, shared by the signer and the submitters.
#[derive(Debug)]
pub struct Accounts {
    ctl: Mutex<Vec<Ctl>>,
}

impl Accounts {
    #[cfg(test)]
    pub fn new_for_test(n: usize) -> Self {
        Self::new(n)
    }

    fn new(n: usize) -> Self {
        Self {
            ctl: Mutex::new(vec![Ctl::default(); n]),
        }
    }

    /// Whether `s` is still to be sent: signed in the current epoch, or
    /// below every restart point since its epoch.
    pub fn is_current(&self, s: &Signed) -> bool {
        self.ctl
            .lock()
            .map(|c| c.get(s.account).is_some_and(|c| c.wants(s.epoch, s.nonce)))
            .unwrap_or(false)
    }

    /// Restarts `account` at `nonce` unless an earlier restart already
    /// dropped that transaction (a refusal of a dropped nonce is a
    /// consequence of that restart). Returns whether it reset.
    pub fn reset(&self, account: usize, epoch: u64, nonce: u64) -> bool {
        let Ok(mut c) = self.ctl.lock() else {
            return false;
        };
        match c.get_mut(account) {
            Some(ctl) if ctl.wants(epoch, nonce) => {
                ctl.epoch += 1;
                ctl.cuts.push(nonce);
                ctl.reset_to = Some(nonce);
                true
            }
            _ => false,
        }
    }

    /// The epoch to sign `account` in now, and the nonce to restart at if reset.
    fn take(&self, account: usize) -> (u64, Option<u64>) {
        match self.ctl.lock() {
            Ok(mut c) => match c.get_mut(account) {
                Some(ctl) => (ctl.epoch, ctl.reset_to.take()),
                None => (0, None),
            },
            Err(_) => (0, None),
        }
    }
}

/// Starts the signing thread; it stops when `stop` is set or the queue closes.
/// `nonces` are the accounts' next nonces when the load starts.
pub fn start(
    accounts: Vec<Account>,
    nonces: Vec<u64>,
    chain: ChainId,
    fee: u128,
    queue: usize,
    stop: Arc<AtomicBool>,
) -> (mpsc::Receiver<Signed>, Arc<Accounts>) {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let ctl = Arc::new(Accounts::new(accounts.len()));
    let shared = ctl.clone();
    std::thread::spawn(move || {
        let n = accounts.len();
        let to: Vec<Address> = (0..n).map(|k| accounts[(k + 1) % n].address).collect();
        let mut next = nonces;
        let mut k = 0usize;
        while n > 0 && !stop.load(Ordering::Relaxed) {
            let (epoch, reset) = shared.take(k);
            if let Some(r) = reset {
                next[k] = r;
            }
            let body = pb::TxBody {
                chain_id: chain.to_string(),
                nonce: next[k],
                kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                    to: to[k].0.to_vec(),
                    amount: AMOUNT.to_string(),
                })),
                fee: fee.to_string(),
            };
            let signed = sign_transaction(&chain, &accounts[k].key, body);
            let s = Signed {
                account: k,
                epoch,
                nonce: next[k],
                hash: agora_validator::block::tx_hash(&signed),
                tx: signed,
            };
            if tx.blocking_send(s).is_err() {
                return;
            }
            next[k] += 1;
            k = (k + 1) % n;
        }
    });
    (rx, ctl)
}
