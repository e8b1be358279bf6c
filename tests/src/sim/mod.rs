//! A deterministic simulator of the consensus core.
//!
//! N validators, each a pure [`Consensus`] core wrapped in a small host, talk
//! over a simulated network whose every decision (delay, loss, duplication,
//! partitions, crashes, Byzantine behaviour) comes from one seeded ChaCha
//! generator, so a seed replays a run exactly. Time is simulated: events sit
//! in a queue ordered by (time, sequence number).
//!
//! The hosts model what the real node does around the core: they persist the
//! signing state before sending, keep a WAL of the current height's inputs
//! (a restart keeps the signing state, the WAL and the committed blocks, and
//! replays the WAL), re-gossip periodically the current height's messages
//! the core verified and their own (which makes lost messages, and an
//! equivocator's votes that reached only some nodes, eventually arrive
//! everywhere), and fetch decided blocks with their certificates from peers
//! that are ahead (block sync).

mod checks;
mod scenario;

pub use checks::Violation;
pub use scenario::{Behaviour, Scenario};

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::consensus::evidence::InfractionKey;
use agora_validator::consensus::{
    Consensus, ConsensusConfig, HeightParams, Input, Output, SigningState, Timeout,
};
use agora_validator::crypto::{Hash, SecretKey, ZERO_HASH, sha3_256, vrf};
use agora_validator::signing::{proposal_bytes, vote_bytes};
use agora_validator::{ChainId, CommitCertificate, Height, Round, ValidatorSet, VoteType};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// How often a host rebroadcasts its own messages of the current height (ms).
const GOSSIP_INTERVAL_MS: u64 = 1_000;
/// Least time between two sync requests of one host (ms).
const SYNC_RETRY_MS: u64 = 200;

/// A message on the simulated wire.
#[derive(Debug, Clone)]
enum Wire {
    Proposal(Box<pb::Proposal>),
    Vote(pb::Vote),
    /// Bytes that claim to be a vote (junk from a Byzantine sender).
    Raw(Vec<u8>),
    SyncRequest(Height),
    SyncResponse(Box<(pb::Block, CommitCertificate)>),
}

/// What the simulator knows about a validly signed message (never shown to cores).
#[derive(Debug, Clone, Copy)]
struct SignedTag {
    key: InfractionKey,
    content: Hash,
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        wire: Wire,
        tag: Option<SignedTag>,
    },
    Timer {
        node: usize,
        epoch: u64,
        timeout: Timeout,
    },
    Gossip {
        node: usize,
        epoch: u64,
    },
    /// The host finished executing a block and starts the next height.
    StartHeight {
        node: usize,
        epoch: u64,
        params: Box<HeightParams>,
    },
    Crash(usize),
    Restart(usize),
}

/// One validator's host.
struct Node {
    core: Option<Consensus>,
    behaviour: Behaviour,
    /// Bumped on every restart so that timers of a previous life are ignored.
    epoch: u64,
    persisted: Option<SigningState>,
    /// Its own signed messages of the current height, which the host
    /// re-sends on every gossip tick (after a restart the core holds them
    /// unverified, and gossips only verified ones).
    wal: Vec<Wire>,
    /// The whole WAL, as the node keeps it: every proposal and vote of the
    /// current height, ours and those received, in order, replayed on boot
    /// (others' messages are not re-sent by the host itself; the core
    /// gossips them once verified).
    log: Vec<Wire>,
    /// Hashes of the received messages in `log`, so each is logged once.
    log_keys: BTreeSet<Hash>,
    /// Committed decisions by height (durable: kept across restarts).
    chain: BTreeMap<Height, agora_validator::consensus::Decision>,
    /// Hashes of messages fed to the core since the last gossip tick (a
    /// message is fed at most once per tick, so relays stay cheap).
    seen: BTreeSet<Hash>,
    peer_heights: BTreeMap<usize, Height>,
    last_sync_request: Option<u64>,
    /// Validly signed contents received per infraction key, in this life.
    received: BTreeMap<InfractionKey, BTreeSet<Hash>>,
    /// Evidence emitted, over all lives.
    evidence: Vec<pb::Evidence>,
    reached_target_at: Option<u64>,
}

