//! The mempool: transactions waiting for a block.
//!
//! Bounded in count and in bytes; de-duplicated by transaction hash; each
//! transaction is checked at admission by a caller-supplied [`TxChecker`]
//! against committed state (the node plugs in the ledger's
//! `recheck_decoded`: fee, balance, nonce, staking rules).
//!
//! Decode once: the pool keeps, beside each transaction, what its host
//! decoded it to (`D`; the node stores the [`agora_validator::ledger::DecodedTx`]
//! whose signature its verifier checked). The checker sees that decoded
//! form, so the re-check after a commit is a state check with no decoding,
//! and block execution takes the decoded form of every transaction the
//! pool holds ([`Mempool::decoded`]). Per sender, pending nonces must be contiguous
//! from the account's next nonce, so arrival order per sender *is* nonce
//! order, and a proposer reaping in arrival order never leaves a gap.
//! After each commit, [`Mempool::update`] removes the included transactions
//! and re-checks the rest against the new state.
//!
//! Fees (DESIGN §8): blocks are filled by fee per byte, highest first, each
//! sender's transactions still in nonce order (a heap over the senders'
//! next transactions). When the pool is full, a newcomer that pays more per
//! byte evicts the cheapest transaction that is last in its sender's queue
//! (so no sender is left with a nonce gap); one that pays less is refused
//! as `Full`, before its signature is checked. Both decisions read an index
//! of the senders' tails ordered by rate ([`tails`]): O(log senders) per
//! newcomer, not a scan of every sender (criterion `mempool/*`).

mod checker;
mod error;
mod fee_rate;
mod tails;
mod update;

pub use checker::{Admission, Changed, CheckMode, TxChecker};
pub use error::{MempoolError, api_error};
pub use fee_rate::FeeRate;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use agora_proto::v1::Transaction;
use agora_validator::block::tx_hash;
use agora_validator::{Address, Hash};
use prost::Message;

/// Limits of a [`Mempool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MempoolConfig {
    /// Transactions at most.
    pub max_txs: usize,
    /// Sum of encoded transaction sizes at most.
    pub max_bytes: usize,
    /// Largest single encoded transaction.
    pub max_tx_bytes: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_tx_bytes: 32 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry<D> {
    tx: Transaction,
    decoded: D,
    hash: Hash,
    size: usize,
    sender: Address,
    nonce: u64,
    fee: u128,
    reads: Option<[Address; 2]>,
}

impl<D> Entry<D> {
    fn rate(&self, seq: u64) -> FeeRate {
        FeeRate {
            fee: self.fee,
            size: self.size,
            seq,
        }
    }
}

/// The pool of pending transactions, each with what its host decoded it to (`D`).
#[derive(Debug)]
pub struct Mempool<D> {
    cfg: MempoolConfig,
    next_seq: u64,
    by_seq: BTreeMap<u64, Entry<D>>,
    by_hash: HashMap<Hash, u64>,
    by_sender: HashMap<Address, BTreeMap<u64, u64>>,
    /// Each sender's last transaction by fee per byte: what a full pool evicts.
    tails: tails::Tails,
    /// (account key, nonce) of every pending transaction: a peer's copy of
    /// one is dropped before it is hashed ([`Mempool::holds_nonce`]).
    key_nonces: HashSet<([u8; 32], u64)>,
    bytes: usize,
    /// Hashes evicted for a better-paying transaction since the last `take_evicted`.
    evicted: Vec<Hash>,
    /// Senders whose queue changed since the last [`Mempool::take_next_nonces`]:
    /// what the node's published next nonces must be refreshed for. Bound:
    /// at most one entry per distinct sender (the node drains it after
    /// every admission and every commit).
    touched: HashSet<Address>,
}

/// The (account key, nonce) index entry of a transaction; None if its key
/// is not 32 bytes (no valid account key is: such a transaction is refused
/// by its decoder).
fn key_nonce(tx: &Transaction, nonce: u64) -> Option<([u8; 32], u64)> {
    <[u8; 32]>::try_from(tx.public_key.as_slice())
        .ok()
        .map(|k| (k, nonce))
}

/// Bytes a transaction adds to an encoded block: the field key (1 byte), the
/// length prefix and the transaction itself.
pub fn block_cost(size: usize) -> usize {
    1 + prost::length_delimiter_len(size) + size
}

