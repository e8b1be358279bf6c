//! What a simulated node keeps: its durable store (what the real node
//! persists in redb) and the volatile rest, lost on a crash.

use super::byzantine::Byzantine;
use super::mempool::SimMempool;
use super::scenario::Behaviour;
use agora_node::sync::RESPONSE_BUDGET;
use agora_proto::v1 as pb;
use agora_validator::consensus::evidence::InfractionKey;
use agora_validator::consensus::{Input, SigningState};
use agora_validator::crypto::Hash;
use agora_validator::engine::sync::serve::{BlockSource, serve_request};
use agora_validator::engine::{Engine, Restored, Tip};
use agora_validator::ledger::Ledger;
use agora_validator::{Address, CommitCertificate, Height, ValidatorSet};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

/// A committed block as the store keeps it.
#[derive(Debug, Clone)]
pub struct StoredBlock {
    /// The block.
    pub block: pb::Block,
    /// Its hash.
    pub block_hash: Hash,
    /// The certificate that committed it here.
    pub certificate: CommitCertificate,
    /// seed of its height.
    pub seed: Hash,
    /// App hash of the state after it.
    pub app_hash: Hash,
}

/// What survives a crash: the signing state, the WAL of the current
/// height, the committed blocks with their certificates, the state after
/// the last one, the validator-set changes and the evidence pool.
#[derive(Debug, Default)]
pub struct Store {
    /// The last signing state persisted.
    pub signing: Option<SigningState>,
    /// Inputs of the height being decided, in order.
    pub wal: Vec<Input>,
    /// How many of `wal`'s records are durable. As in the node, records
    /// wait in memory until the host syncs the WAL: before a signing state
    /// when its `WalSync` says so, and at each commit. A crash loses the
    /// rest.
    pub wal_durable: usize,
    /// Committed blocks by height.
    pub blocks: BTreeMap<Height, StoredBlock>,
    /// The state leaves after the last block, as a node stores them
    /// (empty until the first commit writes the genesis leaves; then each
    /// block's `state_changes` applied).
    pub leaves: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Validator sets by the height they take effect (1 and 2 from
    /// genesis, then each change).
    pub sets: BTreeMap<Height, ValidatorSet>,
    /// Evidence-pool entries.
    pub evidence: BTreeMap<Hash, pb::Evidence>,
}

impl Store {
    /// Height of the last committed block.
    pub fn tip_height(&self) -> Height {
        self.blocks.keys().next_back().copied().unwrap_or(0)
    }

    /// The validator set in effect at `h`.
    pub fn set_at(&self, h: Height) -> Option<&ValidatorSet> {
        self.sets.range(..=h).next_back().map(|(_, s)| s)
    }

    /// What the engine is rebuilt from at boot.
    pub fn restore(&self, genesis: &Ledger, seed0: Hash) -> Result<Restored, String> {
        let evidence = self.evidence.values().cloned().collect();
        let Some(last) = self.blocks.values().next_back() else {
            return Ok(Restored {
                ledger: genesis.clone(),
                tip: Tip {
                    seed: seed0,
                    block_hash: [0; 32],
                    time_ms: 0,
                    certificate: None,
                },
                evidence,
            });
        };
        if self.leaves.is_empty() {
            return Err("no state stored".into());
        }
        let ledger = Ledger::from_leaves(&self.leaves).map_err(|e| e.to_string())?;
        Ok(Restored {
            ledger,
            tip: Tip {
                seed: last.seed,
                block_hash: last.block_hash,
                time_ms: last.block.header.as_ref().map_or(0, |h| h.time_ms),
                certificate: Some(last.certificate.clone()),
            },
            evidence,
        })
    }
}

impl BlockSource for Store {
    type Error = Infallible;

    fn latest_height(&self) -> Result<u64, Infallible> {
        Ok(self.tip_height())
    }

    fn certified_block(&self, height: u64) -> Result<Option<pb::CertifiedBlock>, Infallible> {
        Ok(self.blocks.get(&height).map(|b| pb::CertifiedBlock {
            block: Some(b.block.clone()),
            certificate: Some(b.certificate.to_proto()),
        }))
    }

