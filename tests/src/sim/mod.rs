//! A deterministic simulator of whole validators: the same
//! [`Engine`](agora_validator::engine::Engine) the node drives, with the
//! real staking ledger, over a simulated network.
//!
//! N validators, each an `Engine<usize>` (peers are node indices) in a
//! small host, start from one genesis built per seed ([`genesis`]) and
//! execute a seeded workload of transfers, bonds and unbonds ([`workload`])
//! that their mempools ([`mempool`]) admit once (decoded and verified) and
//! the engine reaps into blocks. Every decision of the network (delay,
//! loss, duplication, reordering, partitions, crashes, Byzantine choices)
//! comes from one seeded ChaCha generator, so a seed replays exactly. Time
//! is simulated: events sit in a queue ordered by (time, sequence number).
//!
//! The host ([`host`]) does what the node does around its engine: executes
//! the engine's actions in order (signing state and WAL persisted before
//! anything is sent), keeps what the node persists (signing state, the WAL
//! of the current height, committed blocks and certificates, the state
//! after the last one, validator-set changes, evidence-pool entries) and on
//! restart rebuilds the engine from them and replays the WAL; calls
//! `on_tick` every `TICK_MS` (re-gossip, sync polling) and sends its
//! height in `Status` messages; answers `BlockRequest`s from its store and
//! feeds `BlockResponse`s to the engine; bans a peer the engine penalises
//! (the transport's temporary, doubling ban) and tells the engine when a
//! connection goes (crash, partition, ban). Connections are reliable for
//! requests and responses; gossip may be lost before GST and duplicated.
//!
//! Byzantine validators ([`byzantine`]) run the same engine behind a module
//! that rewrites what they send. The properties checked on every run are
//! in [`checks`].

mod byzantine;
mod checks;
mod genesis;
mod host;
mod mempool;
mod scenario;
mod workload;

pub use checks::{EVIDENCE_BOUND, Violation};
pub use scenario::{Behaviour, Crash, HeaderFault, Scenario, Torn};

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::consensus::evidence::{InfractionKey, infraction_key};
use agora_validator::consensus::{ConsensusConfig, SignStep, SigningState};
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH, sha3_256};
use agora_validator::engine::{Action, Engine, EngineConfig, PeerFault, TICK_MS, block_rules};
use agora_validator::{Address, Height};
use byzantine::{Cx, Out};
use genesis::SimGenesis;
use host::{Node, StoredBlock, serve_blocks};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use workload::Workload;

/// First ban of a penalised peer (ms; the node's default); it doubles with
/// each repeat, up to 64×.
const BAN_MS: u64 = 30_000;
/// Time between a commit and the start of the next height (ms).
const TIMEOUT_COMMIT_MS: u64 = 0;
/// Most events one run may process; a run that needs more is reported.
const MAX_EVENTS: u64 = 3_000_000;

/// A message on the simulated wire.
#[derive(Debug, Clone)]
pub enum Wire {
    /// A proposal with its block.
    Proposal(Box<pb::Proposal>),
    /// A vote.
    Vote(pb::Vote),
    /// Bytes that claim to be a vote (junk from a Byzantine sender).
    Raw(Vec<u8>),
    /// Double-sign evidence.
    Evidence(pb::Evidence),
    /// Transactions (mempool gossip).
    Txs(Vec<pb::Transaction>),
    /// The sender's latest committed height.
    Status(Height),
    /// Blocks wanted.
    BlockRequest {
        /// First height.
        from: Height,
        /// How many.
        count: u32,
    },
    /// Blocks with their certificates.
    BlockResponse(Box<pb::BlockResponse>),
}

impl Wire {
    /// Gossip (may be lost before GST, duplicated, and is de-duplicated by
    /// the receiving transport); the rest travels on reliable streams.
    fn is_gossip(&self) -> bool {
        !matches!(
            self,
            Self::Status(_) | Self::BlockRequest { .. } | Self::BlockResponse(_)
        )
    }

    /// A 64-bit digest of the encoding (SipHash with fixed keys: cheap and
    /// deterministic; a collision among one run's messages is negligible).
    fn dedup_key(&self) -> Option<u64> {
        use std::hash::{DefaultHasher, Hasher};
        let bytes = match self {
            Self::Proposal(p) => p.encode_to_vec(),
            Self::Vote(v) => v.encode_to_vec(),
            Self::Raw(b) => b.clone(),
            Self::Evidence(e) => e.encode_to_vec(),
            Self::Txs(t) => pb::TransactionBatch { txs: t.clone() }.encode_to_vec(),
            _ => return None,
        };
        let mut h = DefaultHasher::new();
        h.write(&bytes);
        Some(h.finish())
    }
}

