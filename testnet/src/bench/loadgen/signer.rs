//! Transactions signed ahead of time: a thread signs transfers round-robin
//! over the funded accounts, each account's nonces in order, into a bounded
//! queue that the scheduler drains at the offered rate. It signs `budget`
//! fresh transactions (the whole run's worth, before the measurement
//! starts: the bench waits for them) and afterwards only re-signs accounts
//! that were restarted, so the generator's signing does not take CPU from
//! the nodes it measures on a shared machine. A queue that runs dry shows in
//! the report as `signer_behind`.
//!
//! When a submission of account `a` at nonce `n` is refused, everything the
//! thread already signed for `a` after `n` is useless (the node wants
//! contiguous nonces). [`Accounts::reset`] bumps the account's epoch and
//! makes the thread restart it at `n`; a queued transaction of an older
//! epoch is dropped unsent if its nonce is at or above a restart point since
//! its epoch (those below are still needed, or the account would have a gap).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// What the signing thread is given.
pub struct SignerPlan {
    /// The accounts, in order.
    pub accounts: Vec<Account>,
    /// Their next nonces when the load starts.
    pub nonces: Vec<u64>,
    /// The chain signed for.
    pub chain: ChainId,
    /// The fee of each transfer.
    pub fee: u128,
    /// Queued transactions at most (the channel's bound).
    pub queue: usize,
    /// Transfers signed before anything is queued, spread evenly over the
    /// accounts from their first nonces.
    pub presign: usize,
}

/// The signing thread's outputs: the queue, the accounts' epochs, and the
/// progress counters.
pub type SignerHandles = (mpsc::Receiver<Signed>, Arc<Accounts>, Arc<SignerProgress>);

/// How far the signing thread has got.
#[derive(Debug, Default)]
pub struct SignerProgress {
    /// Transfers signed before the run (the bench waits for all of them).
    pub presigned: AtomicU64,
    /// Signatures made after that (nonces past the pre-signed ones).
    pub signed_late: AtomicU64,
}

/// Starts the signing thread; it stops when `stop` is set or the queue closes.
pub fn start(plan: SignerPlan, stop: Arc<AtomicBool>) -> SignerHandles {
    let (tx, rx) = mpsc::channel(plan.queue.max(1));
    let ctl = Arc::new(Accounts::new(plan.accounts.len()));
    let progress = Arc::new(SignerProgress::default());
    let (shared, p) = (ctl.clone(), progress.clone());
    std::thread::spawn(move || sign_loop(plan, &shared, &p, &tx, &stop));
    (rx, ctl, progress)
}

/// Transfers for the plan's accounts, and the pre-signed ones by account
/// and nonce (from each account's first nonce).
struct Signer {
    plan: SignerPlan,
    to: Vec<Address>,
    presigned: Vec<Vec<pb::Transaction>>,
}

impl Signer {
    fn sign(&self, k: usize, nonce: u64) -> pb::Transaction {
        let body = pb::TxBody {
            chain_id: self.plan.chain.to_string(),
            nonce,
            kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                to: self.to[k].0.to_vec(),
                amount: AMOUNT.to_string(),
            })),
            fee: self.plan.fee.to_string(),
        };
        sign_transaction(&self.plan.chain, &self.plan.accounts[k].key, body)
    }

    /// Account `k`'s transfer at `nonce`: the pre-signed one if there is
    /// one (a restarted account asks for the same nonces again), else
    /// signed now.
    fn transfer(&self, k: usize, nonce: u64, progress: &SignerProgress) -> pb::Transaction {
        let first = self.plan.nonces[k];
        let pre = nonce
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.presigned[k].get(i));
        match pre {
            Some(t) => t.clone(),
            None => {
                progress.signed_late.fetch_add(1, Ordering::Relaxed);
                self.sign(k, nonce)
            }
        }
    }
}

/// Pre-signs the plan's transfers, then queues them round-robin over the
/// accounts, each account's nonces in order, restarting an account where
/// a refusal asks it to.
fn sign_loop(
    plan: SignerPlan,
    shared: &Accounts,
    progress: &SignerProgress,
    tx: &mpsc::Sender<Signed>,
    stop: &AtomicBool,
) {
    let n = plan.accounts.len();
    if n == 0 {
        return;
    }
    let to: Vec<Address> = (0..n).map(|k| plan.accounts[(k + 1) % n].address).collect();
    let per_account = plan.presign.div_ceil(n);
    let mut signer = Signer {
        plan,
        to,
        presigned: vec![Vec::with_capacity(per_account); n],
    };
    // Round-robin, so that a pre-signing cut short still covers every account.
    for i in 0..per_account as u64 {
        for k in 0..n {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let t = signer.sign(k, signer.plan.nonces[k] + i);
            signer.presigned[k].push(t);
            progress.presigned.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut next = signer.plan.nonces.clone();
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (epoch, reset) = shared.take(k);
        if let Some(r) = reset {
            next[k] = r;
        }
        let t = signer.transfer(k, next[k], progress);
        let s = Signed {
            account: k,
            epoch,
            nonce: next[k],
            hash: agora_validator::block::tx_hash(&t),
            tx: t,
        };
        if tx.blocking_send(s).is_err() {
            return;
        }
        next[k] += 1;
        k = (k + 1) % n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::AccountSecretKey;
    use std::time::{Duration, Instant};

    /// The next queued transaction still to be sent: (account, nonce, epoch).
    fn next(rx: &mut mpsc::Receiver<Signed>, ctl: &Accounts) -> (usize, u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = rx.try_recv() {
                if ctl.is_current(&s) {
                    return (s.account, s.nonce, s.epoch);
                }
                continue;
            }
            assert!(Instant::now() < deadline, "nothing signed within 10 s");
            std::thread::yield_now();
        }
    }

    /// Everything due is pre-signed before the first transaction is
    /// queued; a restarted account gets its pre-signed transactions again
    /// (no signing during the run), and only nonces past the pre-signed
    /// ones are signed late.
    #[test]
    fn the_run_takes_presigned_transfers_and_restarts_reuse_them() {
        let key = AccountSecretKey::from_seed(&[1; 32]);
        let address = Address::of_account(&key.public_key());
        let plan = SignerPlan {
            accounts: vec![Account { key, address }],
            nonces: vec![3],
            chain: ChainId::new("signer-test").expect("chain"),
            fee: 1_000,
            queue: 1,
            presign: 10,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (mut rx, ctl, progress) = start(plan, stop.clone());
        assert_eq!(next(&mut rx, &ctl), (0, 3, 0));
        assert_eq!(progress.presigned.load(Ordering::Relaxed), 10);
        // Restarted at 3: nonces 3 and 4 come again, from the table (the
        // thread is at most two ahead, well inside the ten pre-signed).
        assert!(ctl.reset(0, 0, 3));
        assert_eq!(next(&mut rx, &ctl), (0, 3, 1));
        assert_eq!(next(&mut rx, &ctl), (0, 4, 1));
        assert_eq!(progress.signed_late.load(Ordering::Relaxed), 0);
        // Nonce 13 was not pre-signed: it is signed when due.
        while next(&mut rx, &ctl) != (0, 13, 1) {}
        assert!(progress.signed_late.load(Ordering::Relaxed) >= 1);
        stop.store(true, Ordering::Relaxed);
    }
}
