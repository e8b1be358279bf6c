//! State sync in the simulator: every node takes a snapshot of its state
//! every [`SNAPSHOT_EVERY`] heights and serves it (offer and chunks, as
//! `node/src/state_sync/serve.rs` does), a bad snapshot server lies as its
//! [`SnapshotFault`] says, and a node that starts late with an empty store
//! joins by the engine's own join (`agora_validator::state_sync::join`,
//! the machine `node/src/state_sync/join.rs` drives): this host carries
//! out its actions, runs the light client against an honest node's store
//! (the operator's gRPC servers) and, once every chunk verified, stores
//! the base and boots the engine on it, which then follows by block sync.

use super::host::StoredBlock;
use super::scenario::{Behaviour, SnapshotFault};
use super::wire::Wire;
use super::{Event, Sim, Violation};
use agora_proto::v1 as pb;
use agora_validator::Height;
use agora_validator::block::header_hash;
use agora_validator::consensus::TestFault;
use agora_validator::crypto::Hash;
use agora_validator::ledger::Ledger;
use agora_validator::ledger::merkle::chunks::{SnapshotChunks, split, split_with_bits};
use agora_validator::light_client::{LightBlock, Trusted, verify_skipping};
use agora_validator::state_sync::join::{Action, AnchorFailure, Join};
use agora_validator::state_sync::{Anchor, AnchorError, verify_anchor};
use rand::Rng;
use std::collections::VecDeque;

/// Heights between two snapshots (a run decides a few dozen at least).
pub(super) const SNAPSHOT_EVERY: Height = 10;
/// Snapshots a node keeps at least (as `state_sync::serve::KEEP`).
const KEEP: usize = 2;
/// The least time a snapshot is kept (simulated ms). The node's snapshots
/// are 1,000 heights apart, tens of seconds at any speed; ten heights are
/// a fraction of a second on a fast simulated chain (40 heights a second
/// with 5–10 ms delays and no commit pause), less than a join takes to
/// gather offers and verify an anchor, so a joiner found every snapshot
/// gone by the time it asked for chunks (seed 9,130,358, 60 s after GST).
const KEPT_MS: u64 = 6_000;
/// A joiner's chunk request timeout.
const CHUNK_TIMEOUT_MS: u64 = 2_000;
/// How often a joiner's join is driven.
pub(super) const JOIN_TICK_MS: u64 = 100;

/// A snapshot a node serves: the state after `height`.
#[derive(Debug, Clone)]
pub struct SimSnapshot {
    height: Height,
    /// The chain seed after `height`.
    seed: Hash,
    chunks: SnapshotChunks,
    /// When it was taken (simulated ms).
    taken_ms: u64,
}

impl Sim {
    /// Node `i` committed `h`: every `SNAPSHOT_EVERY` heights it takes a
    /// snapshot of the state after it.
    pub(super) fn maybe_snapshot(&mut self, i: usize, h: Height) {
        let n = &mut self.nodes[i];
        let Some(b) = n
            .store
            .blocks
            .get(&h)
            .filter(|_| h.is_multiple_of(SNAPSHOT_EVERY))
        else {
            return;
        };
        let leaves = n.store.leaves.iter().map(|(k, v)| (k.clone(), v.clone()));
        n.snapshots.push(SimSnapshot {
            height: h,
            seed: b.seed,
            chunks: split(leaves.collect()),
            taken_ms: self.now,
        });
        while n.snapshots.len() > KEEP && n.snapshots[0].taken_ms + KEPT_MS <= self.now {
            n.snapshots.remove(0);
        }
    }

    fn snapshot_fault(&self, i: usize) -> Option<SnapshotFault> {
        match self.nodes[i].behaviour {
            Behaviour::BadSnapshots(f) => Some(f),
            _ => None,
        }
    }

    /// Node `to` answers `from`'s snapshot request with its newest one.
    pub(super) fn answer_snapshot_request(&mut self, to: usize, from: usize) {
        let fault = self.snapshot_fault(to);
        let offer = match self.nodes[to].snapshots.last() {
            None => pb::SnapshotOffer::default(),
            Some(s) => {
                let mut o = pb::SnapshotOffer {
                    height: s.height,
                    seed: s.seed.to_vec(),
                    manifest: Some(s.chunks.manifest.clone()),
                };
                match fault {
                    Some(SnapshotFault::OtherManifest) => {
                        o.manifest = Some(other_state(&s.chunks).manifest);
                    }
                    // Grouped with the genuine offer (same height and
                    // manifest): taken whenever its id is the group's
                    // highest.
                    Some(SnapshotFault::WrongSeed) => o.seed = vec![0xee; 32],
                    _ => {}
                }
                o
            }
        };
        self.send(to, from, Wire::SnapshotOffer(Box::new(offer)), None);
    }