/// What the simulator knows about a validly signed message (never shown to engines).
#[derive(Debug, Clone, Copy)]
struct SignedTag {
    key: InfractionKey,
    content: Hash,
}

// Events are many and short-lived; boxing `Deliver` would cost an
// allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Event {
    Deliver {
        from: usize,
        from_epoch: u64,
        to: usize,
        to_epoch: u64,
        wire: Wire,
        tag: Option<SignedTag>,
    },
    Timer {
        node: usize,
        epoch: u64,
        timeout: agora_validator::consensus::Timeout,
    },
    Tick {
        node: usize,
        epoch: u64,
    },
    StartHeight {
        node: usize,
        epoch: u64,
    },
    /// A crash of a node (torn: armed, for how long it will be down).
    Crash(usize, Torn, u64),
    Restart(usize),
    /// A torn crash whose write has not come is called off.
    Disarm(usize),
    PartitionStart,
    Workload,
}

/// Where a batch of actions came from (for what the checker records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The engine's own work on a message, timeout or start: evidence it
    /// broadcasts is evidence its core found.
    Own,
    /// Relaying: peers' evidence, the pool's re-gossip.
    Relay,
    /// Applying synced blocks.
    Sync,
}

/// What the seeds exercised, summed by the test for its coverage asserts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Blocks honest nodes applied through sync.
    pub synced_blocks: u64,
    /// Honest nodes that restarted and then synced at least two blocks.
    pub restarted_and_synced: u64,
    /// Crashes inside a signing-state write (the WAL ahead of it).
    pub torn_crashes: u64,
    /// Sync requests honest nodes sent to a tampering server.
    pub tampering_asked: u64,
    /// Sync requests honest nodes sent to a false-height peer.
    pub false_height_asked: u64,
    /// Penalties honest nodes charged to Byzantine peers.
    pub penalties: u64,
    /// Counters of the Byzantine modules, by name.
    pub byzantine: BTreeMap<&'static str, u64>,
    /// Equivocations that reached an honest validator.
    pub equivocations: u64,
    /// Offenders slashed by a committed block.
    pub slashed: u64,
    /// Validator-set changes committed.
    pub set_changes: u64,
    /// Transactions executed successfully.
    pub txs_ok: u64,
    /// Largest number of honest-created blocks after the reference height
    /// an inclusion took (see `checks::EVIDENCE_BOUND`).
    pub max_evidence_delay: u64,
}

impl Coverage {
    /// Adds `other` in.
    pub fn add(&mut self, o: &Coverage) {
        self.synced_blocks += o.synced_blocks;
        self.restarted_and_synced += o.restarted_and_synced;
        self.torn_crashes += o.torn_crashes;
        self.tampering_asked += o.tampering_asked;
        self.false_height_asked += o.false_height_asked;
        self.penalties += o.penalties;
        for (k, v) in &o.byzantine {
            *self.byzantine.entry(k).or_default() += v;
        }
        self.equivocations += o.equivocations;
        self.slashed += o.slashed;
        self.set_changes += o.set_changes;
        self.txs_ok += o.txs_ok;
        self.max_evidence_delay = self.max_evidence_delay.max(o.max_evidence_delay);
    }
}

/// Outcome of one run.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// What went wrong (empty if the run passed).
    pub violations: Vec<Violation>,
    /// Lowest committed height among honest validators at the end.
    pub min_honest_height: Height,
    /// Simulated time at the end (ms).
    pub end_time_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Evidence items honest validators' engines found.
    pub evidence_count: usize,
    /// What the run exercised.
    pub coverage: Coverage,
    /// Each node's final state, for diagnosing a failing seed.
    pub final_states: Vec<String>,
}

/// The first honest decision of a height.
#[derive(Debug, Clone)]
struct Decided {
    hash: Hash,
    node: usize,
    app_hash: Hash,
    /// When (simulated ms).
    time: u64,
    /// Whether an honest validator created the block.
    honest_creator: bool,
    /// Validators the block slashed for double signing.
    slashed: Vec<Address>,
    /// Whether it changed the validator set (of height + 2).
    set_change: bool,
    /// Transactions it executed successfully.
    txs_ok: u64,
}

/// The simulator of one seed.
pub struct Sim {
    sc: Scenario,
    config: EngineConfig,
    rng: ChaCha8Rng,
    g: SimGenesis,
    keys: Vec<SecretKey>,
    nodes: Vec<Node>,
    workload: Workload,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    now: u64,
    processed: u64,
    /// First honest decision per height.
    decided: BTreeMap<Height, Decided>,
    /// Equivocations that reached an honest validator: first time, node.
    infractions: BTreeMap<InfractionKey, (u64, usize)>,
    /// Height every honest node must reach before the run may end.
    required: Height,
    /// Whether an equivocation's inclusion deadline is still ahead.
    evidence_pending: bool,
    violations: Vec<Violation>,
    /// Node whose traffic is printed (`SIM_TRACE=<node>`).
    trace: Option<usize>,
}

