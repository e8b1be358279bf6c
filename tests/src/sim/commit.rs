//! What the host does when its engine commits a block: the checker sees
//! it first, the first honest decision of the height is recorded, the node
//! keeps the block, its certificate and the state after it, and the next
//! height is scheduled.

use super::host::StoredBlock;
use super::{Event, Sim, checks};
use agora_validator::Address;
use agora_validator::consensus::evidence::infraction_key;
use agora_validator::crypto::Hash;
use agora_validator::engine::CommitRecord;

/// The first honest decision of a height.
#[derive(Debug, Clone)]
pub(super) struct Decided {
    /// The block decided.
    pub(super) hash: Hash,
    /// The honest node that decided it first.
    pub(super) node: usize,
    /// The app hash that node computed after the block.
    pub(super) app_hash: Hash,
    /// When (simulated ms).
    pub(super) time: u64,
    /// Whether an honest validator created the block.
    pub(super) honest_creator: bool,
    /// Validators the block slashed for double signing.
    pub(super) slashed: Vec<Address>,
    /// Whether it changed the validator set (of height + 2).
    pub(super) set_change: bool,
    /// Transactions it executed successfully.
    pub(super) txs_ok: u64,
}

impl Sim {
    /// Node `i`'s engine committed `rec`: checked, recorded, kept; the
    /// next height starts after the node's commit pause (or earlier, on a
    /// proposal, see `engine/early_start.rs`) and the node announces
    /// its new height.
    pub(super) fn on_commit(&mut self, i: usize, rec: CommitRecord) {
        checks::on_commit(self, i, &rec);
        self.record_decision(i, &rec);
        let next = rec.height + 1;
        let time = rec.block.header.as_ref().map_or(0, |h| h.time_ms);
        let configured = self.sc.commit_pauses_ms[i];
        let clock = self.clock(i);
        let pause = self.nodes[i]
            .engine
            .as_ref()
            .map_or(configured, |e| e.start_pause_ms(configured, time, clock));
        self.keep_commit(i, rec);
        self.maybe_snapshot(i, next - 1);
        let epoch = self.nodes[i].epoch;
        self.push(
            self.now + pause,
            Event::StartHeight {
                node: i,
                epoch,
                height: next,
            },
        );
        self.send_status(i);
        if self.honest(i) {
            self.update_required();
        }
    }

    /// Records the decision if it is the first honest one of its height.
    fn record_decision(&mut self, i: usize, rec: &CommitRecord) {
        let h = rec.height;
        let honest_creator = rec
            .block
            .header
            .as_ref()
            .and_then(|hd| Address::from_slice(&hd.proposer_address).ok())
            .and_then(|a| self.g.addresses.iter().position(|x| *x == a))
            .is_some_and(|j| self.honest(j));
        if self.honest(i) && !self.decided.contains_key(&h) {
            let slashed = rec
                .result
                .evidence
                .iter()
                .flat_map(|r| r.iter().flatten().map(|e| e.validator))
                .collect();
            self.decided.insert(
                h,
                Decided {
                    hash: rec.block_hash,
                    node: i,
                    app_hash: rec.app_hash,
                    time: self.now,
                    honest_creator,
                    slashed,
                    set_change: rec.validator_set_change.is_some(),
                    txs_ok: rec.result.receipts.iter().filter(|r| r.is_ok()).count() as u64,
                },
            );
        }
    }

    /// What node `i` keeps of a commit: its store takes the block with its
    /// certificate, the state changes, the new validator set and the pool's
    /// removals, and drops the height's WAL; the offenders the block's
    /// evidence names are noted; its mempool drops what the block included
    /// or the new state refuses.
    fn keep_commit(&mut self, i: usize, rec: CommitRecord) {
        let h = rec.height;
        let n = &mut self.nodes[i];
        n.store.wal.clear();
        n.store.wal_durable = 0;
        for id in &rec.evidence_removed {
            n.store.evidence.remove(id);
        }
        if let Some((at, set)) = rec.validator_set_change {
            n.store.sets.insert(at, set);
        }
        for ev in &rec.block.evidence {
            if let Some(k) = infraction_key(ev) {
                n.evidence_offenders.insert(k.offender);
            }
        }
        if let Some(e) = n.engine.as_ref() {
            n.mempool.on_commit(&rec.block, e.ledger());
        }
        if n.store.leaves.is_empty() {
            n.store.leaves = self.g.ledger.leaves().into_iter().collect();
        }
        for (k, v) in rec.state_changes {
            match v {
                Some(v) => n.store.leaves.insert(k, v),
                None => n.store.leaves.remove(&k),
            };
        }
        n.store.blocks.insert(
            h,
            StoredBlock {
                block: rec.block,
                block_hash: rec.block_hash,
                certificate: rec.certificate,
                seed: rec.seed,
                app_hash: rec.app_hash,
            },
        );
    }
}