    /// Node `to` answers `from`'s chunk request.
    pub(super) fn answer_chunk_request(&mut self, to: usize, from: usize, r: pb::ChunkRequest) {
        let fault = self.snapshot_fault(to);
        if fault == Some(SnapshotFault::Silent) {
            return;
        }
        let held = self.nodes[to]
            .snapshots
            .iter()
            .find(|s| s.height == r.height)
            .and_then(|s| s.chunks.chunks.get(r.index as usize));
        let mut resp = pb::ChunkResponse {
            height: r.height,
            index: r.index,
            leaves: held.cloned().unwrap_or_default(),
            unavailable: held.is_none(),
        };
        if fault == Some(SnapshotFault::ForgedChunks)
            && let Some(l) = resp.leaves.first_mut()
        {
            l.value.push(1);
        }
        self.send(to, from, Wire::ChunkResponse(Box::new(resp)), None);
    }

    /// Node `i` starts with an empty store and joins by state sync. On its
    /// first start it draws what it trusts: half the joiners the genesis
    /// set (the checkpoint of height 1), the others the latest decided
    /// header, as an operator copies a recent height and hash from a
    /// source it trusts (`agora start` with `state_sync.trust_height` and
    /// `trust_hash`); from there the light client crosses whatever set
    /// changes lie before the snapshot by skipping.
    pub(super) fn start_join(&mut self, i: usize) {
        if self.nodes[i].checkpoint.is_none() && self.rng.random_bool(0.5) {
            self.nodes[i].checkpoint = self.decided.iter().next_back().map(|(h, d)| (*h, d.hash));
        }
        let trust_height = self.nodes[i].checkpoint.map_or(1, |c| c.0);
        let peers = (0..self.nodes.len()).filter(|p| *p != i);
        let (mut join, actions) = Join::start(trust_height, CHUNK_TIMEOUT_MS, peers, self.clock(i));
        if self.config.consensus.test_fault == TestFault::SkipChunkChecks {
            join.skip_chunk_checks();
        }
        self.nodes[i].join = Some(join);
        self.exec_join(i, actions);
        let epoch = self.nodes[i].epoch;
        self.push(self.now + JOIN_TICK_MS, Event::JoinTick { node: i, epoch });
    }

    /// The join's clock moves (while it runs).
    pub(super) fn join_tick(&mut self, i: usize) {
        let clock = self.clock(i);
        let Some(actions) = self.nodes[i].join.as_mut().map(|j| j.tick(clock)) else {
            return;
        };
        self.exec_join(i, actions);
        if self.nodes[i].join.is_some() {
            let epoch = self.nodes[i].epoch;
            self.push(self.now + JOIN_TICK_MS, Event::JoinTick { node: i, epoch });
        }
    }

    /// A joiner takes an offer or a chunk (anything else waits for its
    /// engine).
    pub(super) fn join_receive(&mut self, to: usize, from: usize, wire: Wire) {
        let now = self.clock(to);
        let Some(join) = self.nodes[to].join.as_mut() else {
            return;
        };
        let actions = match wire {
            Wire::SnapshotOffer(o) => join.offer(from, *o, now),
            Wire::ChunkResponse(r) => join.chunk(from, *r, now),
            _ => return,
        };
        self.exec_join(to, actions);
    }

