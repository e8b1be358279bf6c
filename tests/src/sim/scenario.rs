//! Random scenarios: one seed fixes the validators, their power, who is
//! Byzantine and how, every network fault and the workload; plus the
//! hand-built scenarios of the negative controls.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// How a proposer breaks the header rules (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFault {
    /// `proposal_round` is the round after the one it proposes in.
    WrongRound,
    /// `time_ms` far beyond the allowed clock drift.
    FutureTime,
    /// `time_ms` equal to the parent's (not after it).
    StaleTime,
    /// `app_hash` that is not the state after the parent.
    WrongAppHash,
}

/// How a validator behaves. Each Byzantine behaviour is one module of
/// `sim::byzantine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol (it may still crash and restart).
    Honest,
    /// Byzantine: never sends anything.
    Silent,
    /// Byzantine: proposes two blocks to two halves of the peers and sends
    /// conflicting votes to different peers, at every height.
    Equivocator,
    /// Byzantine: follows the protocol but also sends junk bytes, bad
    /// signatures and votes forged in other validators' names.
    Junk,
    /// Byzantine: signs two different prevotes once, at its first prevote
    /// from `at_height` on, sends both to everyone, then behaves.
    OneOffEquivocator {
        /// First height at which it equivocates.
        at_height: u64,
    },
    /// Byzantine: every fresh block it proposes breaks a header rule (the
    /// proposal is signed again over the broken header).
    BadProposer(HeaderFault),
    /// Byzantine: answers sync requests with genuine headers and
    /// certificates but forged bodies, and sends unsolicited responses.
    TamperingServer,
    /// Byzantine: announces a huge height; when asked, answers with no
    /// blocks (`answers`) or not at all.
    FalseHeight {
        /// Whether it answers requests (with nothing).
        answers: bool,
    },
    /// Byzantine: relays every proposal it receives with a swapped body
    /// (header and signature untouched).
    BodySwapper,
    /// Byzantine: sends its vote paired with an honest validator's vote for
    /// the same message, the signatures shifted so that only their sum
    /// verifies.
    Canceller,
    /// Byzantine: with each of its votes, also votes for nil, every block
    /// it has seen proposed at the height and two made-up blocks, to every
    /// peer.
    VoteStuffer,
    /// Byzantine: follows the protocol in consensus but serves a joining
    /// node bad snapshots (`sim/state_sync.rs`).
    BadSnapshots(SnapshotFault),
}

/// How a snapshot server lies to a node joining by state sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFault {
    /// Offers the genuine snapshot, serves chunks with a leaf changed.
    ForgedChunks,
    /// Offers its genuine height with a manifest of another state.
    OtherManifest,
    /// Offers a snapshot higher than any other with a seed of its own.
    WrongSeed,
    /// Offers the genuine snapshot, never answers a chunk request.
    Silent,
}

impl SnapshotFault {
    /// Every fault, in a fixed order.
    pub const ALL: [Self; 4] = [
        Self::ForgedChunks,
        Self::OtherManifest,
        Self::WrongSeed,
        Self::Silent,
    ];
}

impl Behaviour {
    /// Whether the validator is honest.
    pub fn is_honest(&self) -> bool {
        *self == Self::Honest
    }
}

/// A crash of an honest node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// The node.
    pub node: usize,
    /// When it crashes (ms); a torn crash is armed then, and disarmed
    /// [`Crash::TORN_WINDOW_MS`] later if its write has not come.
    pub at: u64,
    /// How long it stays down (ms).
    pub down: u64,
    /// Where the crash falls.
    pub torn: Torn,
}

impl Crash {
    /// How long a torn crash waits for its write.
    pub const TORN_WINDOW_MS: u64 = 2_000;

    /// A crash between two batches of actions at `at`, back at `back`.
    pub fn clean(node: usize, at: u64, back: u64) -> Self {
        Self {
            node,
            at,
            down: back - at,
            torn: Torn::No,
        }
    }

    /// The latest time it can be back up.
    pub fn latest_back(&self) -> u64 {
        match self.torn {
            Torn::No => self.at + self.down,
            _ => self.at + Self::TORN_WINDOW_MS + self.down,
        }
    }
}

