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
//! The host does what the node does around its engine: executes the
//! engine's actions in order ([`actions`]: signing state and WAL persisted
//! before anything is sent) and takes its commits ([`commit`]); keeps what
//! the node persists ([`host`]: signing state, the WAL of the current
//! height, committed blocks and certificates, the state after the last
//! one, validator-set changes, evidence-pool entries) and on restart
//! rebuilds the engine from them and replays the WAL ([`lifecycle`]);
//! calls `on_tick` every `TICK_MS` (re-gossip, sync polling) and sends its
//! height in `Status` messages; answers `BlockRequest`s from its store and
//! feeds `BlockResponse`s to the engine ([`receive`]); bans a peer the
//! engine penalises (the transport's temporary, doubling ban) and tells
//! the engine when a connection goes (crash, partition, ban). Connections
//! are reliable for requests and responses; gossip may be lost before GST
//! and duplicated ([`network`], carrying [`Wire`] messages).
//!
//! Every node takes and serves snapshots, and a scenario's late node
//! joins by the engine's own state-sync join ([`state_sync`]).
//!
//! Byzantine validators ([`byzantine`]) run the same engine behind a module
//! that rewrites what they send. The properties checked on every run are
//! in [`checks`]; what a run reports is in [`report`].
//!
//! This module is the event loop: the simulator's state, the queue of
//! events and what each event does.

mod actions;
mod byzantine;
mod checks;
mod commit;
mod genesis;
mod host;
mod lifecycle;
mod mempool;
mod network;
mod receive;
mod report;
mod scenario;
mod state_sync;
mod violation;
mod wire;
mod workload;

pub use checks::EVIDENCE_BOUND;
pub use report::{Coverage, Report};
pub use scenario::{
    Behaviour, Crash, HeaderFault, MAX_CLOCK_SKEW_MS, Scenario, SnapshotFault, Torn,
};
pub use violation::Violation;
pub use wire::Wire;

use actions::Origin;
use agora_validator::consensus::evidence::InfractionKey;
use agora_validator::consensus::{ConsensusConfig, Timeout};
use agora_validator::crypto::SecretKey;
use agora_validator::engine::{EngineConfig, TICK_MS};
use agora_validator::{Height, Round};
use commit::Decided;
use genesis::SimGenesis;
use host::Node;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use wire::SignedTag;
use workload::Workload;

/// Most events one run may process; a run that needs more is reported.
const MAX_EVENTS: u64 = 3_000_000;

/// Something that happens at a simulated time.
// Events are many and short-lived; boxing `Deliver` would cost an
// allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Event {
    /// A message arrives; `from_epoch` and `to_epoch` are the lives of the
    /// two ends it was sent between (a restart of either cuts it).
    Deliver {
        from: usize,
        from_epoch: u64,
        to: usize,
        to_epoch: u64,
        wire: Wire,
        tag: Option<SignedTag>,
    },
    /// A consensus timeout set by node `node` in its life `epoch`.
    Timer {
        node: usize,
        epoch: u64,
        timeout: Timeout,
    },
    /// Node `node`'s periodic tick (every `TICK_MS`) in its life `epoch`.
    Tick { node: usize, epoch: u64 },
    /// Node `node` starts the height after the one it committed.
    StartHeight {
        node: usize,
        epoch: u64,
        /// The height it starts: one whose start came early (on its
        /// proposal) and was decided meanwhile leaves this event stale, and
        /// it must not cut the next height's pause short (the node's
        /// runner keeps one pending start, replaced at each commit).
        height: u64,
    },
    /// A crash of a node (torn: armed, for how long it will be down).
    Crash(usize, Torn, u64),
    /// A crashed node boots again from its store.
    Restart(usize),
    /// A torn crash whose write has not come is called off.
    Disarm(usize),
    /// The scenario's partition starts (it ends by the clock alone: see
    /// `Sim::partitioned`).
    PartitionStart,
    /// The workload submits its next transaction.
    Workload,
    /// A node with an empty store starts to join by state sync.
    Join(usize),
    /// A node's clock is stepped: its skew from simulated time becomes
    /// the one given (ms).
    ClockStep(usize, i64),
    /// A joining node's join is driven (every `state_sync::JOIN_TICK_MS`),
    /// in the life `epoch` of the node that started it.
    JoinTick {
        /// The joining node.
        node: usize,
        /// Its life when the join started.
        epoch: u64,
    },
}