impl Sim {
    /// Builds the simulator of `sc` with `config` for every core.
    pub fn new(sc: Scenario, config: ConsensusConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(sc.seed ^ 0x5eed_0fa6_0a00);
        let g = SimGenesis::new(sc.seed, &sc.powers);
        let keys = (0..sc.powers.len()).map(|i| g.key(i)).collect();
        let honest: Vec<bool> = sc.behaviours.iter().map(Behaviour::is_honest).collect();
        let workload = Workload::new(sc.seed, &g, &honest);
        let mut nodes: Vec<Node> = sc
            .behaviours
            .iter()
            .map(|b| Node::new(*b, byzantine::make(*b)))
            .collect();
        for n in &mut nodes {
            n.store.sets = [1, 2]
                .into_iter()
                .filter_map(|h| Some((h, g.ledger.validator_set(h)?.clone())))
                .collect();
        }
        let mut sim = Self {
            required: sc.target_height,
            evidence_pending: false,
            sc,
            config: EngineConfig {
                consensus: config,
                ..Default::default()
            },
            rng,
            g,
            keys,
            nodes,
            workload,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            now: 0,
            processed: 0,
            decided: BTreeMap::new(),
            infractions: BTreeMap::new(),
            violations: Vec::new(),
            trace: std::env::var("SIM_TRACE").ok().and_then(|s| s.parse().ok()),
        };
        for c in sim.sc.crashes.clone() {
            sim.push(c.at, Event::Crash(c.node, c.torn, c.down));
            if c.torn == Torn::No {
                sim.push(c.at + c.down, Event::Restart(c.node));
            } else {
                sim.push(c.at + Crash::TORN_WINDOW_MS, Event::Disarm(c.node));
            }
        }
        if let Some((_, start, _)) = &sim.sc.partition {
            sim.push(*start, Event::PartitionStart);
        }
        if sim.sc.tx_interval_ms > 0 {
            let d = sim.workload.next_delay(sim.sc.tx_interval_ms);
            sim.push(d, Event::Workload);
        }
        for i in 0..sim.nodes.len() {
            if sim.nodes[i].behaviour != Behaviour::Silent {
                sim.boot(i);
            }
        }
        sim
    }

    fn push(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.events.insert(self.seq, ev);
        self.queue.push(Reverse((at, self.seq)));
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes[i].behaviour.is_honest()
    }