/// Outcome of one run.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// What went wrong (empty if the run passed).
    pub violations: Vec<Violation>,
    /// Highest height decided by every live honest validator.
    pub min_honest_height: Height,
    /// Simulated time at the end (ms).
    pub end_time_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Evidence items emitted by honest validators.
    pub evidence_count: usize,
    /// Each node's final consensus state, for diagnosing a failing seed.
    pub final_states: Vec<String>,
}

/// The simulator of one seed.
pub struct Sim {
    sc: Scenario,
    config: ConsensusConfig,
    rng: ChaCha8Rng,
    chain: ChainId,
    set: ValidatorSet,
    keys: Vec<[u8; 32]>,
    genesis_seed: Hash,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    now: u64,
    processed: u64,
    /// First honest decision per height: (block hash, decider).
    decided: BTreeMap<Height, (Hash, usize)>,
    /// Split made by an equivocating proposer: (height, round) → (second half, block B hash).
    splits: BTreeMap<(Height, Round), (BTreeSet<usize>, Hash)>,
    violations: Vec<Violation>,
    /// Node whose inputs and outputs are printed (`SIM_TRACE=<node>`).
    trace: Option<usize>,
}

fn short(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(4)])
}

fn describe_input(i: &Input) -> String {
    match i {
        Input::Proposal(p) => format!(
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
        Input::Vote(v) => format!(
            "vote t={} h={} r={} from={} value={}",
            v.vote_type,
            v.height,
            v.round,
            short(&v.validator_address),
            short(&v.block_hash)
        ),
        Input::StartHeight(p) => format!("start height {}", p.height),
        Input::TimeoutFired(t) => format!("timeout {t:?}"),
        Input::BlockValidity {
            block_hash, valid, ..
        } => {
            format!("validity {} {valid}", short(block_hash))
        }
        Input::ProposalContent { height, round, .. } => format!("content h={height} r={round}"),
        Input::SyncedBlock { certificate, .. } => format!("synced h={}", certificate.height),
    }
}

fn describe_output(o: &Output) -> String {
    match o {
        Output::BroadcastProposal(p) => {
            format!(
                "broadcast {}",
                describe_input(&Input::Proposal((**p).clone()))
            )
        }
        Output::BroadcastVote(v) => {
            format!("broadcast {}", describe_input(&Input::Vote(v.clone())))
        }
        Output::Decided(d) => format!(
            "DECIDED h={} r={} {}",
            d.height,
            d.round,
            short(&d.block_hash)
        ),
        Output::ValidateBlock { round, .. } => format!("validate r={round}"),
        Output::EvidenceFound(_) => "evidence".into(),
        other => format!("{other:?}"),
    }
}

/// Most events one run may process; a run that needs more is reported.
const MAX_EVENTS: u64 = 3_000_000;

fn secret(seed: &[u8; 32]) -> SecretKey {
    SecretKey::from_seed(seed).expect("32-byte seed is a valid key seed")
}

impl Sim {
    /// Builds the simulator of `sc` with `config` for every core.
    pub fn new(sc: Scenario, config: ConsensusConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(sc.seed ^ 0x5eed_0fa6_0a00);
        let keys: Vec<[u8; 32]> = (0..sc.powers.len())
            .map(|i| sha3_256(format!("sim-key-{}-{i}", sc.seed).as_bytes()))
            .collect();
        let validators = keys
            .iter()
            .zip(&sc.powers)
            .map(|(k, p)| agora_validator::Validator::new(secret(k).public_key(), *p))
            .collect();
        let set = ValidatorSet::new(validators).expect("scenario powers are valid");
        let chain = ChainId::new("agora-sim").expect("valid chain id");
        let genesis_seed = vrf::genesis_seed(&sha3_256(b"sim genesis"));
        let nodes = (0..keys.len())
            .map(|i| Node {
                core: None,
                behaviour: sc.behaviours[i],
                epoch: 0,
                persisted: None,
                chain: BTreeMap::new(),
                wal: Vec::new(),
                log: Vec::new(),
                log_keys: BTreeSet::new(),
                seen: BTreeSet::new(),
                peer_heights: BTreeMap::new(),
                last_sync_request: None,
                received: BTreeMap::new(),
                evidence: Vec::new(),
                reached_target_at: None,
            })
            .collect();
        let mut sim = Self {
            sc,
            config,
            rng,
            chain,
            set,
            keys,
            genesis_seed,
            nodes,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            now: 0,
            processed: 0,
            decided: BTreeMap::new(),
            splits: BTreeMap::new(),
            violations: Vec::new(),
            trace: std::env::var("SIM_TRACE").ok().and_then(|s| s.parse().ok()),
        };
        for (node, at, back) in sim.sc.crashes.clone() {
            sim.push(at, Event::Crash(node));
            sim.push(back, Event::Restart(node));
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
        self.nodes[i].behaviour == Behaviour::Honest
    }

    fn address(&self, i: usize) -> Vec<u8> {
        agora_validator::Address::of(&secret(&self.keys[i]).public_key())
            .0
            .to_vec()
    }

    fn boot(&mut self, i: usize) {
        let core = Consensus::new(
            self.config,
            self.chain.clone(),
            Some(secret(&self.keys[i])),
            self.nodes[i].persisted,
        );
        let n = &mut self.nodes[i];
        n.core = Some(core);
        // A restart keeps what a node persists: the signing state (passed to
        // the core above), the WAL of the current height (replayed below)
        // and the committed blocks with their certificates (its block
        // store). Everything else is lost.
        n.received.clear();
        n.seen.clear();
        n.peer_heights.clear();
        n.last_sync_request = None;
        let epoch = n.epoch;
        let params = match n.chain.values().next_back() {
            Some(d) => HeightParams {
                height: d.height + 1,
                validator_set: self.set.clone(),
                prev_seed: d.seed,
                parent_hash: d.block_hash,
                last_commit: Some(d.certificate.clone()),
            },
            None => HeightParams {
                height: 1,
                validator_set: self.set.clone(),
                prev_seed: self.genesis_seed,
                parent_hash: ZERO_HASH,
                last_commit: None,
            },
        };
        let h = params.height;
        self.feed(i, Input::StartHeight(Box::new(params)));
        for w in self.nodes[i].log.clone() {
            match w {
                Wire::Proposal(p) if p.height == h => {
                    self.feed(i, Input::Proposal(*p));
                }
                Wire::Vote(v) if v.height == h => {
                    self.feed(i, Input::Vote(v));
                }
                _ => {}
            }
        }
        let at = self.now + GOSSIP_INTERVAL_MS;
        self.push(at, Event::Gossip { node: i, epoch });
    }

    /// Runs to the target height or the deadline, then checks everything.
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
            if self.all_reached() {
                break;
            }
        }
        checks::final_checks(&mut self);
        let min_honest_height = (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .map(|i| self.nodes[i].chain.keys().next_back().copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let evidence_count = (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .map(|i| self.nodes[i].evidence.len())
            .sum();
        let final_states = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.core {
                Some(c) => format!(
                    "node {i} {:?}: h={} r={} step={:?} locked={:?} valid={:?} decided={} stats={:?}",
                    n.behaviour,
                    c.height(),
                    c.round(),
                    c.step(),
                    c.locked().map(|(v, r)| (hex::encode(&v[..4]), r)),
                    c.valid().map(|(v, r)| (hex::encode(&v[..4]), r)),
                    c.is_decided(),
                    c.stats()
                ),
                None => format!("node {i} {:?}: down", n.behaviour),
            })
            .collect();
        Report {
            final_states,
            seed: self.sc.seed,
            violations: self.violations,
            min_honest_height,
            end_time_ms: self.now,
            events: self.processed,
            evidence_count,
        }
    }

    fn all_reached(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.behaviour != Behaviour::Honest || n.chain.contains_key(&self.sc.target_height)
        })
    }

    fn dispatch(&mut self, ev: Event) {
        match ev {
            Event::Deliver {
                from,
                to,
                wire,
                tag,
            } => self.deliver(from, to, wire, tag),
            Event::Timer {
                node,
                epoch,
                timeout,
            } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].core.is_some() {
                    self.feed(node, Input::TimeoutFired(timeout));
                }
            }
            Event::Gossip { node, epoch } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].core.is_some() {
                    // Gossip what the core holds (its own and others'
                    // verified messages of the current height), as
                    // Tendermint's reactor gossips from its vote sets.
                    self.nodes[node].seen.clear();
                    let (proposals, votes) = self.nodes[node]
                        .core
                        .as_ref()
                        .map(|c| c.gossip_messages())
                        .unwrap_or_default();
                    if self.trace == Some(node) {
                        eprintln!(
                            "[{} ms] node {node} gossips {} proposals, {} votes",
                            self.now,
                            proposals.len(),
                            votes.len()
                        );
                    }
                    // The WAL too: after a restart the core holds its own
                    // replayed votes unverified, and gossips only verified ones.
                    for w in self.nodes[node].wal.clone() {
                        let tag = match &w {
                            Wire::Proposal(p) => self.proposal_tag(p),
                            Wire::Vote(v) => self.vote_tag(v),
                            _ => None,
                        };
                        self.broadcast(node, w, tag);
                    }
                    for p in proposals {
                        let tag = self.proposal_tag(&p);
                        self.broadcast(node, Wire::Proposal(Box::new(p)), tag);
                    }
                    for v in votes {
                        let tag = self.vote_tag(&v);
                        self.broadcast(node, Wire::Vote(v), tag);
                    }
                    let at = self.now + GOSSIP_INTERVAL_MS;
                    self.push(at, Event::Gossip { node, epoch });
                }
            }
            Event::StartHeight {
                node,
                epoch,
                params,
            } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].core.is_some() {
                    self.feed(node, Input::StartHeight(params));
                }
            }
            Event::Crash(i) => {
                let n = &mut self.nodes[i];
                n.core = None;
                n.epoch += 1;
            }
            Event::Restart(i) => self.boot(i),
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
        if from == to || self.partitioned(from, to) {
            return;
        }
        if self.now < self.sc.gst_ms && self.sc.loss > 0.0 && self.rng.random_bool(self.sc.loss) {
            return;
        }
        let copies = if self.sc.duplication > 0.0 && self.rng.random_bool(self.sc.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .random_range(self.sc.delay_min_ms..=self.sc.delay_max_ms);
            self.push(
                self.now + delay,
                Event::Deliver {
                    from,
                    to,
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

    fn deliver(&mut self, from: usize, to: usize, wire: Wire, tag: Option<SignedTag>) {
        let Some(core) = self.nodes[to].core.as_ref() else {
            return;
        };
        let (own_h, own_r, max_ahead) =
            (core.height(), core.round(), core.config().max_rounds_ahead);
        let msg_hr = match &wire {
            Wire::Proposal(p) => Some((p.height, p.round)),
            Wire::Vote(v) => Some((v.height, v.round)),
            _ => None,
        };
        if let Some((h, _)) = msg_hr {
            let seen = self.nodes[to].peer_heights.entry(from).or_default();
            *seen = (*seen).max(h);
            if h > own_h {
                self.maybe_sync(to, from);
            }
        }
        if let Some((h, _)) = msg_hr
            && h == own_h
        {
            let bytes = match &wire {
                Wire::Proposal(p) => p.encode_to_vec(),
                Wire::Vote(v) => v.encode_to_vec(),
                _ => Vec::new(),
            };
            let key = sha3_256(&bytes);
            if self.nodes[to].seen.insert(key) {
                if self.nodes[to].log_keys.insert(key) {
                    self.nodes[to].log.push(wire.clone());
                }
                // What the checker expects to become evidence: validly signed
                // messages the core was actually given at its height and
                // within its round window.
                if let Some(tag) = tag
                    && msg_hr.is_some_and(|(_, r)| r <= own_r.saturating_add(max_ahead))
                {
                    self.nodes[to]
                        .received
                        .entry(tag.key)
                        .or_default()
                        .insert(tag.content);
                }
                self.feed(
                    to,
                    match wire {
                        Wire::Proposal(p) => Input::Proposal(*p),
                        Wire::Vote(v) => Input::Vote(v),
                        _ => unreachable!("only proposals and votes have a height"),
                    },
                );
            }
            return;
        }
        match wire {
            Wire::Proposal(p) => {
                self.feed(to, Input::Proposal(*p));
            }
            Wire::Vote(v) => {
                self.feed(to, Input::Vote(v));
            }
            Wire::Raw(bytes) => {
                // The host decodes; junk that does not decode never reaches the core.
                if let Ok(v) = pb::Vote::decode(bytes.as_slice()) {
                    self.feed(to, Input::Vote(v));
                }
            }
            Wire::SyncRequest(h) => {
                if let Some(d) = self.nodes[to].chain.get(&h) {
                    let resp =
                        Wire::SyncResponse(Box::new((d.block.clone(), d.certificate.clone())));
                    self.send(to, from, resp, None);
                }
            }
            Wire::SyncResponse(b) => {
                let (block, certificate) = *b;
                if certificate.height == own_h {
                    self.feed(to, Input::SyncedBlock { block, certificate });
                }
            }
        }
    }

    fn maybe_sync(&mut self, node: usize, peer: usize) {
        let n = &mut self.nodes[node];
        if n.last_sync_request
            .is_some_and(|t| self.now < t + SYNC_RETRY_MS)
        {
            return;
        }
        n.last_sync_request = Some(self.now);
        let h = n.core.as_ref().map_or(0, |c| c.height());
        self.send(node, peer, Wire::SyncRequest(h), None);
    }

    // ---- host ----------------------------------------------------------------

    /// Feeds an input and everything the host answers in turn; returns
    /// false if the core rejected the first input.
    fn feed(&mut self, i: usize, input: Input) -> bool {
        let mut inputs = std::collections::VecDeque::from([input]);
        let mut first = true;
        let mut accepted = true;
        while let Some(input) = inputs.pop_front() {
            let Some(core) = self.nodes[i].core.as_mut() else {
                return false;
            };
            let trace = self.trace == Some(i);
            let desc = if trace {
                describe_input(&input)
            } else {
                String::new()
            };
            let outputs = core.handle(input);
            if trace {
                eprintln!("[{} ms] node {i} <- {desc}", self.now);
                for o in &outputs {
                    eprintln!("    -> {}", describe_output(o));
                }
            }
            if first {
                accepted = !outputs.iter().any(|o| matches!(o, Output::Rejected(_)));
                first = false;
            }
            for o in outputs {
                self.act(i, o, &mut inputs);
            }
        }
        accepted
    }

    fn act(&mut self, i: usize, o: Output, inputs: &mut std::collections::VecDeque<Input>) {
        match o {
            Output::PersistSigningState(s) => self.nodes[i].persisted = Some(s),
            Output::BroadcastProposal(p) => {
                self.nodes[i].wal.push(Wire::Proposal(p.clone()));
                self.nodes[i].log.push(Wire::Proposal(p.clone()));
                self.send_proposal(i, *p)
            }
            Output::BroadcastVote(v) => {
                self.nodes[i].wal.push(Wire::Vote(v.clone()));
                self.nodes[i].log.push(Wire::Vote(v.clone()));
                self.send_vote(i, v)
            }
            Output::ScheduleTimeout {
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
            Output::RequestProposal { height, round } => {
                let block = self.template(i, height);
                inputs.push_back(Input::ProposalContent {
                    height,
                    round,
                    block,
                });
            }
            Output::ValidateBlock {
                height,
                round,
                block,
            } => {
                let valid = self.validate(i, height, &block);
                inputs.push_back(Input::BlockValidity {
                    height,
                    round,
                    block_hash: block.header.as_ref().map(header_hash).unwrap_or(ZERO_HASH),
                    valid,
                });
            }
            Output::Decided(d) => {
                let d = *d;
                checks::on_decision(self, i, &d);
                let params = HeightParams {
                    height: d.height + 1,
                    validator_set: self.set.clone(),
                    prev_seed: d.seed,
                    parent_hash: d.block_hash,
                    last_commit: Some(d.certificate.clone()),
                };
                let h = d.height;
                let n = &mut self.nodes[i];
                n.wal.clear();
                n.log.clear();
                n.log_keys.clear();
                n.chain.insert(h, d);
                if h == self.sc.target_height && n.reached_target_at.is_none() {
                    n.reached_target_at = Some(self.now);
                }
                let epoch = n.epoch;
                self.push(
                    self.now,
                    Event::StartHeight {
                        node: i,
                        epoch,
                        params: Box::new(params),
                    },
                );
                let n = &mut self.nodes[i];
                // Keep syncing while a peer is known to be ahead.
                let ahead = n
                    .peer_heights
                    .iter()
                    .filter(|(_, ph)| **ph > h + 1)
                    .map(|(p, _)| *p)
                    .next();
                if let Some(peer) = ahead {
                    n.last_sync_request = Some(self.now);
                    self.send(i, peer, Wire::SyncRequest(h + 1), None);
                }
            }
            Output::EvidenceFound(ev) => self.nodes[i].evidence.push(ev),
            Output::Rejected(_) => {}
        }
    }

    fn template(&self, i: usize, height: Height) -> pb::Block {
        let last = self.nodes[i].chain.get(&(height - 1));
        let parent_hash = last.map_or(ZERO_HASH, |d| d.block_hash);
        let last_commit = last.map(|d| d.certificate.to_proto());
        let header = pb::Header {
            chain_id: self.chain.as_str().to_string(),
            height,
            parent_hash: parent_hash.to_vec(),
            last_commit_hash: last.map_or(ZERO_HASH, |d| d.certificate.hash()).to_vec(),
            validators_hash: self.set.hash().to_vec(),
            next_validators_hash: self.set.hash().to_vec(),
            time_ms: self.now,
            ..Default::default()
        };
        pb::Block {
            header: Some(header),
            txs: Vec::new(),
            evidence: Vec::new(),
            last_commit,
        }
    }

    /// The host's content check: the block carries the previous certificate.
    fn validate(&self, _i: usize, height: Height, block: &pb::Block) -> bool {
        let Some(header) = block.header.as_ref() else {
            return false;
        };
        match (&block.last_commit, height) {
            (None, 1) => header.last_commit_hash == ZERO_HASH.to_vec(),
            (Some(c), h) if h > 1 => CommitCertificate::from_proto(c)
                .is_ok_and(|c| c.height == h - 1 && c.hash().to_vec() == header.last_commit_hash),
            _ => false,
        }
    }

    fn proposal_tag(&self, p: &pb::Proposal) -> Option<SignedTag> {
        let hash = header_hash(p.block.as_ref()?.header.as_ref()?);
        let offender = agora_validator::Address::from_slice(&p.proposer_address).ok()?;
        Some(SignedTag {
            key: InfractionKey {
                offender,
                height: p.height,
                round: p.round,
                kind: 0,
            },
            content: sha3_256(&[&hash[..], &p.pol_round.to_be_bytes()].concat()),
        })
    }

    fn vote_tag(&self, v: &pb::Vote) -> Option<SignedTag> {
        let offender = agora_validator::Address::from_slice(&v.validator_address).ok()?;
        let mut content = ZERO_HASH;
        if !v.block_hash.is_empty() {
            content.copy_from_slice(&v.block_hash);
        }
        Some(SignedTag {
            key: InfractionKey {
                offender,
                height: v.height,
                round: v.round,
                kind: v.vote_type as u8,
            },
            content,
        })
    }

    fn halves(&mut self, i: usize) -> (Vec<usize>, BTreeSet<usize>) {
        let mut a = Vec::new();
        let mut b = BTreeSet::new();
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            if self.rng.random_bool(0.5) {
                a.push(j);
            } else {
                b.insert(j);
            }
        }
        (a, b)
    }

    fn send_proposal(&mut self, i: usize, p: pb::Proposal) {
        let tag = self.proposal_tag(&p);
        let behaviour = self.nodes[i].behaviour;
        if behaviour != Behaviour::Equivocator || p.pol_round != -1 {
            self.broadcast(i, Wire::Proposal(Box::new(p)), tag);
            return;
        }
        // A second block for the same (height, round), signed directly with the key.
        let mut alt = p.clone();
        let Some(header) = alt.block.as_mut().and_then(|b| b.header.as_mut()) else {
            return;
        };
        header.time_ms += 1;
        let alt_hash = header_hash(header);
        let bytes = proposal_bytes(&self.chain, p.height, p.round, p.pol_round, &alt_hash);
        alt.signature = secret(&self.keys[i]).sign(&bytes).to_bytes().to_vec();
        let alt_tag = self.proposal_tag(&alt);
        let (a, b) = self.halves(i);
        for j in a {
            self.send(i, j, Wire::Proposal(Box::new(p.clone())), tag);
        }
        for j in &b {
            self.send(i, *j, Wire::Proposal(Box::new(alt.clone())), alt_tag);
        }
        self.splits.insert((p.height, p.round), (b, alt_hash));
    }

    fn signed_vote(&self, i: usize, v: &pb::Vote, value: Hash) -> pb::Vote {
        let vt = VoteType::from_i32(v.vote_type).unwrap_or(VoteType::Prevote);
        let bytes = vote_bytes(&self.chain, vt, v.height, v.round, &value);
        pb::Vote {
            block_hash: if value == ZERO_HASH {
                Vec::new()
            } else {
                value.to_vec()
            },
            signature: secret(&self.keys[i]).sign(&bytes).to_bytes().to_vec(),
            ..v.clone()
        }
    }

    fn send_vote(&mut self, i: usize, v: pb::Vote) {
        let tag = self.vote_tag(&v);
        match self.nodes[i].behaviour {
            Behaviour::Honest | Behaviour::Silent => self.broadcast(i, Wire::Vote(v), tag),
            Behaviour::Equivocator => {
                let (a, b, other) = match self.splits.get(&(v.height, v.round)) {
                    // Vote for block A to the half that saw A, for B to the other.
                    Some((half_b, alt)) if !v.block_hash.is_empty() => {
                        let a: Vec<usize> = (0..self.nodes.len())
                            .filter(|j| *j != i && !half_b.contains(j))
                            .collect();
                        (a, half_b.clone(), *alt)
                    }
                    _ => {
                        let (a, b) = self.halves(i);
                        let other = if v.block_hash.is_empty() {
                            sha3_256(&v.round.to_be_bytes())
                        } else {
                            ZERO_HASH
                        };
                        (a, b, other)
                    }
                };
                let w = self.signed_vote(i, &v, other);
                let wtag = self.vote_tag(&w);
                for j in a {
                    self.send(i, j, Wire::Vote(v.clone()), tag);
                }
                for j in b {
                    self.send(i, j, Wire::Vote(w.clone()), wtag);
                }
            }
            Behaviour::Junk => {
                self.broadcast(i, Wire::Vote(v.clone()), tag);
                self.send_junk(i, &v);
            }
        }
    }

    fn send_junk(&mut self, i: usize, v: &pb::Vote) {
        let n = self.nodes.len();
        let to = self.rng.random_range(0..n);
        let victim = self.rng.random_range(0..n);
        let kind = self.rng.random_range(0..5);
        let wire = match kind {
            // Random bytes.
            0 => {
                let len = self.rng.random_range(0..200);
                Wire::Raw((0..len).map(|_| self.rng.random()).collect())
            }
            // A signature that does not decode.
            1 => {
                let mut w = v.clone();
                w.signature = (0..96).map(|_| self.rng.random()).collect();
                Wire::Vote(w)
            }
            // Our own valid signature, claimed in another validator's name.
            2 => {
                let mut w = v.clone();
                w.validator_address = self.address(victim);
                Wire::Vote(w)
            }
            // A valid encoding signing other bytes.
            3 => {
                let mut w = v.clone();
                w.signature = secret(&self.keys[i]).sign(b"junk").to_bytes().to_vec();
                Wire::Raw(w.encode_to_vec())
            }
            // A proposal for a round in someone else's name.
            _ => Wire::Proposal(Box::new(pb::Proposal {
                height: v.height,
                round: v.round,
                pol_round: -1,
                block: Some(self.template(i, v.height.max(1))),
                proposer_address: self.address(victim),
                signature: secret(&self.keys[i]).sign(b"junk").to_bytes().to_vec(),
            })),
        };
        self.send(i, to, wire, None);
    }
}