/// The simulator of one seed.
pub struct Sim {
    /// The scenario this run plays.
    sc: Scenario,
    /// Every engine's configuration.
    config: EngineConfig,
    /// The seeded generator every delay, loss, duplication and Byzantine
    /// choice is drawn from, in event order (so a seed replays exactly).
    rng: ChaCha8Rng,
    /// The genesis every node starts from, with the validators' addresses.
    g: SimGenesis,
    /// Each validator's consensus key, by node index.
    keys: Vec<SecretKey>,
    /// The validators' hosts, by node index.
    nodes: Vec<Node>,
    /// The seeded stream of transactions users submit.
    workload: Workload,
    /// Pending events by (time, sequence number): events due at the same
    /// time run in the order they were scheduled.
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    /// The pending events, by sequence number.
    events: BTreeMap<u64, Event>,
    /// The last sequence number given out.
    seq: u64,
    /// Simulated time (ms).
    now: u64,
    /// Events processed so far (at most `MAX_EVENTS`).
    processed: u64,
    /// First honest decision per height.
    decided: BTreeMap<Height, Decided>,
    /// Equivocations that reached an honest validator: first time, node.
    infractions: BTreeMap<InfractionKey, (u64, usize)>,
    /// Each node's clock minus simulated time now (ms): the scenario's
    /// skews, then its steps.
    skews_ms: Vec<i64>,
    /// (height, round) of every proposal an honest node made of a block it
    /// created: an honest node must find each such block valid.
    honest_proposals: BTreeSet<(Height, Round)>,
    /// Height every honest node must reach before the run may end.
    required: Height,
    /// Whether an equivocation's inclusion deadline is still ahead.
    evidence_pending: bool,
    /// Properties that failed so far.
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
        // Users bond only to validators that are honest and up from the
        // start: bonds to a late joiner could give it the power the chain
        // needs to decide the block its join waits for.
        let bondable: Vec<bool> = (0..sc.behaviours.len())
            .map(|i| sc.behaviours[i].is_honest() && !sc.is_joiner(i))
            .collect();
        let workload = Workload::new(sc.seed, &g, &bondable);
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
        let skews_ms = sc.clock_skews_ms.clone();
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
            honest_proposals: BTreeSet::new(),
            skews_ms,
            violations: Vec::new(),
            trace: std::env::var("SIM_TRACE").ok().and_then(|s| s.parse().ok()),
        };
        sim.schedule_scenario();
        for i in 0..sim.nodes.len() {
            let joins = sim.sc.is_joiner(i);
            if sim.nodes[i].behaviour != Behaviour::Silent && !joins {
                sim.boot(i);
            }
        }
        sim
    }

    /// Schedules `ev` at time `at` (after the events already due then).
    fn push(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.events.insert(self.seq, ev);
        self.queue.push(Reverse((at, self.seq)));
    }

    /// Queues what the scenario fixes in advance: crashes (each with its
    /// restart, or the disarming of a torn crash), the partition's start
    /// and the first transaction.
    fn schedule_scenario(&mut self) {
        for c in self.sc.crashes.clone() {
            self.push(c.at, Event::Crash(c.node, c.torn, c.down));
            if c.torn == Torn::No {
                self.push(c.at + c.down, Event::Restart(c.node));
            } else {
                self.push(c.at + Crash::TORN_WINDOW_MS, Event::Disarm(c.node));
            }
        }
        if let Some((_, start, _)) = &self.sc.partition {
            self.push(*start, Event::PartitionStart);
        }
        if self.sc.tx_interval_ms > 0 {
            let d = self.workload.next_delay(self.sc.tx_interval_ms);
            self.push(d, Event::Workload);
        }
        for (i, at) in self.sc.joiners.clone() {
            self.push(at, Event::Join(i));
        }
        for (i, at, skew) in self.sc.clock_steps.clone() {
            self.push(at, Event::ClockStep(i, skew));
        }
    }

    /// Whether node `i` is honest.
    fn honest(&self, i: usize) -> bool {
        self.nodes[i].behaviour.is_honest()
    }

    /// The honest nodes' indices.
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

    /// Updates what the run waits for: whether an equivocation's inclusion
    /// is still to be decided, and the height every honest node must reach.
    fn update_required(&mut self) {
        let (pending, height) = checks::evidence_progress(self);
        self.evidence_pending = pending;
        self.required = self.sc.target_height.max(height);
    }

    /// Node `i`'s clock: simulated time off by its current skew (never
    /// below 0; it steps back when a step lowers the skew). Everything a node's
    /// engine or join is told the time is reads this; the simulator's own
    /// schedule, bans and checks read simulated time.
    pub(super) fn clock(&self, i: usize) -> u64 {
        self.now.saturating_add_signed(self.skews_ms[i])
    }

    /// Whether the run may end: past GST (every crash, partition and join
    /// the scenario drew has happened; before session 50 a run could end
    /// before its later crashes), no inclusion pending, every honest node
    /// up at the required height, and every joiner joined and taking part
    /// ([`Self::joiner_settled`]).
    fn done(&self) -> bool {
        self.now >= self.sc.gst_ms
            && !self.evidence_pending
            && self.honest_nodes().all(|i| {
                self.nodes[i].engine.is_some() && self.nodes[i].store.tip_height() >= self.required
            })
            && self.sc.joiners.iter().all(|(j, _)| self.joiner_settled(*j))
    }

    /// Whether joiner `i` joined and takes part: its signing state is past
    /// its base, or its chain's next set leaves it out (a validator that
    /// missed most of the downtime window before it joined is jailed, and
    /// the simulated operators never unjail).
    fn joiner_settled(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        let Some(base) = n.joined_at else {
            return false;
        };
        let signed = n.store.signing.is_some_and(|g| g.height > base);
        let member = n
            .store
            .set_at(n.store.tip_height() + 1)
            .is_some_and(|set| set.index_of(&self.g.addresses[i]).is_some());
        signed || !member
    }

    /// Does what event `ev` says.
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
            Event::StartHeight {
                node,
                epoch,
                height,
            } => {
                let due = self.nodes[node]
                    .engine
                    .as_ref()
                    .is_some_and(|e| e.height() == height);
                if self.live(node, epoch) && due {
                    let r = self.with_engine(node, |e, m, now| e.start_height(now, m));
                    self.exec_result(node, r, Origin::Own);
                }
            }
            Event::Crash(i, Torn::No, _) => self.crash(i),
            Event::Crash(i, torn, down) => self.nodes[i].torn_crash = Some((torn, down)),
            Event::Restart(i) => self.restart(i),
            Event::Disarm(i) => self.nodes[i].torn_crash = None,
            Event::PartitionStart => self.partition_started(),
            Event::Workload => self.submit_tx(),
            Event::Join(i) => self.start_join(i),
            Event::ClockStep(i, skew) => self.skews_ms[i] = skew,
            Event::JoinTick { node, epoch } if self.nodes[node].epoch == epoch => {
                self.join_tick(node)
            }
            Event::JoinTick { .. } => {}
        }
    }

    /// The workload submits its next transaction to a live honest node
    /// (which admits and broadcasts it), and schedules the one after.
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
}