    fn lowest_height(&self) -> Result<u64, Infallible> {
        Ok(self.blocks.keys().next().copied().unwrap_or(0))
    }
}

/// An honest answer to a block request from this store, by the engine's
/// rule and within the node's byte budget, as the node makes it.
pub fn serve_blocks(store: &Store, from: Height, count: u32) -> pb::BlockResponse {
    let req = pb::BlockRequest {
        from_height: from,
        count,
    };
    serve_request(store, &req, RESPONSE_BUDGET).unwrap_or_else(|e| match e {})
}

/// Counters of one node, over all its lives.
#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    /// Blocks applied through sync.
    pub synced: u64,
    /// Sync requests sent, by the peer asked.
    pub asked: BTreeMap<usize, u64>,
    /// Penalties charged, by peer.
    pub penalized: BTreeMap<usize, u64>,
    /// Proposals judged invalid.
    pub invalid_blocks: u64,
    /// Restarts.
    pub restarts: u64,
    /// Crashes inside a signing-state write.
    pub torn_crashes: u64,
    /// Bad snapshots its join charged.
    pub snapshot_charges: u64,
    /// Restarts while joining by state sync (the join starts over).
    pub rejoins: u64,
    /// Restarts after joining by state sync (from the installed base).
    pub restarts_after_join: u64,
}

/// One validator's host.
pub struct Node {
    /// Its behaviour.
    pub behaviour: Behaviour,
    /// Its Byzantine module, if any.
    pub byz: Option<Box<dyn Byzantine>>,
    /// The engine (None while crashed, or for a silent validator).
    pub engine: Option<Engine<usize>>,
    /// Bumped on every restart: timers and connections of a previous life
    /// are dead.
    pub epoch: u64,
    /// Durable.
    pub store: Store,
    /// Volatile from here on.
    pub mempool: SimMempool,
    /// Hashes of gossip delivered since the last tick (the transport's
    /// de-duplication: the same bytes are delivered again only after it).
    pub seen: BTreeSet<u64>,
    /// Banned peers: (until, strikes).
    pub banned: BTreeMap<usize, (u64, u32)>,
    /// Validly signed contents its core was given, per infraction key, in
    /// this life.
    pub received: BTreeMap<InfractionKey, BTreeSet<Hash>>,
    /// Offenders named by evidence it found, kept, relayed or committed
    /// (over all lives).
    pub evidence_offenders: BTreeSet<Address>,
    /// Evidence its own engine found (over all lives).
    pub own_evidence: Vec<pb::Evidence>,
    /// Infractions it received both halves of (over all lives).
    pub infractions_seen: BTreeSet<InfractionKey>,
    /// Counters.
    pub stats: NodeStats,
    /// A torn crash waiting for its signing-state write (see
    /// [`super::Torn`]), with how long the node then stays down.
    pub torn_crash: Option<(super::Torn, u64)>,
    /// A crash due at the end of the batch being executed (`Torn::AfterPrecommit`),
    /// with how long the node then stays down.
    pub crash_after_batch: Option<u64>,
    /// Whether its last signature's WAL record is durable (the node's
    /// executor keeps the same record; rebuilt at boot from the store).
    pub wal_sync: agora_validator::consensus::WalSync,
    /// The snapshots it serves, newest last (volatile, as the node's).
    pub snapshots: Vec<super::state_sync::SimSnapshot>,
    /// Its join by state sync, while one runs.
    pub join: Option<agora_validator::state_sync::join::Join<usize>>,
    /// The height of the snapshot it joined from, if it did.
    pub joined_at: Option<Height>,
    /// What its join trusts, drawn when it first starts and kept across
    /// restarts (its operator's configuration): a decided header's height
    /// and hash, or None for the genesis set.
    pub checkpoint: Option<(Height, Hash)>,
}

impl Node {
    /// A node that has not booted yet.
    pub fn new(behaviour: Behaviour, byz: Option<Box<dyn Byzantine>>) -> Self {
        Self {
            behaviour,
            byz,
            engine: None,
            epoch: 0,
            store: Store::default(),
            mempool: SimMempool::default(),
            seen: BTreeSet::new(),
            banned: BTreeMap::new(),
            received: BTreeMap::new(),
            evidence_offenders: BTreeSet::new(),
            own_evidence: Vec::new(),
            infractions_seen: BTreeSet::new(),
            stats: NodeStats::default(),
            torn_crash: None,
            crash_after_batch: None,
            wal_sync: Default::default(),
            snapshots: Vec::new(),
            join: None,
            joined_at: None,
            checkpoint: None,
        }
    }

    /// Whether it is up: running its engine, or joining by state sync.
    pub fn is_up(&self) -> bool {
        self.engine.is_some() || self.join.is_some()
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: usize, now: u64) -> bool {
        self.banned
            .get(&peer)
            .is_some_and(|(until, _)| *until > now)
    }

    /// Loses everything volatile.
    pub fn crash(&mut self) {
        debug_assert!(self.store.wal_durable <= self.store.wal.len());
        self.store.wal.truncate(self.store.wal_durable);
        self.engine = None;
        self.epoch += 1;
        self.mempool = SimMempool::default();
        self.seen.clear();
        self.banned.clear();
        self.received.clear();
        self.snapshots.clear();
        self.join = None;
    }
}
