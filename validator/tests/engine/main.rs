//! The engine end to end: four engines in one process pass every message to
//! each other synchronously. They commit heights with the real ledger; the
//! block rules, the evidence pool and sync acceptance are each attacked
//! with the input a hostile peer would send.

#[path = "../common/mod.rs"]
mod common;
mod evidence;
mod header_rules;
mod sync;

use agora_validator::block::header_hash;
use agora_validator::consensus::RejectReason;
use agora_validator::consensus::evidence::vote_hash;
use agora_validator::crypto::vrf;
use agora_validator::engine::block_rules::{self, Context, Provenance};
use agora_validator::engine::{
    Action, BlockError, CommitRecord, Engine, EngineConfig, NoMempool, PeerFault, Restored, Tip,
};
use agora_validator::ledger::Ledger;
use common::*;
use std::collections::VecDeque;

const N: u8 = 4;
/// Far in the future of genesis time 0, so block times are plausible.
const NOW: u64 = 1_000_000;

fn genesis_ledger() -> Ledger {
    let params = pb::GenesisParams {
        unbonding_period: 20,
        jail_period: 5,
        min_fee: "0".into(),
        block_reward: "0".into(),
        ..Default::default()
    };
    Ledger::from_genesis(&genesis(params, (0, 0, 0), N)).expect("genesis")
}

fn genesis_tip() -> Tip {
    Tip {
        seed: vrf::genesis_seed(&[7; 32]),
        block_hash: [0; 32],
        time_ms: 0,
        certificate: None,
    }
}

fn engine(i: u8) -> Engine<u8> {
    let restored = Restored {
        ledger: genesis_ledger(),
        tip: genesis_tip(),
        evidence: Vec::new(),
    };
    Engine::new(
        EngineConfig::default(),
        Some(sk(201 + i)),
        None,
        restored,
        [i; 32],
    )
}

/// Messages in flight: (from, to, message).
enum Msg {
    Proposal(Box<pb::Proposal>),
    Vote(pb::Vote),
    Evidence(pb::Evidence),
}

struct Net {
    engines: Vec<Engine<u8>>,
    /// Engines that receive nothing and send nothing (crashed).
    down: Vec<bool>,
    commits: Vec<Vec<CommitRecord>>,
    penalties: Vec<(u8, u8, PeerFault)>,
    queue: VecDeque<(u8, u8, Msg)>,
    now: u64,
}

impl Net {
    fn new(n: u8) -> Self {
        Self {
            engines: (0..n).map(engine).collect(),
            down: vec![false; n as usize],
            commits: vec![Vec::new(); n as usize],
            penalties: Vec::new(),
            queue: VecDeque::new(),
            now: NOW,
        }
    }

    fn act(&mut self, i: u8, actions: Vec<Action<u8>>) {
        for a in actions {
            let to_all = |m: &dyn Fn() -> Msg, q: &mut VecDeque<(u8, u8, Msg)>| {
                for j in 0..N {
                    if j != i {
                        q.push_back((i, j, m()));
                    }
                }
            };
            match a {
                Action::BroadcastProposal(p) => {
                    to_all(&|| Msg::Proposal(p.clone()), &mut self.queue)
                }
                Action::BroadcastVote(v) => to_all(&|| Msg::Vote(v.clone()), &mut self.queue),
                Action::BroadcastEvidence(e) => {
                    to_all(&|| Msg::Evidence(e.clone()), &mut self.queue)
                }
                Action::Commit(r) => self.commits[i as usize].push(*r),
                Action::Penalize { peer, fault } => self.penalties.push((i, peer, fault)),
                _ => {}
            }
        }
    }

    fn start(&mut self, i: u8) {
        let a = self.engines[i as usize]
            .start_height(self.now, &NoMempool)
            .expect("start");
        self.act(i, a);
    }