/// Where a crash falls relative to the node's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torn {
    /// Between two batches of actions: every write of the last one done.
    No,
    /// Inside the node's next signing-state write after `at` (back `down`
    /// after it): the WAL records before it are on disk if the host synced
    /// the WAL first for that state (`WalSync`), the signing state is not,
    /// and nothing after it happened.
    NextSigning,
    /// Like `NextSigning`, at the next write that covers a proposal.
    NextProposal,
    /// Right after the batch of actions that sends the node's next
    /// precommit: the precommit went out, the signing state and the WAL as
    /// far as the host synced it are on disk, and the rest of the WAL is
    /// lost.
    AfterPrecommit,
}

/// Everything a run depends on.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// Voting power per node (its genesis self-bond in units of power).
    pub powers: Vec<u64>,
    /// Behaviour per node.
    pub behaviours: Vec<Behaviour>,
    /// Least one-way delay (ms).
    pub delay_min_ms: u64,
    /// Largest one-way delay (ms).
    pub delay_max_ms: u64,
    /// Loss probability of gossip before GST.
    pub loss: f64,
    /// Duplication probability of gossip.
    pub duplication: f64,
    /// One side of a partition, and when it starts and heals (ms).
    pub partition: Option<(BTreeSet<usize>, u64, u64)>,
    /// Crashes of honest nodes.
    pub crashes: Vec<Crash>,
    /// Global stabilisation time: every partition healed, every node restarted, loss off.
    pub gst_ms: u64,
    /// Height every honest validator must reach (the run goes on past it
    /// while an equivocation's inclusion deadline is not reached).
    pub target_height: u64,
    /// Simulated time after GST within which the target must be reached (ms).
    pub liveness_bound_ms: u64,
    /// Mean time between two workload transactions (ms); 0: no workload.
    pub tx_interval_ms: u64,
    /// Each node's `timeout_commit` (ms): the pause between its commit and
    /// its next height. Operators choose their own, so nodes differ; a node
    /// whose pause outlasts the proposer's starts on the next proposal
    /// (`engine/early_start.rs`).
    pub commit_pauses_ms: Vec<u64>,
    /// Honest nodes that start late with an empty store and join by state
    /// sync: (node, when in ms).
    pub joiners: Vec<(usize, u64)>,
    /// Each node's clock minus simulated time (ms) at the start, within
    /// ±[`MAX_CLOCK_SKEW_MS`]: what its engine is told the time is.
    pub clock_skews_ms: Vec<i64>,
    /// Steps of a node's clock (an NTP correction, possibly backwards), at
    /// most one per node: (node, when in ms, its skew from then on).
    pub clock_steps: Vec<(usize, u64, i64)>,
}

/// Largest offset of a node's clock from simulated time (ms): a quarter of
/// the default `max_clock_drift_ms` (2 s). A proposer dates its block at
/// most half the drift ahead of its own clock (`engine/start_pause.rs`),
/// so with two clocks at most half the drift apart an honest block is
/// never more than the drift ahead of an honest receiver's clock: the
/// skew honest operators' clocks must stay within.
pub const MAX_CLOCK_SKEW_MS: i64 = 500;

/// Which draws of the random mix a scenario takes. Each session's new
/// draws come last, so a seed drawn before them replays as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Draws {
    /// Before late joiners (session 50).
    BeforeJoiners,
    /// Before clock skews (session 51).
    BeforeClockSkews,
    /// Every draw.
    All,
}

fn byzantine_kind(rng: &mut ChaCha8Rng) -> Behaviour {
    match rng.random_range(0..13) {
        0 => Behaviour::Silent,
        1 => Behaviour::Junk,
        2 | 3 => Behaviour::Equivocator,
        4 | 5 => Behaviour::OneOffEquivocator {
            at_height: rng.random_range(1..=4),
        },
        6 => Behaviour::BadProposer(HeaderFault::WrongRound),
        7 => Behaviour::BadProposer(match rng.random_range(0..3) {
            0 => HeaderFault::FutureTime,
            1 => HeaderFault::StaleTime,
            _ => HeaderFault::WrongAppHash,
        }),
        8 | 9 => Behaviour::TamperingServer,
        10 => Behaviour::FalseHeight {
            answers: rng.random_bool(0.5),
        },
        11 => Behaviour::BodySwapper,
        _ => Behaviour::Canceller,
    }
}

/// Each equivocator, with probability 1/2, becomes a vote stuffer.
fn stuff_some_equivocators(rng: &mut ChaCha8Rng, behaviours: Vec<Behaviour>) -> Vec<Behaviour> {
    behaviours
        .into_iter()
        .map(|b| match b {
            Behaviour::Equivocator if rng.random_bool(0.5) => Behaviour::VoteStuffer,
            b => b,
        })
        .collect()
}