    fn honest_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.honest(*i))
    }

    /// Runs until every honest validator reached the required height (the
    /// target, or later while an equivocation's inclusion deadline is
    /// pending), or the liveness deadline; then checks everything.
    pub fn run(mut self) -> Report {
        let deadline = self.sc.gst_ms + self.sc.liveness_bound_ms;
        while let Some(Reverse((t, id))) = self.queue.pop() {
            if t > deadline {
                break;
            }
            self.now = t;
            let Some(ev) = self.events.remove(&id) else {
                continue;
            };
            self.processed += 1;
            if self.processed > MAX_EVENTS {
                self.violations.push(Violation::EventBudget);
                break;
            }
            self.dispatch(ev);
            // Past a safety violation nothing more is learnt.
            if self.done() || self.violations.iter().any(Violation::is_safety) {
                break;
            }
        }
        checks::final_checks(&mut self);
        self.report()
    }

    fn report(self) -> Report {
        let min_honest_height = self
            .honest_nodes()
            .map(|i| self.nodes[i].store.tip_height())
            .min()
            .unwrap_or(0);
        let evidence_count = self
            .honest_nodes()
            .map(|i| self.nodes[i].own_evidence.len())
            .sum();
        let coverage = self.coverage();
        let final_states = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.engine {
                Some(e) => {
                    let c = e.core();
                    format!(
                        "node {i} {:?}: tip={} h={} r={} step={:?} locked={:?} valid={:?} pool={} mempool={} stats={:?} core={:?}",
                        n.behaviour,
                        e.tip_height(),
                        c.height(),
                        c.round(),
                        c.step(),
                        c.locked().map(|(v, r)| (hex::encode(&v[..4]), r)),
                        c.valid().map(|(v, r)| (hex::encode(&v[..4]), r)),
                        e.pool().len(),
                        n.mempool.len(),
                        n.stats,
                        c.stats()
                    )
                }
                None => format!("node {i} {:?}: down", n.behaviour),
            })
            .collect();
        Report {
            seed: self.sc.seed,
            violations: self.violations,
            min_honest_height,
            end_time_ms: self.now,
            events: self.processed,
            evidence_count,
            coverage,
            final_states,
        }
    }

    fn coverage(&self) -> Coverage {
        let mut c = Coverage {
            equivocations: self.infractions.len() as u64,
            ..Default::default()
        };
        for i in self.honest_nodes() {
            let s = &self.nodes[i].stats;
            c.synced_blocks += s.synced;
            for (peer, k) in &s.asked {
                match self.nodes[*peer].behaviour {
                    Behaviour::TamperingServer => c.tampering_asked += k,
                    Behaviour::FalseHeight { .. } => c.false_height_asked += k,
                    _ => {}
                }
            }
            c.penalties += s.penalized.values().sum::<u64>();
            c.torn_crashes += s.torn_crashes;
        }
        c.restarted_and_synced = self
            .honest_nodes()
            .filter(|i| self.nodes[*i].stats.restarts > 0 && self.nodes[*i].stats.synced >= 2)
            .count() as u64;
        for n in &self.nodes {
            if let Some(b) = &n.byz {
                for (k, v) in b.counters() {
                    *c.byzantine.entry(k).or_default() += v;
                }
            }
        }
        for d in self.decided.values() {
            c.slashed += d.slashed.len() as u64;
        }
        c.set_changes = checks::set_changes(self);
        c.txs_ok = checks::txs_ok(self);
        c.max_evidence_delay = checks::max_evidence_delay(self);
        c
    }

    fn update_required(&mut self) {
        let (pending, height) = checks::evidence_progress(self);
        self.evidence_pending = pending;
        self.required = self.sc.target_height.max(height);
    }

    fn done(&self) -> bool {
        !self.evidence_pending
            && self.honest_nodes().all(|i| {
                self.nodes[i].engine.is_some() && self.nodes[i].store.tip_height() >= self.required
            })
    }

    // ---- events --------------------------------------------------------------

    fn dispatch(&mut self, ev: Event) {
        match ev {
            Event::Deliver {
                from,
                from_epoch,
                to,
                to_epoch,
                wire,
                tag,
            } => self.deliver(from, from_epoch, to, to_epoch, wire, tag),
            Event::Timer {
                node,
                epoch,
                timeout,
            } => {
                if self.live(node, epoch) {
                    let r = self.with_engine(node, |e, m, now| e.on_timeout(timeout, now, m));
                    self.exec_result(node, r, Origin::Own);
                }
            }
            Event::Tick { node, epoch } => {
                if self.live(node, epoch) {
                    self.tick(node);
                    let at = self.now + TICK_MS;
                    self.push(at, Event::Tick { node, epoch });
                }
            }
            Event::StartHeight { node, epoch } => {
                if self.live(node, epoch) {
                    let r = self.with_engine(node, |e, m, now| e.start_height(now, m));
                    self.exec_result(node, r, Origin::Own);
                }
            }
            Event::Crash(i, Torn::No, _) => self.crash(i),
            Event::Crash(i, torn, down) => self.nodes[i].torn_crash = Some((torn, down)),
            Event::Restart(i) => self.boot(i),
            Event::Disarm(i) => self.nodes[i].torn_crash = None,
            Event::PartitionStart => {
                // Connections across the cut time out and close.
                for a in 0..self.nodes.len() {
                    for b in 0..self.nodes.len() {
                        if self.partitioned(a, b)
                            && let Some(e) = self.nodes[a].engine.as_mut()
                        {
                            e.on_peer_gone(&b);
                        }
                    }
                }
            }
            Event::Workload => self.submit_tx(),
        }
    }

    /// Node `i` loses everything volatile; its peers see it go.
    fn crash(&mut self, i: usize) {
        self.nodes[i].crash();
        for j in 0..self.nodes.len() {
            if let Some(e) = self.nodes[j].engine.as_mut() {
                e.on_peer_gone(&i);
            }
        }
    }

    fn live(&self, node: usize, epoch: u64) -> bool {
        self.nodes[node].epoch == epoch && self.nodes[node].engine.is_some()
    }

    fn boot(&mut self, i: usize) {
        let restored = match self.nodes[i].store.restore(&self.g.ledger, self.g.seed0) {
            Ok(r) => r,
            Err(e) => {
                self.violations.push(Violation::Engine {
                    node: i,
                    error: format!("restore: {e}"),
                });
                return;
            }
        };
        let epoch = self.nodes[i].epoch;
        if epoch > 0 {
            self.nodes[i].stats.restarts += 1;
        }
        let entropy = sha3_256(format!("sim-entropy-{}-{i}-{epoch}", self.sc.seed).as_bytes());
        let engine = Engine::new(
            self.config,
            Some(self.keys[i].clone()),
            self.nodes[i].store.signing,
            restored,
            entropy,
        );
        self.nodes[i].engine = Some(engine);
        // A restart keeps what a node persists; the engine resumes the
        // height being decided from its WAL.
        let wal = self.nodes[i].store.wal.clone();
        let r = self.with_engine(i, |e, m, now| e.resume(wal, now, m));
        self.exec_result(i, r, Origin::Own);
        self.send_status(i);
        let first = self.now + self.rng.random_range(1..=TICK_MS);
        self.push(first, Event::Tick { node: i, epoch });
    }

    fn tick(&mut self, i: usize) {
        self.nodes[i].seen.clear();
        let now = self.now;
        let actions = self.nodes[i]
            .engine
            .as_mut()
            .map(|e| e.on_tick(now))
            .unwrap_or_default();
        self.exec(i, actions, Origin::Relay);
        self.send_status(i);
        if let Some(outs) = self.with_byz(i, |b, cx| b.tick(cx)) {
            self.emit(i, outs);
        }
    }

    fn send_status(&mut self, i: usize) {
        let tip = self.nodes[i].store.tip_height();
        let h = self.nodes[i].byz.as_ref().map_or(tip, |b| b.announce(tip));
        self.broadcast(i, Wire::Status(h), None);
    }

    fn submit_tx(&mut self) {
        let (tx, pick) = self.workload.next_tx();
        let live: Vec<usize> = self
            .honest_nodes()
            .filter(|i| self.nodes[*i].engine.is_some())
            .collect();
        if !live.is_empty() {
            let i = live[(pick % live.len() as u64) as usize];
            let n = &mut self.nodes[i];
            if let Some(e) = n.engine.as_ref() {
                n.mempool.add(&self.g.chain, &tx, e.ledger());
            }
            self.broadcast(i, Wire::Txs(vec![tx]), None);
        }
        let d = self.workload.next_delay(self.sc.tx_interval_ms);
        self.push(self.now + d, Event::Workload);
    }

    // ---- the host: engine calls and actions ------------------------------------

    /// Calls the engine of node `i` with its mempool and the clock.
    fn with_engine<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Engine<usize>, &mempool::SimMempool, u64) -> R,
    ) -> Option<R> {
        let now = self.now;
        let n = &mut self.nodes[i];
        let e = n.engine.as_mut()?;
        Some(f(e, &n.mempool, now))
    }

    fn exec_result(
        &mut self,
        i: usize,
        r: Option<Result<Vec<Action<usize>>, agora_validator::engine::EngineError>>,
        origin: Origin,
    ) {
        match r {
            Some(Ok(actions)) => self.exec(i, actions, origin),
            Some(Err(e)) => self.engine_failed(i, e.to_string()),
            None => {}
        }
    }

    fn engine_failed(&mut self, i: usize, error: String) {
        self.violations.push(Violation::Engine { node: i, error });
        self.nodes[i].crash();
    }

    /// Whether node `i`'s armed torn crash falls on this signing-state
    /// write (it is then consumed): how long the node stays down.
    fn tears_here(&mut self, i: usize, s: &SigningState) -> Option<u64> {
        let (torn, down) = self.nodes[i].torn_crash?;
        let hit = match torn {
            Torn::NextSigning => true,
            Torn::NextProposal => s.step == SignStep::Propose,
            Torn::No => false,
        };
        if hit {
            self.nodes[i].torn_crash = None;
        }
        hit.then_some(down)
    }

    /// Executes the engine's actions in order.
    fn exec(&mut self, i: usize, actions: Vec<Action<usize>>, origin: Origin) {
        for a in actions {
            if self.nodes[i].engine.is_none() {
                return;
            }
            if self.trace == Some(i) {
                eprintln!("[{} ms] node {i} -> {}", self.now, describe_action(&a));
            }
            match a {
                Action::Wal(input) => self.nodes[i].store.wal.push(input),
                Action::PersistSigningState(s) => {
                    if let Some(down) = self.tears_here(i, &s) {
                        // Dies inside the write: the WAL is on disk, the
                        // signing state is not, nothing after it happens.
                        self.nodes[i].stats.torn_crashes += 1;
                        self.crash(i);
                        self.push(self.now + down, Event::Restart(i));
                        return;
                    }
                    self.nodes[i].store.signing = Some(s)
                }
                Action::BroadcastProposal(p) => {
                    let outs = self
                        .with_byz(i, |b, cx| b.proposal(cx, (*p).clone()))
                        .unwrap_or_else(|| vec![Out::all(Wire::Proposal(p))]);
                    self.emit(i, outs);
                }
                Action::BroadcastVote(v) => {
                    let outs = self
                        .with_byz(i, |b, cx| b.vote(cx, v.clone()))
                        .unwrap_or_else(|| vec![Out::all(Wire::Vote(v))]);
                    self.emit(i, outs);
                }
                Action::BroadcastEvidence(ev) => {
                    self.note_evidence(i, &ev);
                    if origin != Origin::Relay {
                        self.nodes[i].own_evidence.push(ev.clone());
                    }
                    self.broadcast(i, Wire::Evidence(ev), None);
                }
                Action::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } => {
                    let epoch = self.nodes[i].epoch;
                    self.push(
                        self.now + duration_ms,
                        Event::Timer {
                            node: i,
                            epoch,
                            timeout,
                        },
                    );
                }
                Action::PersistEvidence(id, ev) => {
                    self.note_evidence(i, &ev);
                    self.nodes[i].store.evidence.insert(id, ev);
                }
                Action::Commit(rec) => {
                    if origin == Origin::Sync {
                        self.nodes[i].stats.synced += 1;
                    }
                    self.on_commit(i, *rec);
                }
                Action::SendProposal { peer, proposal } => {
                    self.send(i, peer, Wire::Proposal(proposal), None);
                }
                Action::SendVote { peer, vote } => self.send(i, peer, Wire::Vote(vote), None),
                Action::RequestBlocks { peer, from, count } => {
                    *self.nodes[i].stats.asked.entry(peer).or_default() += 1;
                    self.send(i, peer, Wire::BlockRequest { from, count }, None);
                }
                Action::Penalize { peer, fault } => self.penalize(i, peer, fault),
                Action::InvalidBlock { .. } => self.nodes[i].stats.invalid_blocks += 1,
                Action::Rejected(_) => {}
            }
        }
    }

    fn note_evidence(&mut self, i: usize, ev: &pb::Evidence) {
        if let Some(k) = infraction_key(ev) {
            self.nodes[i].evidence_offenders.insert(k.offender);
        }
    }

    fn on_commit(&mut self, i: usize, rec: agora_validator::engine::CommitRecord) {
        checks::on_commit(self, i, &rec);
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
        let n = &mut self.nodes[i];
        n.store.wal.clear();
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
        let epoch = n.epoch;
        self.push(
            self.now + TIMEOUT_COMMIT_MS,
            Event::StartHeight { node: i, epoch },
        );
        self.send_status(i);
        if self.honest(i) {
            self.update_required();
        }
    }

    fn penalize(&mut self, i: usize, peer: usize, fault: PeerFault) {
        *self.nodes[i].stats.penalized.entry(peer).or_default() += 1;
        if self.honest(i) && self.honest(peer) {
            self.violations.push(Violation::HonestPenalized {
                node: i,
                peer,
                fault: fault.to_string(),
            });
        }
        let now = self.now;
        let n = &mut self.nodes[i];
        let (until, strikes) = n.banned.entry(peer).or_insert((0, 0));
        *strikes += 1;
        *until = now + (BAN_MS << (*strikes - 1).min(6));
        if let Some(e) = n.engine.as_mut() {
            e.on_peer_gone(&peer);
        }
    }

    /// Runs `f` on node `i`'s Byzantine module, if it has one.
    fn with_byz<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn byzantine::Byzantine, &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let mut b = self.nodes[i].byz.take()?;
        let mut cx = Cx {
            me: i,
            n: self.nodes.len(),
            chain: &self.g.chain,
            key: &self.keys[i],
            addresses: &self.g.addresses,
            rng: &mut self.rng,
            store: &self.nodes[i].store,
        };
        let r = f(b.as_mut(), &mut cx);
        self.nodes[i].byz = Some(b);
        Some(r)
    }

    fn emit(&mut self, i: usize, outs: Vec<Out>) {
        for o in outs {
            let tag = if o.genuine { self.tag(&o.wire) } else { None };
            match o.to {
                Some(j) => self.send(i, j, o.wire, tag),
                None => self.broadcast(i, o.wire, tag),
            }
        }
    }

    fn tag(&self, w: &Wire) -> Option<SignedTag> {
        match w {
            Wire::Proposal(p) => {
                let hash = header_hash(p.block.as_ref()?.header.as_ref()?);
                Some(SignedTag {
                    key: InfractionKey {
                        offender: Address::from_slice(&p.proposer_address).ok()?,
                        height: p.height,
                        round: p.round,
                        kind: 0,
                    },
                    content: sha3_256(&[&hash[..], &p.pol_round.to_be_bytes()].concat()),
                })
            }
            Wire::Vote(v) => {
                let mut content = ZERO_HASH;
                if v.block_hash.len() == 32 {
                    content.copy_from_slice(&v.block_hash);
                }
                Some(SignedTag {
                    key: InfractionKey {
                        offender: Address::from_slice(&v.validator_address).ok()?,
                        height: v.height,
                        round: v.round,
                        kind: u8::try_from(v.vote_type).ok()?,
                    },
                    content,
                })
            }
            _ => None,
        }
    }

    // ---- network -------------------------------------------------------------

    fn partitioned(&self, a: usize, b: usize) -> bool {
        match &self.sc.partition {
            Some((side, start, end)) if self.now >= *start && self.now < *end => {
                side.contains(&a) != side.contains(&b)
            }
            _ => false,
        }
    }

    fn send(&mut self, from: usize, to: usize, wire: Wire, tag: Option<SignedTag>) {
        if from == to || self.partitioned(from, to) || self.nodes[to].engine.is_none() {
            return;
        }
        if self.nodes[from].is_banned(to, self.now) {
            return;
        }
        let gossip = wire.is_gossip() || matches!(wire, Wire::Status(_));
        if gossip
            && self.now < self.sc.gst_ms
            && self.sc.loss > 0.0
            && self.rng.random_bool(self.sc.loss)
        {
            return;
        }
        let copies = if wire.is_gossip()
            && self.sc.duplication > 0.0
            && self.rng.random_bool(self.sc.duplication)
        {
            2
        } else {
            1
        };
        let (from_epoch, to_epoch) = (self.nodes[from].epoch, self.nodes[to].epoch);
        for _ in 0..copies {
            let delay = self
                .rng
                .random_range(self.sc.delay_min_ms..=self.sc.delay_max_ms);
            self.push(
                self.now + delay,
                Event::Deliver {
                    from,
                    from_epoch,
                    to,
                    to_epoch,
                    wire: wire.clone(),
                    tag,
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, wire: Wire, tag: Option<SignedTag>) {
        for to in 0..self.nodes.len() {
            self.send(from, to, wire.clone(), tag);
        }
    }

    fn deliver(
        &mut self,
        from: usize,
        from_epoch: u64,
        to: usize,
        to_epoch: u64,
        wire: Wire,
        tag: Option<SignedTag>,
    ) {
        // A connection of a previous life of either end, or cut meanwhile,
        // delivers nothing more.
        if self.nodes[to].epoch != to_epoch
            || self.nodes[to].engine.is_none()
            || self.nodes[from].epoch != from_epoch
            || self.partitioned(from, to)
            || self.nodes[to].is_banned(from, self.now)
        {
            return;
        }
        if !self.honest(to) && byzantine::selfish_drop(&self.g.addresses[to], &wire) {
            return;
        }
        if let Some(key) = wire.dedup_key()
            && !self.nodes[to].seen.insert(key)
        {
            return;
        }
        if self.trace == Some(to) {
            eprintln!(
                "[{} ms] node {to} <- {from}: {}",
                self.now,
                describe_wire(&wire)
            );
        }
        if let Some(outs) = self.with_byz(to, |b, cx| b.received(cx, from, &wire)) {
            self.emit(to, outs);
        }
        match wire {
            Wire::Proposal(p) => {
                if let Some(tag) = tag {
                    self.record_tag(to, tag, p.block.as_ref());
                }
                let r = self.with_engine(to, |e, m, now| e.on_proposal(from, *p, now, m));
                self.exec_result(to, r, Origin::Own);
            }
            Wire::Vote(v) => {
                if let Some(tag) = tag {
                    self.record_tag(to, tag, None);
                }
                let r = self.with_engine(to, |e, m, now| e.on_vote(from, v, now, m));
                self.exec_result(to, r, Origin::Own);
            }
            Wire::Raw(bytes) => match pb::Vote::decode(bytes.as_slice()) {
                Ok(v) => {
                    let r = self.with_engine(to, |e, m, now| e.on_vote(from, v, now, m));
                    self.exec_result(to, r, Origin::Own);
                }
                // The transport refuses what does not decode.
                Err(_) => self.penalize(to, from, PeerFault::Malformed("undecodable message")),
            },
            Wire::Evidence(ev) => {
                let actions = self.nodes[to]
                    .engine
                    .as_mut()
                    .map(|e| e.on_evidence(from, ev))
                    .unwrap_or_default();
                self.exec(to, actions, Origin::Relay);
            }
            Wire::Txs(txs) => {
                // Admitted transactions are relayed once, as the node's
                // transaction gossip does.
                if self.honest(to) {
                    let n = &mut self.nodes[to];
                    let admitted: Vec<pb::Transaction> = match n.engine.as_ref() {
                        Some(e) => txs
                            .into_iter()
                            .filter(|t| n.mempool.add(&self.g.chain, t, e.ledger()))
                            .collect(),
                        None => Vec::new(),
                    };
                    if !admitted.is_empty() {
                        self.broadcast(to, Wire::Txs(admitted), None);
                    }
                }
            }
            Wire::Status(h) => {
                let r = self.with_engine(to, |e, m, now| e.on_status(from, h, now, m));
                self.exec_result(to, r, Origin::Relay);
            }
            Wire::BlockRequest { from: fh, count } => {
                match self.with_byz(to, |b, cx| b.serve(cx, from, fh, count)) {
                    Some(Some(outs)) => self.emit(to, outs),
                    _ => {
                        let resp = serve_blocks(&self.nodes[to].store, fh, count);
                        self.send(to, from, Wire::BlockResponse(Box::new(resp)), None);
                    }
                }
            }
            Wire::BlockResponse(resp) => {
                let actions = self
                    .with_engine(to, |e, _, now| e.on_block_response(from, *resp, now))
                    .unwrap_or_default();
                self.exec(to, actions, Origin::Relay);
                loop {
                    // As the node does: each unverified run is checked as a
                    // job (here at once, on this thread) before it applies.
                    if let Some(e) = self.nodes[to].engine.as_mut()
                        && let Some(job) = e.take_certificate_job()
                    {
                        e.on_certificate_verdict(job.run());
                    }
                    match self.with_engine(to, |e, m, now| e.next_synced_block(now, m)) {
                        Some(Ok(Some(actions))) => self.exec(to, actions, Origin::Sync),
                        Some(Err(e)) => {
                            self.engine_failed(to, e.to_string());
                            break;
                        }
                        _ => break,
                    }
                }
            }
        }
    }

    /// Records a validly signed proposal or vote that the receiver's core
    /// is actually given at its height, within its round window, from a
    /// member of that height's set (a proposal only with a body that
    /// matches its header: the engine drops any other before its core):
    /// what the checker expects to become evidence when two contents share
    /// an infraction key.
    fn record_tag(&mut self, to: usize, tag: SignedTag, block: Option<&pb::Block>) {
        if !self.honest(to) {
            return;
        }
        let Some(e) = self.nodes[to].engine.as_ref() else {
            return;
        };
        let c = e.core();
        let counts = !e.awaiting_start()
            && tag.key.height == e.height()
            && c.height() == e.height()
            && tag.key.round <= c.round().saturating_add(c.config().max_rounds_ahead)
            && e.ledger()
                .validator_set(tag.key.height)
                .is_some_and(|s| s.get(&tag.key.offender).is_some());
        if !counts {
            return;
        }
        if self.nodes[to]
            .received
            .get(&tag.key)
            .is_some_and(|c| c.contains(&tag.content))
            || block.is_some_and(|b| block_rules::check_body(b).is_err())
        {
            return;
        }
        let n = &mut self.nodes[to];
        let contents = n.received.entry(tag.key).or_default();
        contents.insert(tag.content);
        if contents.len() >= 2 {
            n.infractions_seen.insert(tag.key);
            let now = self.now;
            let first = !self.infractions.contains_key(&tag.key);
            self.infractions.entry(tag.key).or_insert((now, to));
            if first {
                self.update_required();
            }
        }
    }
}

fn short(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(4)])
}

