//! The re-check after a commit ([`Mempool::update`]).

use std::collections::HashSet;

use agora_validator::{Address, Hash};

use super::{Changed, CheckMode, Mempool, TxChecker};

impl<D> Mempool<D> {
    /// After a commit: drops the transactions the block included, then
    /// re-checks the others whose verdict the commit may have changed
    /// (`changed`; all of them for [`Changed::Everything`]) and drops those
    /// that became invalid (and, per sender, every later nonce). Returns the
    /// dropped-as-invalid ones with the reason.
    ///
    /// Why not re-check all: the pool holds up to `max_txs` (10,000 by
    /// default) and a commit came to re-check all of them, at every height,
    /// while a backlog waited (8.9% of a validator's consensus thread at
    /// 5,000 tx/s offered). A sender's verdicts depend only on its own
    /// queue and the state its transactions read, so a sender none of whose
    /// inputs changed keeps them.
    pub fn update(
        &mut self,
        included: &[Hash],
        changed: Changed<'_>,
        checker: &impl TxChecker<D>,
    ) -> Vec<(Hash, String)> {
        let mut touched: HashSet<Address> = HashSet::new();
        for h in included {
            if let Some(seq) = self.by_hash.get(h).copied()
                && let Some(e) = self.remove_seq(seq)
            {
                touched.insert(e.sender);
            }
        }
        let mut dropped = Vec::new();
        for sender in self.senders_to_recheck(&touched, changed) {
            self.recheck_sender(sender, checker, &mut dropped);
        }
        dropped
    }

    /// The senders whose queues a commit may have made invalid: those the
    /// block included transactions of, and those with a transaction that
    /// reads a changed account (or whose reads are unknown).
    fn senders_to_recheck(&self, touched: &HashSet<Address>, changed: Changed<'_>) -> Vec<Address> {
        self.by_sender
            .iter()
            .filter(|(sender, nonces)| {
                touched.contains(*sender)
                    || match changed {
                        Changed::Everything => true,
                        Changed::Accounts(accounts) => nonces.values().any(|seq| {
                            self.by_seq
                                .get(seq)
                                .and_then(|e| e.reads)
                                .is_none_or(|r| r.iter().any(|a| accounts.contains(a)))
                        }),
                    }
            })
            .map(|(sender, _)| *sender)
            .collect()
    }

    /// Re-checks `sender`'s queue in nonce order against the state alone;
    /// from the first that fails (or no longer follows the account's nonce)
    /// on, its transactions are removed and pushed on `dropped` with the
    /// reason.
    fn recheck_sender(
        &mut self,
        sender: Address,
        checker: &impl TxChecker<D>,
        dropped: &mut Vec<(Hash, String)>,
    ) {
        let seqs: Vec<u64> = self
            .by_sender
            .get(&sender)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        let mut expected: Option<u64> = None;
        let mut failed: Option<String> = None;
        for seq in seqs {
            let Some(e) = self.by_seq.get(&seq) else {
                continue;
            };
            if failed.is_none() {
                match checker.check(&e.tx, &e.decoded, CheckMode::Recheck) {
                    Err(r) => failed = Some(r.to_string()),
                    Ok(adm) => {
                        let want = *expected.get_or_insert(adm.account_nonce);
                        if adm.nonce != want {
                            failed = Some(format!(
                                "nonce {} no longer follows the account's next nonce {want}",
                                adm.nonce
                            ));
                        } else {
                            expected = Some(want + 1);
                        }
                    }
                }
                if failed.is_none() {
                    continue;
                }
            }
            if let Some(e) = self.remove_seq(seq) {
                let reason = failed.clone().unwrap_or_default();
                dropped.push((e.hash, reason));
            }
        }
    }
}