/// Who is Byzantine and how: with probability 0.8, validators in a seeded
/// order turn Byzantine while their power stays under a third of the
/// total, stopping early at random.
fn random_behaviours(rng: &mut ChaCha8Rng, powers: &[u64]) -> Vec<Behaviour> {
    let n = powers.len();
    let total: u64 = powers.iter().sum();
    let mut behaviours = vec![Behaviour::Honest; n];
    if rng.random_bool(0.8) {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let mut byz = 0;
        for i in order {
            // Strictly less than a third of the power. The workload
            // only bonds to honest validators and unbonds what it
            // bonded, so the share only shrinks.
            if 3 * (byz + powers[i]) < total {
                byz += powers[i];
                behaviours[i] = byzantine_kind(rng);
                if rng.random_bool(0.4) {
                    break;
                }
            }
        }
    }
    behaviours
}

/// With probability 0.4, a partition: one non-empty side short of
/// everyone, cut for 0.5–6 s starting in the first 3 s.
fn random_partition(rng: &mut ChaCha8Rng, n: usize) -> Option<(BTreeSet<usize>, u64, u64)> {
    rng.random_bool(0.4).then(|| {
        let mut side = BTreeSet::new();
        while side.is_empty() || side.len() == n {
            side = (0..n).filter(|_| rng.random_bool(0.5)).collect();
        }
        let start = rng.random_range(0..3_000);
        (side, start, start + rng.random_range(500..6_000))
    })
}

/// With probability 0.5, crashes of one or two `honest` nodes in the first
/// 5 s, half of them torn (see [`Torn`]).
fn random_crashes(rng: &mut ChaCha8Rng, honest: &[usize]) -> Vec<Crash> {
    let mut crashes = Vec::new();
    if rng.random_bool(0.5) {
        let k = rng.random_range(1..=2usize.min(honest.len()));
        let mut pick = honest.to_vec();
        pick.shuffle(rng);
        for node in pick.into_iter().take(k) {
            let at = rng.random_range(0..5_000);
            // Half of the crashes are long enough for the others to
            // move several heights on: the node must sync.
            let down = if rng.random_bool(0.5) {
                rng.random_range(300..2_000)
            } else {
                rng.random_range(2_000..7_000)
            };
            let torn = match rng.random_range(0..4) {
                0 => Torn::NextSigning,
                1 => Torn::NextProposal,
                2 => Torn::AfterPrecommit,
                _ => Torn::No,
            };
            crashes.push(Crash {
                node,
                at,
                down,
                torn,
            });
        }
    }
    crashes
}

/// Half of the scenarios pause nothing after a commit (as the benchmarks
/// run); the others give each node one of 0, 30, 100 or 300 ms.
fn random_commit_pauses(rng: &mut ChaCha8Rng, n: usize) -> Vec<u64> {
    if rng.random_bool(0.5) {
        return vec![0; n];
    }
    (0..n)
        .map(|_| [0, 30, 100, 300][rng.random_range(0..4usize)])
        .collect()
}

/// With probability 1/4, a late joiner: an honest node that the drawn
/// crashes spare, whose power and the Byzantine power stay under a third
/// of the total (the others must decide the heights its snapshot and
/// anchor need without it), starting with an empty store at 0.5–6 s. Each
/// Byzantine validator then serves bad snapshots instead, with probability
/// 1/2, and with probability 1/3 the joiner itself crashes, 0–3 s or
/// 8–15 s after its start, for 0.3–3 s (while joining, it joins again;
/// once joined, it restarts from the base it installed).
fn random_joiner(
    rng: &mut ChaCha8Rng,
    powers: &[u64],
    behaviours: &mut [Behaviour],
    crashes: &mut Vec<Crash>,
) -> Option<(usize, u64)> {
    if !rng.random_bool(0.25) {
        return None;
    }
    let total: u64 = powers.iter().sum();
    let byz: u64 = (0..powers.len())
        .filter(|i| !behaviours[*i].is_honest())
        .map(|i| powers[i])
        .sum();
    let candidates: Vec<usize> = (0..powers.len())
        .filter(|i| behaviours[*i].is_honest() && !crashes.iter().any(|c| c.node == *i))
        .filter(|i| 3 * (byz + powers[*i]) < total)
        .collect();
    let joiner = *candidates.choose(rng)?;
    for b in behaviours.iter_mut() {
        if !b.is_honest() && rng.random_bool(0.5) {
            *b = Behaviour::BadSnapshots(SnapshotFault::ALL[rng.random_range(0..4usize)]);
        }
    }
    let at = rng.random_range(500..6_000);
    if rng.random_bool(1.0 / 3.0) {
        // Early, most often while it joins; or late, most often after.
        let after = if rng.random_bool(0.5) {
            rng.random_range(0..3_000)
        } else {
            rng.random_range(8_000..15_000)
        };
        let crash_at = at + after;
        let back = crash_at + rng.random_range(300..3_000);
        crashes.push(Crash::clean(joiner, crash_at, back));
    }
    Some((joiner, at))
}