    /// Carries out a join's actions, in order.
    fn exec_join(&mut self, i: usize, actions: Vec<Action<usize>>) {
        let mut queue: VecDeque<Action<usize>> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::AskOffer(p) => self.send(i, p, Wire::SnapshotRequest, None),
                Action::RequestChunk(p, r) => self.send(i, p, Wire::ChunkRequest(r), None),
                Action::Charge(p, fault) => {
                    self.nodes[i].stats.snapshot_charges += 1;
                    self.charge(i, p, format!("bad snapshot: {fault}"));
                }
                Action::VerifyAnchor { height, seed, .. } => {
                    let verdict = self.light_anchor(i, height, &seed);
                    let now = self.clock(i);
                    if let Some(j) = self.nodes[i].join.as_mut() {
                        queue.extend(j.anchor_verified(verdict, now));
                    }
                }
                Action::Install { anchor, leaves } => return self.install(i, *anchor, leaves),
                Action::Notice(_) => {}
            }
        }
    }

    /// The light client over the store of the honest node furthest ahead
    /// (the joiner's gRPC server): header `s + 1` verified from the
    /// joiner's checkpoint or the genesis set (as `node/src/state_sync/
    /// anchor.rs` does), then the anchor of `s` with the offered seed.
    fn light_anchor(&self, i: usize, s: Height, seed: &Hash) -> Result<Anchor, AnchorFailure> {
        let server = self
            .honest_nodes()
            .filter(|j| *j != i)
            .max_by_key(|j| self.nodes[*j].store.tip_height())
            .ok_or(AnchorFailure::Unavailable)?;
        let store = &self.nodes[server].store;
        let fetch = |h: Height| -> Result<LightBlock, String> {
            let b = store.blocks.get(&h).ok_or("not stored")?;
            Ok(LightBlock {
                header: b.block.header.clone().ok_or("no header")?,
                certificate: b.certificate.clone(),
                validators: store.set_at(h).cloned().ok_or("no set")?,
            })
        };
        let trusted = match self.nodes[i].checkpoint {
            None => Trusted::from_genesis(self.g.set().clone()),
            Some((t, hash)) => {
                let first = fetch(t).map_err(|_| AnchorFailure::Unavailable)?;
                Trusted::from_checkpoint(&first, &hash).map_err(|_| AnchorFailure::Unavailable)?
            }
        };
        // The join takes no snapshot below the trusted height less one, so
        // S + 1 is the trusted header itself or above it.
        debug_assert!(s + 1 >= trusted.height);
        if s + 1 > trusted.height {
            verify_skipping(&self.g.chain, trusted, s + 1, fetch)
                .map_err(|_| AnchorFailure::Unavailable)?;
        }
        let (Ok(next), Some(next_block), Some(block)) = (
            fetch(s + 1),
            store.blocks.get(&(s + 1)),
            store.blocks.get(&s),
        ) else {
            return Err(AnchorFailure::Unavailable);
        };
        verify_anchor(&self.g.chain, &next, &next_block.block, &block.block, seed).map_err(|e| {
            match e {
                AnchorError::Seed { .. } => AnchorFailure::Seed(e),
                _ => AnchorFailure::Unavailable,
            }
        })
    }

    /// Every chunk verified: the state rebuilt and checked once more, the
    /// base stored (block S, its certificate, the seed, the state, the sets
    /// of S + 1 and S + 2) and the engine booted on it.
    fn install(&mut self, i: usize, anchor: Anchor, leaves: Vec<(Vec<u8>, Vec<u8>)>) {
        let ledger = match Ledger::from_leaves(leaves.iter().map(|(k, v)| (k, v))) {
            Ok(l) if l.app_hash() == anchor.app_hash && l.height() == anchor.height => l,
            other => {
                let error =
                    format!("state sync: the verified snapshot does not restore: {other:?}");
                self.violations.push(Violation::Engine { node: i, error });
                return;
            }
        };
        let s = anchor.height;
        let Some(header) = anchor.block.header.as_ref() else {
            return;
        };
        let n = &mut self.nodes[i];
        n.store.sets = [s + 1, s + 2]
            .into_iter()
            .filter_map(|h| Some((h, ledger.validator_set(h)?.clone())))
            .collect();
        n.store.leaves = leaves.into_iter().collect();
        n.store.blocks.insert(
            s,
            StoredBlock {
                block_hash: header_hash(header),
                block: anchor.block,
                certificate: anchor.certificate,
                seed: anchor.seed,
                app_hash: anchor.app_hash,
            },
        );
        n.join = None;
        n.joined_at = Some(s);
        self.boot(i);
    }
}

/// A state of the same shape as `s` with one leaf changed: its manifest
/// is well formed and hashes to another root.
fn other_state(s: &SnapshotChunks) -> SnapshotChunks {
    let mut leaves: Vec<(Vec<u8>, Vec<u8>)> = s
        .chunks
        .iter()
        .flatten()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect();
    if let Some(l) = leaves.first_mut() {
        l.1.push(1);
    }
    split_with_bits(leaves, s.manifest.prefix_bits)
}