    /// Delivers until quiet; engines that committed below `h` start their next height.
    fn run(&mut self, h: u64) {
        loop {
            while let Some((from, to, m)) = self.queue.pop_front() {
                if self.down[to as usize] || self.down[from as usize] {
                    continue;
                }
                self.now += 1;
                let e = &mut self.engines[to as usize];
                let a = match m {
                    Msg::Proposal(p) => e.on_proposal(from, *p, self.now, &NoMempool),
                    Msg::Vote(v) => e.on_vote(from, v, self.now, &NoMempool),
                    Msg::Evidence(ev) => Ok(e.on_evidence(from, ev)),
                }
                .expect("engine");
                self.act(to, a);
            }
            let waiting: Vec<u8> = (0..N)
                .filter(|i| {
                    let e = &self.engines[*i as usize];
                    !self.down[*i as usize] && e.awaiting_start() && e.tip_height() < h
                })
                .collect();
            if waiting.is_empty() {
                return;
            }
            for i in waiting {
                self.start(i);
            }
        }
    }

    fn run_to(&mut self, h: u64) {
        for i in 0..N {
            let e = &self.engines[i as usize];
            if !self.down[i as usize] && e.awaiting_start() && e.tip_height() < h {
                self.start(i);
            }
        }
        for _ in 0..1_000 {
            if (0..N).all(|i| self.down[i as usize] || self.engines[i as usize].tip_height() >= h) {
                return;
            }
            self.run(h);
            if std::env::var_os("ENGINE_TRACE").is_some() {
                eprintln!(
                    "tips {:?} rounds {:?} queue {}",
                    self.engines
                        .iter()
                        .map(|e| e.tip_height())
                        .collect::<Vec<_>>(),
                    self.engines
                        .iter()
                        .map(|e| (e.core().height(), e.core().round(), e.core().step()))
                        .collect::<Vec<_>>(),
                    self.queue.len()
                );
            }
            // Nothing in flight and not there: a round timed out; fire the
            // timeouts by re-gossip is not needed with synchronous delivery.
            if (0..N).any(|i| !self.down[i as usize] && self.engines[i as usize].tip_height() < h)
                && self.queue.is_empty()
            {
                self.fire_timeouts();
            }
        }
        panic!(
            "height {h} not reached: tips {:?}",
            self.engines
                .iter()
                .map(|e| e.tip_height())
                .collect::<Vec<_>>()
        );
    }

    /// Fires every scheduled timeout of the current round of each live engine.
    fn fire_timeouts(&mut self) {
        use agora_validator::consensus::{Timeout, TimeoutStep};
        for i in 0..N {
            if self.down[i as usize] {
                continue;
            }
            let e = &self.engines[i as usize];
            let (h, r) = (e.core().height(), e.core().round());
            for step in [
                TimeoutStep::Propose,
                TimeoutStep::Prevote,
                TimeoutStep::Precommit,
            ] {
                let t = Timeout {
                    height: h,
                    round: r,
                    step,
                };
                self.now += 1;
                let a = self.engines[i as usize]
                    .on_timeout(t, self.now, &NoMempool)
                    .expect("timeout");
                self.act(i, a);
            }
        }
    }
}

#[test]
fn four_engines_commit_with_the_real_ledger_and_agree() {
    let mut net = Net::new(N);
    net.run_to(5);
    for h in 1..=5usize {
        let hashes: Vec<_> = net.commits.iter().map(|c| c[h - 1].app_hash).collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "height {h}");
        let blocks: Vec<_> = net.commits.iter().map(|c| c[h - 1].block_hash).collect();
        assert!(blocks.windows(2).all(|w| w[0] == w[1]), "height {h}");
        let b = &net.commits[0][h - 1].block;
        block_rules::check_body(b).expect("committed body matches header");
        // proposal_round names the round the block was proposed in.
        assert_eq!(
            b.header.as_ref().expect("header").proposal_round,
            net.commits[0][h - 1].round
        );
    }
    // Block h+1 carries the app hash after h.
    let after_4 = net.commits[0][3].app_hash;
    let header_5 = net.commits[0][4].block.header.clone().expect("header");
    assert_eq!(header_5.app_hash, after_4.to_vec());
    assert!(net.penalties.is_empty(), "{:?}", net.penalties);
}