/// With probability 1/2, every node's clock is off simulated time by up
/// to [`MAX_CLOCK_SKEW_MS`] either way, and each node's clock is stepped
/// with probability 1/4, once in the first 8 s, to another skew in that
/// range (backwards by up to a second, as an NTP correction may); otherwise
/// all clocks agree.
fn random_clocks(rng: &mut ChaCha8Rng, n: usize) -> (Vec<i64>, Vec<(usize, u64, i64)>) {
    if !rng.random_bool(0.5) {
        return (vec![0; n], Vec::new());
    }
    let range = -MAX_CLOCK_SKEW_MS..=MAX_CLOCK_SKEW_MS;
    let skews = (0..n).map(|_| rng.random_range(range.clone())).collect();
    let mut steps = Vec::new();
    for i in 0..n {
        if rng.random_bool(0.25) {
            steps.push((
                i,
                rng.random_range(0..8_000),
                rng.random_range(range.clone()),
            ));
        }
    }
    (skews, steps)
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn generate(seed: u64, target_height: u64) -> Self {
        Self::mix(seed, target_height, Draws::All)
    }

    /// The scenario `seed` made before late joiners were drawn (session
    /// 50): what a regression test pinned to an older seed replays.
    pub fn without_joiner(seed: u64, target_height: u64) -> Self {
        Self::mix(seed, target_height, Draws::BeforeJoiners)
    }

    /// The scenario `seed` made before clock skews were drawn (session 51).
    pub fn without_clock_skews(seed: u64, target_height: u64) -> Self {
        Self::mix(seed, target_height, Draws::BeforeClockSkews)
    }

    fn mix(seed: u64, target_height: u64, draws: Draws) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = rng.random_range(4..=10usize);
        let powers: Vec<u64> = (0..n).map(|_| rng.random_range(1..=10u64)).collect();
        let behaviours = random_behaviours(&mut rng, &powers);
        let delay_min_ms = rng.random_range(1..=20);
        let delay_max_ms = delay_min_ms + rng.random_range(5..=300);
        let loss = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.2)
        } else {
            0.0
        };
        let duplication = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.15)
        } else {
            0.0
        };
        let partition = random_partition(&mut rng, n);
        let honest: Vec<usize> = (0..n)
            .filter(|i| behaviours[*i] == Behaviour::Honest)
            .collect();
        let crashes = random_crashes(&mut rng, &honest);
        let gst_ms = partition
            .iter()
            .map(|p| p.2)
            .chain(crashes.iter().map(Crash::latest_back))
            .max()
            .unwrap_or(0);
        let tx_interval_ms = if rng.random_bool(0.9) {
            rng.random_range(50..400)
        } else {
            0
        };
        // Drawn last, so that every earlier draw of a seed is what it was
        // before pauses were simulated.
        let commit_pauses_ms = random_commit_pauses(&mut rng, n);
        // After the pauses, for the same reason: half the equivocators
        // stuff the vote sets instead.
        let mut behaviours = stuff_some_equivocators(&mut rng, behaviours);
        // Last, for the same reason. A joiner's start is one more event
        // the network must have settled by.
        let mut crashes = crashes;
        let joiners: Vec<(usize, u64)> = (draws > Draws::BeforeJoiners)
            .then(|| random_joiner(&mut rng, &powers, &mut behaviours, &mut crashes))
            .flatten()
            .into_iter()
            .collect();
        let gst_ms = joiners
            .iter()
            .map(|j| j.1)
            .chain(crashes.iter().map(Crash::latest_back))
            .fold(gst_ms, u64::max);
        // After the joiners, for the same reason. A step is one more event
        // the network must have settled by.
        let (clock_skews_ms, clock_steps) = if draws > Draws::BeforeClockSkews {
            random_clocks(&mut rng, n)
        } else {
            (vec![0; n], Vec::new())
        };
        let gst_ms = clock_steps.iter().map(|s| s.1).fold(gst_ms, u64::max);
        Self {
            seed,
            powers,
            behaviours,
            delay_min_ms,
            delay_max_ms,
            loss,
            duplication,
            partition,
            crashes,
            gst_ms,
            target_height,
            liveness_bound_ms: 60_000,
            tx_interval_ms,
            commit_pauses_ms,
            joiners,
            clock_skews_ms,
            clock_steps,
        }
    }

    /// A quiet network of `n` validators of power 1 (negative controls).
    fn quiet(seed: u64, n: usize, target_height: u64) -> Self {
        Self {
            seed,
            powers: vec![1; n],
            behaviours: vec![Behaviour::Honest; n],
            delay_min_ms: 5,
            delay_max_ms: 60,
            loss: 0.0,
            duplication: 0.0,
            partition: None,
            crashes: Vec::new(),
            gst_ms: 0,
            target_height,
            liveness_bound_ms: 30_000,
            tx_interval_ms: 100,
            commit_pauses_ms: vec![0; n],
            joiners: Vec::new(),
            clock_skews_ms: vec![0; n],
            clock_steps: Vec::new(),
        }
    }

    /// Four honest validators, node 3 pausing 300 ms after each commit and
    /// the others none; no workload, so the set keeps its members (see
    /// `Report::carried_signatures`).
    pub fn uneven_pauses(seed: u64) -> Self {
        let mut sc = Self::quiet(seed, 4, 16);
        sc.tx_interval_ms = 0;
        sc.commit_pauses_ms = vec![0, 0, 0, 300];
        sc
    }

    /// Control of the header rules: node 3 of 4 breaks `fault` in every
    /// block it proposes.
    pub fn bad_proposer(seed: u64, fault: HeaderFault) -> Self {
        let mut sc = Self::quiet(seed, 4, 8);
        sc.behaviours[3] = Behaviour::BadProposer(fault);
        sc
    }

    /// Vote stuffing: nodes 5 and 6 of 7 send, with each of their votes,
    /// votes for nil and every block they saw proposed
    /// (`byzantine/vote_stuffer.rs`), on a lossy network that takes rounds.
    pub fn vote_stuffing(seed: u64) -> Self {
        Self::two_of_seven_lossy(seed, Behaviour::VoteStuffer)
    }

    /// Cancelling signatures: nodes 5 and 6 of 7 send their votes paired
    /// with shifted copies of honest validators' votes
    /// (`byzantine/canceller.rs`). A lost vote comes again with the next
    /// tick's re-gossip: the shifted copy then often arrives before the
    /// real vote.
    pub fn cancelling_votes(seed: u64) -> Self {
        Self::two_of_seven_lossy(seed, Behaviour::Canceller)
    }

    /// Seven validators of power 1, nodes 5 and 6 behaving as `b` (two
    /// sevenths of the power), a fifth of the messages lost until GST at
    /// 10 s, 12 heights.
    fn two_of_seven_lossy(seed: u64, b: Behaviour) -> Self {
        let mut sc = Self::quiet(seed, 7, 12);
        sc.behaviours[5] = b;
        sc.behaviours[6] = b;
        sc.loss = 0.2;
        sc.gst_ms = 10_000;
        sc
    }

    /// Control of the sync body check: honest node 6 of 7 crashes, and when
    /// it restarts the only peer it can reach for two seconds is the
    /// tampering server (node 0), so it asks that one for the blocks it missed.
    pub fn tampered_sync(seed: u64) -> Self {
        let mut sc = Self::quiet(seed, 7, 12);
        sc.behaviours[0] = Behaviour::TamperingServer;
        sc.crashes = vec![Crash::clean(6, 1_000, 4_000)];
        sc.partition = Some(([0, 6].into_iter().collect(), 4_000, 6_000));
        sc.gst_ms = 6_000;
        sc
    }

    /// Sync through liars: honest node 9 of 10 crashes long enough to fall
    /// behind (the other seven honest validators go on, even once they ban
    /// the liars), and two peers announce false heights (one answers
    /// requests with nothing, one not at all); it must still catch up.
    pub fn false_heights(seed: u64) -> Self {
        let mut sc = Self::quiet(seed, 10, 14);
        sc.behaviours[0] = Behaviour::FalseHeight { answers: false };
        sc.behaviours[1] = Behaviour::FalseHeight { answers: true };
        sc.crashes = vec![Crash::clean(9, 1_000, 4_000)];
        sc.gst_ms = 4_000;
        sc
    }

    /// Control of the clock rule and of the simulator's check that honest
    /// nodes accept honest blocks: node 0's clock runs `skew_ms` ahead and
    /// node 1's as far behind, on a quiet network of four.
    pub fn clocks_apart(seed: u64, skew_ms: i64) -> Self {
        let mut sc = Self::quiet(seed, 4, 8);
        sc.clock_skews_ms = vec![skew_ms, -skew_ms, 0, 0];
        sc
    }

    /// Control of the evidence pool: node 6 of 7 equivocates once at height
    /// 1 while it and honest node 0 are cut off from the others, so node 0
    /// is the only honest validator that sees it, and can tell nobody until
    /// the partition heals.
    pub fn hidden_equivocation(seed: u64) -> Self {
        let mut sc = Self::quiet(seed, 7, 6);
        sc.behaviours[6] = Behaviour::OneOffEquivocator { at_height: 1 };
        sc.partition = Some(([0, 6].into_iter().collect(), 0, 4_000));
        sc.gst_ms = 4_000;
        sc
    }

    /// Control of the WAL sync before a lock: a power cut of a whole site
    /// (all 4 validators, honest) right after each sends its first
    /// precommit, every one of them locked on the block and none having
    /// committed it; back 50 ms later. Only their WALs can hold the block.
    pub fn site_power_cut(seed: u64) -> Self {
        let mut sc = Self::quiet(seed, 4, 4);
        sc.crashes = (0..4)
            .map(|node| Crash {
                node,
                at: 0,
                down: 50,
                torn: Torn::AfterPrecommit,
            })
            .collect();
        sc
    }

    /// Control of the WAL's signatures: honest node 0 of 4 dies inside the
    /// signing-state write of its first proposal (the WAL holds the
    /// proposal and its prevote, the signing state does not) and comes
    /// back 50 ms later, before the others give up on its round.
    pub fn torn_proposal(seed: u64) -> Self {
        let mut sc = Self::quiet(seed, 4, 8);
        sc.crashes = vec![Crash {
            node: 0,
            at: 0,
            down: 50,
            torn: Torn::NextProposal,
        }];
        sc
    }

    /// State sync among liars: 7 validators of power 1, honest node 6
    /// starts with an empty store at 2 s and joins from a snapshot; nodes 4
    /// and 5 vote honestly but serve bad snapshots (two of the faults,
    /// drawn by the seed); the others serve genuine ones. Node 6 must
    /// install a snapshot, charge only the liars and reach the target.
    pub fn state_sync_join(seed: u64) -> Self {
        // The run also waits for the joiner to sign (`Sim::done`).
        let mut sc = Self::quiet(seed, 7, 40);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5747_e5e4);
        let mut faults = SnapshotFault::ALL.to_vec();
        faults.shuffle(&mut rng);
        sc.behaviours[4] = Behaviour::BadSnapshots(faults[0]);
        sc.behaviours[5] = Behaviour::BadSnapshots(faults[1]);
        sc.joiners = vec![(6, 2_000)];
        sc.liveness_bound_ms = 60_000;
        sc
    }

    /// Control of the join's chunk checks: node 0, the first source a
    /// joiner asks, serves forged chunks of the genuine snapshot (nodes 4
    /// and 5 are honest here).
    pub fn forged_state_sync(seed: u64) -> Self {
        let mut sc = Self::state_sync_join(seed);
        sc.behaviours[4] = Behaviour::Honest;
        sc.behaviours[5] = Behaviour::Honest;
        sc.behaviours[0] = Behaviour::BadSnapshots(SnapshotFault::ForgedChunks);
        sc
    }

    /// Whether node `i` starts late and joins by state sync.
    pub fn is_joiner(&self, i: usize) -> bool {
        self.joiners.iter().any(|(j, _)| *j == i)
    }

    /// Summed power of the Byzantine validators.
    pub fn byzantine_power(&self) -> u64 {
        self.powers
            .iter()
            .zip(&self.behaviours)
            .filter(|(_, b)| !b.is_honest())
            .map(|(p, _)| *p)
            .sum()
    }
}
