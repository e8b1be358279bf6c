//! A simulated node's mempool: what the engine reaps blocks from.
//!
//! Like the node's, it decodes and verifies each transaction once, at
//! admission, keeps the decoded form beside it (the engine executes a block
//! without decoding or verifying those again), re-checks what is pending
//! against the state after every commit, and drops what a block included.
//! It is volatile: a crash empties it.

use agora_proto::v1 as pb;
use agora_validator::block::tx_hash;
use agora_validator::crypto::Hash;
use agora_validator::engine::MempoolView;
use agora_validator::ledger::{DecodedTx, Ledger, tx};
use agora_validator::{Address, ChainId};
use prost::Message;
use std::collections::BTreeMap;

/// Pending transactions of one node.
#[derive(Debug, Default)]
pub struct SimMempool {
    txs: BTreeMap<Hash, (pb::Transaction, DecodedTx)>,
    /// Per sender, by nonce.
    by_sender: BTreeMap<Address, BTreeMap<u64, Hash>>,
    /// Each sender's next nonce in the state after the last commit.
    next_nonce: BTreeMap<Address, u64>,
}

impl SimMempool {
    /// Admits `t` if it decodes, its signature verifies and the state
    /// after the last commit accepts it. Returns whether it is new.
    pub fn add(&mut self, chain: &ChainId, t: &pb::Transaction, ledger: &Ledger) -> bool {
        let hash = tx_hash(t);
        if self.txs.contains_key(&hash) {
            return false;
        }
        let Ok(d) = tx::decode(chain, t) else {
            return false;
        };
        if d.verify_signature().is_err() {
            return false;
        }
        let Ok(check) = ledger.recheck_decoded(&d) else {
            return false;
        };
        let slot = self.by_sender.entry(d.signer).or_default();
        if slot.contains_key(&d.nonce) {
            return false; // one transaction per (sender, nonce)
        }
        slot.insert(d.nonce, hash);
        self.next_nonce.insert(d.signer, check.next_nonce);
        self.txs.insert(hash, (t.clone(), d));
        true
    }

    /// After a commit: drops what `block` included and what the new state
    /// refuses (spent nonces, unpayable fees, broken rules).
    pub fn on_commit(&mut self, block: &pb::Block, ledger: &Ledger) {
        for t in &block.txs {
            self.remove(&tx_hash(t));
        }
        let mut gone = Vec::new();
        for (hash, (_, d)) in &self.txs {
            if ledger.recheck_decoded(d).is_err() {
                gone.push(*hash);
            }
        }
        for h in gone {
            self.remove(&h);
        }
        self.next_nonce = self
            .by_sender
            .keys()
            .map(|a| (*a, ledger.account(a).nonce))
            .collect();
    }

    fn remove(&mut self, hash: &Hash) {
        if let Some((_, d)) = self.txs.remove(hash)
            && let Some(slot) = self.by_sender.get_mut(&d.signer)
        {
            slot.remove(&d.nonce);
            if slot.is_empty() {
                self.by_sender.remove(&d.signer);
            }
        }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }
}

impl MempoolView for SimMempool {
    /// Each sender's run of consecutive nonces from its next one, senders
    /// in address order, within the budget.
    fn reap(&self, max_bytes: usize, max_txs: usize) -> Vec<pb::Transaction> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (sender, slot) in &self.by_sender {
            let first = self.next_nonce.get(sender).copied().unwrap_or(0);
            for (want, (nonce, hash)) in (first..).zip(slot) {
                if *nonce != want {
                    break;
                }
                let (t, _) = &self.txs[hash];
                let len = t.encoded_len() + 8;
                if out.len() == max_txs || bytes + len > max_bytes {
                    return out;
                }
                bytes += len;
                out.push(t.clone());
            }
        }
        out
    }

    fn decoded(&self, hash: &Hash) -> Option<&DecodedTx> {
        self.txs.get(hash).map(|(_, d)| d)
    }
}