fn describe_wire(w: &Wire) -> String {
    match w {
        Wire::Proposal(p) => format!(
            "proposal h={} r={} pol={} from={} block={}",
            p.height,
            p.round,
            p.pol_round,
            short(&p.proposer_address),
            p.block
                .as_ref()
                .and_then(|b| b.header.as_ref())
                .map(|h| short(&header_hash(h)))
                .unwrap_or_default()
        ),
        Wire::Vote(v) => format!(
            "vote t={} h={} r={} from={} value={}",
            v.vote_type,
            v.height,
            v.round,
            short(&v.validator_address),
            short(&v.block_hash)
        ),
        Wire::Raw(b) => format!("{} raw bytes", b.len()),
        Wire::Evidence(e) => format!("evidence {:?}", infraction_key(e)),
        Wire::Txs(t) => format!("{} txs", t.len()),
        Wire::Status(h) => format!("status {h}"),
        Wire::BlockRequest { from, count } => format!("request {from}+{count}"),
        Wire::BlockResponse(r) => format!(
            "response {} blocks, latest {}",
            r.blocks.len(),
            r.latest_height
        ),
    }
}

fn describe_action(a: &Action<usize>) -> String {
    match a {
        Action::BroadcastProposal(p) => {
            format!("broadcast {}", describe_wire(&Wire::Proposal(p.clone())))
        }
        Action::BroadcastVote(v) => format!("broadcast {}", describe_wire(&Wire::Vote(v.clone()))),
        Action::Commit(r) => format!(
            "COMMIT h={} r={} {} txs={} evidence={}",
            r.height,
            r.round,
            short(&r.block_hash),
            r.block.txs.len(),
            r.block.evidence.len()
        ),
        Action::Wal(_) => "wal".into(),
        other => format!("{other:?}").chars().take(200).collect(),
    }
}