impl<D> Mempool<D> {
    /// An empty mempool with these limits.
    pub fn new(cfg: MempoolConfig) -> Self {
        Self {
            cfg,
            next_seq: 0,
            by_seq: BTreeMap::new(),
            by_hash: HashMap::new(),
            by_sender: HashMap::new(),
            tails: tails::Tails::default(),
            key_nonces: HashSet::new(),
            bytes: 0,
            evicted: Vec::new(),
            touched: HashSet::new(),
        }
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Sum of the pending transactions' encoded sizes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a transaction is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// A pending transaction by hash.
    pub fn get(&self, hash: &Hash) -> Option<&Transaction> {
        self.by_hash
            .get(hash)
            .and_then(|s| self.by_seq.get(s))
            .map(|e| &e.tx)
    }

    /// What the host decoded a pending transaction to, by hash.
    pub fn decoded(&self, hash: &Hash) -> Option<&D> {
        self.by_hash
            .get(hash)
            .and_then(|s| self.by_seq.get(s))
            .map(|e| &e.decoded)
    }

    /// Whether a pending transaction has `tx`'s account key and nonce. A
    /// peer's copy that does is dropped before it is hashed: it is the
    /// pending transaction again, or another one with its nonce, which
    /// admission would refuse (`NonceTaken`) after checking its signature.
    /// Relayed copies mostly arrive after the first was admitted (each
    /// relay admits before it relays), and hashing them was 5.7% of a
    /// validator's consensus thread at 3,000 tx/s.
    pub fn holds_nonce(&self, tx: &Transaction) -> bool {
        let nonce = tx.body.as_ref().map_or(0, |b| b.nonce);
        key_nonce(tx, nonce).is_some_and(|k| self.key_nonces.contains(&k))
    }

    /// The checks that cost nothing (size, duplicate, room), made before a
    /// transaction's signature is checked; `add` makes them again. Returns
    /// the transaction's hash.
    pub fn precheck(&self, tx: &Transaction) -> Result<Hash, MempoolError> {
        self.precheck_hashed(tx, tx_hash(tx))
    }

    /// [`Mempool::precheck`] with the transaction's hash already computed
    /// (by the decoder): hashing means encoding the transaction again.
    fn precheck_hashed(&self, tx: &Transaction, hash: Hash) -> Result<Hash, MempoolError> {
        debug_assert_eq!(hash, tx_hash(tx));
        let size = tx.encoded_len();
        if size > self.cfg.max_tx_bytes {
            return Err(MempoolError::TooLarge {
                size,
                max: self.cfg.max_tx_bytes,
            });
        }
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate);
        }
        if !self.has_room(size) {
            let rate = FeeRate::of_tx(tx, size, self.next_seq);
            if self
                .cheapest_tail(None)
                .is_none_or(|(_, r)| r.cmp_rate(&rate).is_ge())
            {
                return Err(self.full());
            }
        }
        Ok(hash)
    }

    fn has_room(&self, size: usize) -> bool {
        self.len() < self.cfg.max_txs && self.bytes + size <= self.cfg.max_bytes
    }

    fn full(&self) -> MempoolError {
        MempoolError::Full {
            txs: self.len(),
            bytes: self.bytes,
        }
    }

    /// The cheapest transaction per byte that is last in its sender's queue
    /// (evicting it leaves no gap), not counting `except`'s transactions.
    /// O(log senders): at most two index entries are looked at.
    fn cheapest_tail(&self, except: Option<Address>) -> Option<(u64, FeeRate)> {
        let (rate, _) = self.tails.cheapest_first(except).next()?;
        Some((rate.seq, rate))
    }

    /// The rate of `sender`'s last pending transaction.
    fn tail_rate(&self, sender: &Address) -> Option<FeeRate> {
        let (_, seq) = self.by_sender.get(sender)?.last_key_value()?;
        self.by_seq.get(seq).map(|e| e.rate(*seq))
    }

    /// The transactions to evict, in order, so that `size` more bytes fit
    /// beside a newcomer of `sender` paying `rate`: each the cheapest tail
    /// cheaper per byte than `rate` (not `sender`'s), a victim's
    /// predecessor becoming its sender's tail; `Full` if they run out.
    /// O(victims · log senders): the index gives the tails in order, and
    /// each victim exposes at most one new candidate.
    fn victims(
        &self,
        size: usize,
        rate: FeeRate,
        sender: Address,
    ) -> Result<Vec<u64>, MempoolError> {
        let mut victims = Vec::new();
        let (mut txs, mut bytes) = (self.len(), self.bytes);
        let mut tails = self.tails.cheapest_first(Some(sender)).peekable();
        let mut exposed: BTreeSet<(FeeRate, Address)> = BTreeSet::new();
        while txs >= self.cfg.max_txs || bytes + size > self.cfg.max_bytes {
            let from_exposed = exposed.first().copied();
            let pick = match (tails.peek().copied(), from_exposed) {
                (Some(t), Some(x)) if x < t => exposed.pop_first(),
                (Some(_), _) => tails.next(),
                (None, _) => exposed.pop_first(),
            };
            let Some((r, owner)) = pick.filter(|(r, _)| r.cmp_rate(&rate).is_lt()) else {
                return Err(self.full());
            };
            let e = &self.by_seq[&r.seq];
            txs -= 1;
            bytes -= e.size;
            victims.push(r.seq);
            let before = self.by_sender[&owner].range(..e.nonce).next_back();
            if let Some((_, &prev)) = before {
                exposed.insert((self.by_seq[&prev].rate(prev), owner));
            }
        }
        Ok(victims)
    }

    /// Evicts tail transactions cheaper per byte than `rate` until `size`
    /// more bytes fit, or fails with `Full` having evicted nothing.
    fn make_room(
        &mut self,
        size: usize,
        rate: FeeRate,
        sender: Address,
    ) -> Result<(), MempoolError> {
        let victims = self.victims(size, rate, sender)?;
        for seq in victims {
            if let Some(e) = self.remove_seq(seq) {
                self.evicted.push(e.hash);
            }
        }
        Ok(())
    }

    /// Hashes of the transactions evicted by better-paying ones since the last call.
    pub fn take_evicted(&mut self) -> Vec<Hash> {
        std::mem::take(&mut self.evicted)
    }

    /// The nonce `sender`'s next transaction must carry to follow its
    /// pending ones: one past its last pending nonce; None when it has
    /// none here (the account's committed nonce applies).
    pub fn next_nonce(&self, sender: &Address) -> Option<u64> {
        let (last, _) = self.by_sender.get(sender)?.last_key_value()?;
        Some(last + 1)
    }

    /// Each sender whose queue changed since the last call, with its
    /// [`Mempool::next_nonce`] now: what a published copy must be set to
    /// (None: removed). O(senders changed).
    pub fn take_next_nonces(&mut self) -> Vec<(Address, Option<u64>)> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .map(|s| (s, self.next_nonce(&s)))
            .collect()
    }

    /// Admits a transaction with its decoded form; returns its hash. Cheap
    /// checks (size, duplicate, room) run before the checker.
    pub fn add(
        &mut self,
        tx: Transaction,
        decoded: D,
        checker: &impl TxChecker<D>,
    ) -> Result<Hash, MempoolError> {
        let hash = tx_hash(&tx);
        self.add_hashed(tx, hash, decoded, checker)
    }

    /// [`Mempool::add`] for a transaction whose hash the decoder computed.
    pub fn add_hashed(
        &mut self,
        tx: Transaction,
        hash: Hash,
        decoded: D,
        checker: &impl TxChecker<D>,
    ) -> Result<Hash, MempoolError> {
        self.precheck_hashed(&tx, hash)?;
        let size = tx.encoded_len();
        let adm = checker
            .check(&tx, &decoded, CheckMode::New)
            .map_err(MempoolError::Rejected)?;
        self.check_nonce(&adm)?;
        if !self.has_room(size) {
            let rate = FeeRate {
                fee: adm.fee,
                size,
                seq: self.next_seq,
            };
            self.make_room(size, rate, adm.sender)?;
        }
        self.insert(tx, hash, decoded, size, adm);
        Ok(hash)
    }

    /// The admission's nonce must be its sender's next: the account's, or
    /// one past its last pending transaction (no gap, no replacement).
    fn check_nonce(&self, adm: &Admission) -> Result<(), MempoolError> {
        let expected = self
            .next_nonce(&adm.sender)
            .map_or(adm.account_nonce, |n| n.max(adm.account_nonce));
        if adm.nonce < adm.account_nonce {
            return Err(MempoolError::NonceTooLow {
                got: adm.nonce,
                next: adm.account_nonce,
            });
        }
        if adm.nonce < expected {
            return Err(MempoolError::NonceTaken {
                got: adm.nonce,
                next: expected,
            });
        }
        if adm.nonce > expected {
            return Err(MempoolError::NonceGap {
                got: adm.nonce,
                expected,
            });
        }
        Ok(())
    }

    /// Enters an admitted transaction (room already made) in every index:
    /// by sequence, hash, sender and nonce, key and nonce, and its sender's
    /// tail rate.
    fn insert(&mut self, tx: Transaction, hash: Hash, decoded: D, size: usize, adm: Admission) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let old_tail = self.tail_rate(&adm.sender);
        self.tails.replace(
            adm.sender,
            old_tail,
            Some(FeeRate {
                fee: adm.fee,
                size,
                seq,
            }),
        );
        self.by_hash.insert(hash, seq);
        if let Some(k) = key_nonce(&tx, adm.nonce) {
            self.key_nonces.insert(k);
        }
        self.by_sender
            .entry(adm.sender)
            .or_default()
            .insert(adm.nonce, seq);
        self.touched.insert(adm.sender);
        self.bytes += size;
        self.by_seq.insert(
            seq,
            Entry {
                tx,
                decoded,
                hash,
                size,
                sender: adm.sender,
                nonce: adm.nonce,
                fee: adm.fee,
                reads: adm.reads,
            },
        );
        debug_assert_eq!(
            self.tails.len(),
            self.by_sender.len(),
            "one tail per sender"
        );
        debug_assert!(
            self.by_sender[&adm.sender].last_key_value() == Some((&adm.nonce, &seq)),
            "a newcomer is its sender's last transaction"
        );
    }

    fn remove_seq(&mut self, seq: u64) -> Option<Entry<D>> {
        let e = self.by_seq.remove(&seq)?;
        self.by_hash.remove(&e.hash);
        if let Some(k) = key_nonce(&e.tx, e.nonce) {
            self.key_nonces.remove(&k);
        }
        debug_assert!(self.key_nonces.len() <= self.by_hash.len());
        let was_tail = self
            .by_sender
            .get(&e.sender)
            .and_then(|m| m.last_key_value())
            .is_some_and(|(n, _)| *n == e.nonce);
        self.touched.insert(e.sender);
        if let Some(m) = self.by_sender.get_mut(&e.sender) {
            m.remove(&e.nonce);
            if m.is_empty() {
                self.by_sender.remove(&e.sender);
            }
        }
        if was_tail {
            let new_tail = self.tail_rate(&e.sender);
            self.tails.replace(e.sender, Some(e.rate(seq)), new_tail);
        }
        debug_assert_eq!(
            self.tails.len(),
            self.by_sender.len(),
            "one tail per sender"
        );
        self.bytes -= e.size;
        Some(e)
    }

    /// Transactions for a block: highest fee per byte first (ties in
    /// arrival order), each sender's in nonce order, at most `max_txs`, with
    /// a total [`block_cost`] of at most `max_bytes`. A transaction that does
    /// not fit is skipped together with its sender's later ones, so the
    /// block never has a nonce gap.
    pub fn reap(&self, max_bytes: usize, max_txs: usize) -> Vec<Transaction> {
        let mut out = Vec::new();
        let mut used = 0usize;
        // One heap entry per sender: the rate of its next transaction.
        let mut heap: BinaryHeap<(FeeRate, Address)> = self
            .by_sender
            .iter()
            .filter_map(|(s, nonces)| {
                let seq = *nonces.values().next()?;
                Some((self.by_seq.get(&seq)?.rate(seq), *s))
            })
            .collect();
        while let Some((rate, sender)) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let Some(e) = self.by_seq.get(&rate.seq) else {
                continue;
            };
            let cost = block_cost(e.size);
            if used + cost > max_bytes {
                continue;
            }
            used += cost;
            out.push(e.tx.clone());
            let next = self
                .by_sender
                .get(&sender)
                .and_then(|n| n.range(e.nonce + 1..).next())
                .map(|(_, seq)| *seq);
            if let Some(seq) = next
                && let Some(n) = self.by_seq.get(&seq)
            {
                heap.push((n.rate(seq), sender));
            }
        }
        out
    }
}

/// What the engine sees of the node's mempool: blocks are filled from it
/// (by fee per byte) and block execution takes the decoded, verified form
/// of every transaction it holds.
impl agora_validator::engine::MempoolView for Mempool<agora_validator::ledger::DecodedTx> {
    fn reap(&self, max_bytes: usize, max_txs: usize) -> Vec<Transaction> {
        Mempool::reap(self, max_bytes, max_txs)
    }

    fn decoded(&self, hash: &Hash) -> Option<&agora_validator::ledger::DecodedTx> {
        Mempool::decoded(self, hash)
    }
}

#[cfg(test)]
mod tests;
