//! The engine end to end: four engines in one process pass every message to
//! each other synchronously. They commit heights with the real ledger; the
//! block rules, the evidence pool and sync acceptance are each attacked
//! with the input a hostile peer would send.

mod common;

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

/// A conflicting pair of prevotes by validator `i` at height `h`.
fn equivocation(i: u8, h: u64) -> pb::Evidence {
    use agora_validator::consensus::evidence::duplicate_vote;
    use agora_validator::signing::vote_bytes;
    use agora_validator::types::VoteType;
    let k = sk(201 + i);
    let vote = |hash: [u8; 32]| pb::Vote {
        vote_type: VoteType::Prevote as i32,
        height: h,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: addr(&k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain(), VoteType::Prevote, h, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    let (a, b) = (vote([1; 32]), vote([2; 32]));
    assert_ne!(vote_hash(&a), vote_hash(&b));
    duplicate_vote(a, b)
}

#[test]
fn evidence_about_the_height_being_decided_is_held_then_included_and_slashed() {
    let mut net = Net::new(N);
    net.run_to(2);
    // Evidence about height 3, which no engine has decided yet: the ledger
    // cannot include it before block 4, so the pool holds it.
    let ev = equivocation(0, 3);
    let (_, actions) = net.engines[1].submit_evidence(ev.clone()).expect("held");
    assert!(matches!(actions[0], Action::PersistEvidence(..)));
    net.act(1, actions);
    net.run_to(8);
    let offender = addr(&sk(201));
    let included_at: Vec<u64> = net.commits[1]
        .iter()
        .filter(|c| c.block.evidence.contains(&ev))
        .map(|c| c.height)
        .collect();
    assert_eq!(included_at.len(), 1, "included exactly once");
    assert!(
        included_at[0] >= 4 && included_at[0] <= 6,
        "{included_at:?}"
    );
    for e in &net.engines {
        assert!(e.ledger().validator(&offender).expect("v").tombstoned);
        assert!(e.pool().is_empty(), "pruned once included");
    }
    let removed = &net.commits[1][included_at[0] as usize - 1].evidence_removed;
    assert_eq!(
        removed.len(),
        1,
        "the commit record deletes the persisted entry"
    );
}

#[test]
fn invalid_evidence_is_charged_to_the_peer_that_sent_it() {
    let mut net = Net::new(N);
    net.run_to(1);
    let mut ev = equivocation(0, 1);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = ev.kind.as_mut() {
        d.vote_b.as_mut().expect("b").signature = sk(209).sign(b"junk").to_bytes().to_vec();
    }
    let a = net.engines[2].on_evidence(3, ev);
    assert!(
        matches!(
            &a[..],
            [Action::Penalize {
                peer: 3,
                fault: PeerFault::BadEvidence(_)
            }]
        ),
        "{a:?}"
    );
    assert!(net.engines[2].pool().is_empty());
}

fn context<'a>(e: &'a Engine<u8>, limits: &'a agora_validator::engine::BlockLimits) -> Context<'a> {
    Context {
        chain: e.chain(),
        ledger: e.ledger(),
        tip: e.tip(),
        height: e.height(),
        limits,
        signed: e.core().signed_points(),
    }
}

/// A block of height 2 as its lottery winner of `round` would build it.
fn proposal_block(e: &Engine<u8>, round: u32) -> pb::Block {
    let limits = Default::default();
    let ctx = context(e, &limits);
    let mut b = block_rules::build_block(&ctx, round, NOW + 10, &NoMempool, Vec::new());
    let set = e.ledger().validator_set(e.height()).expect("set");
    let winner = agora_validator::lottery::proposer(set, &e.tip().seed, e.height(), round);
    b.header.as_mut().expect("header").proposer_address = winner.address.0.to_vec();
    b
}

#[test]
fn every_header_rule_refuses_its_violation() {
    let mut net = Net::new(N);
    net.run_to(1);
    let e = &net.engines[0];
    let limits = Default::default();
    let ctx = context(e, &limits);
    let live = Provenance::Proposal {
        round: 0,
        now_ms: NOW + 10,
        carried_verified: None,
    };
    let good = proposal_block(e, 0);
    let checked = block_rules::check_block(&ctx, &good, live).expect("the block we build passes");
    assert!(
        !checked.carried_certificate_verified,
        "the certificate we committed the tip with is not verified again"
    );
    type Tamper = fn(&mut pb::Block);
    type Expect = fn(&BlockError) -> bool;
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        (
            "txs",
            |b| b.txs.push(pb::Transaction::default()),
            |e| matches!(e, BlockError::BodyMismatch("txs_hash")),
        ),
        (
            "evidence",
            |b| b.evidence.push(pb::Evidence::default()),
            |e| matches!(e, BlockError::BodyMismatch("evidence_hash")),
        ),
        (
            "last commit",
            |b| b.last_commit = None,
            |e| matches!(e, BlockError::BodyMismatch("last_commit_hash")),
        ),
        (
            "app hash",
            |b| hdr(b).app_hash = vec![9; 32],
            |e| matches!(e, BlockError::StateMismatch("app_hash")),
        ),
        (
            "validators",
            |b| hdr(b).validators_hash = vec![9; 32],
            |e| matches!(e, BlockError::StateMismatch("validators_hash")),
        ),
        (
            "next validators",
            |b| hdr(b).next_validators_hash = vec![9; 32],
            |e| matches!(e, BlockError::StateMismatch("next_validators_hash")),
        ),
        (
            "round after",
            |b| hdr(b).proposal_round = 1,
            |e| matches!(e, BlockError::ProposalRound { .. }),
        ),
        (
            "time before parent",
            |b| hdr(b).time_ms = 1,
            |e| matches!(e, BlockError::Time { .. }),
        ),
        (
            "time ahead",
            |b| hdr(b).time_ms = NOW + 60_000,
            |e| matches!(e, BlockError::Time { .. }),
        ),
        (
            "height",
            |b| hdr(b).height = 3,
            |e| matches!(e, BlockError::Height { .. }),
        ),
    ];
    for (name, tamper, expect) in cases {
        let mut b = good.clone();
        tamper(&mut b);
        let err = block_rules::check_block(&ctx, &b, live).expect_err(name);
        assert!(expect(&err), "{name}: {err}");
    }
    // A synced block is not held to our clock.
    let mut late = good.clone();
    hdr(&mut late).time_ms = NOW + 60_000;
    block_rules::check_block(&ctx, &late, Provenance::Certified).expect("no clock for sync");
    // proposal_round must name a round the block's proposer won.
    let r1 = proposal_block(e, 1);
    let set = e.ledger().validator_set(2).expect("set");
    let w0 = agora_validator::lottery::proposer(set, &e.tip().seed, 2, 0).address;
    let w1 = agora_validator::lottery::proposer(set, &e.tip().seed, 2, 1).address;
    if w0 != w1 {
        let mut lie = r1.clone();
        hdr(&mut lie).proposal_round = 0;
        let live1 = Provenance::Proposal {
            round: 1,
            now_ms: NOW + 10,
            carried_verified: None,
        };
        let err = block_rules::check_block(&ctx, &lie, live1).expect_err("wrong winner");
        assert!(matches!(err, BlockError::ProposalRound { .. }), "{err}");
    }
}

fn hdr(b: &mut pb::Block) -> &mut pb::Header {
    b.header.as_mut().expect("header")
}

/// Serves blocks `from..` of `src` as a response.
fn response(src: &[CommitRecord], from: u64, latest: u64) -> pb::BlockResponse {
    pb::BlockResponse {
        blocks: src
            .iter()
            .filter(|c| c.height >= from)
            .map(|c| pb::CertifiedBlock {
                block: Some(c.block.clone()),
                certificate: Some(c.certificate.to_proto()),
            })
            .collect(),
        latest_height: latest,
        lowest_height: 0,
    }
}

fn drain_sync(e: &mut Engine<u8>, out: &mut Vec<Action<u8>>) {
    while let Some(a) = e.next_synced_block(NOW + 10_000, &NoMempool).expect("sync") {
        out.extend(a);
    }
}

#[test]
fn sync_takes_only_solicited_blocks_whose_body_matches_the_certified_header() {
    let mut net = Net::new(N);
    net.run_to(6);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    // Unsolicited: dropped before any check, charged to the sender.
    let a = late.on_block_response(1, response(&honest, 1, 6), NOW);
    assert!(matches!(
        &a[..],
        [Action::Penalize {
            peer: 1,
            fault: PeerFault::Unsolicited
        }]
    ));
    // Peer 1 claims height 6: we ask it.
    let req = late.on_status(1, 6, NOW, &NoMempool).expect("status");
    assert!(
        matches!(
            &req[..],
            [Action::RequestBlocks {
                peer: 1,
                from: 1,
                ..
            }]
        ),
        "{req:?}"
    );
    // It serves genuine headers and certificates with a forged body at 3.
    let mut forged = response(&honest, 1, 6);
    forged.blocks[2]
        .block
        .as_mut()
        .expect("b")
        .txs
        .push(pb::Transaction::default());
    assert!(late.on_block_response(1, forged, NOW).is_empty());
    let mut out = Vec::new();
    drain_sync(&mut late, &mut out);
    assert_eq!(
        late.tip_height(),
        2,
        "blocks before the forged one are applied"
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Penalize {
            peer: 1,
            fault: PeerFault::BadBlock(BlockError::BodyMismatch("txs_hash"))
        }
    )));
    // A second, honest peer serves the rest.
    let req = late
        .on_status(2, 6, NOW + 20_000, &NoMempool)
        .expect("status");
    assert!(
        matches!(
            &req[..],
            [Action::RequestBlocks {
                peer: 2,
                from: 3,
                ..
            }]
        ),
        "{req:?}"
    );
    late.on_block_response(2, response(&honest, 3, 6), NOW);
    let mut out = Vec::new();
    drain_sync(&mut late, &mut out);
    assert_eq!(late.tip_height(), 6);
    assert_eq!(late.ledger().app_hash(), net.engines[0].ledger().app_hash());
    assert_eq!(
        late.tip().block_hash,
        header_hash(honest[5].block.header.as_ref().expect("h"))
    );
}

#[test]
fn a_peer_that_announces_a_height_it_does_not_serve_loses_its_claim() {
    let mut net = Net::new(N);
    net.run_to(2);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    late.on_status(1, 1_000_000, NOW, &NoMempool)
        .expect("status");
    let a = late.on_block_response(
        1,
        pb::BlockResponse {
            blocks: vec![],
            latest_height: 1_000_000,
            lowest_height: 0,
        },
        NOW,
    );
    assert!(
        matches!(
            &a[..],
            [Action::Penalize {
                peer: 1,
                fault: PeerFault::FalseHeight
            }]
        ),
        "{a:?}"
    );
    // The honest peer is asked next.
    let req = late.on_status(2, 2, NOW + 1, &NoMempool).expect("status");
    assert!(
        matches!(&req[..], [Action::RequestBlocks { peer: 2, .. }]),
        "{req:?}"
    );
    late.on_block_response(2, response(&honest, 1, 2), NOW);
    drain_sync(&mut late, &mut Vec::new());
    assert_eq!(late.tip_height(), 2);
}

/// A peer that pruned the heights we need (`storage.keep_blocks`) says so
/// in its answer: it is not charged, not asked again for them, and the
/// heights come from a peer that keeps them. The negative control is
/// `a_peer_that_announces_a_height_it_does_not_serve_loses_its_claim`
/// (the same empty answer without a floor is charged).
#[test]
fn a_peer_that_pruned_the_heights_asked_is_not_charged_and_not_asked_again() {
    let mut net = Net::new(N);
    net.run_to(2);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    late.on_status(1, 1_000, NOW, &NoMempool).expect("status");
    let a = late.on_block_response(
        1,
        pb::BlockResponse {
            blocks: vec![],
            latest_height: 1_000,
            lowest_height: 500,
        },
        NOW,
    );
    assert!(a.is_empty(), "a pruned peer is not charged: {a:?}");
    // Peer 1 still claims 1,000, more than peer 2, yet peer 2 is asked.
    let req = late.on_status(2, 2, NOW + 1, &NoMempool).expect("status");
    assert!(
        matches!(&req[..], [Action::RequestBlocks { peer: 2, .. }]),
        "{req:?}"
    );
    late.on_block_response(2, response(&honest, 1, 2), NOW);
    drain_sync(&mut late, &mut Vec::new());
    assert_eq!(late.tip_height(), 2);
}

#[test]
fn a_slow_answer_to_a_request_given_up_is_dropped_and_charged_once() {
    let mut net = Net::new(N);
    net.run_to(2);
    let honest = net.commits[0].clone();
    let mut late = engine(3);
    late.on_status(1, 2, NOW, &NoMempool).expect("status");
    // No answer within the timeout: the next poll asks someone else.
    late.on_status(2, 2, NOW + 1, &NoMempool).expect("status");
    let req = late
        .on_status(
            2,
            2,
            NOW + agora_validator::engine::sync::REQUEST_TIMEOUT_MS + 1,
            &NoMempool,
        )
        .expect("status");
    // Peer 1 is reported once, as for a height it claimed and did not serve.
    assert!(
        matches!(
            &req[..],
            [
                Action::Penalize {
                    peer: 1,
                    fault: PeerFault::FalseHeight
                },
                Action::RequestBlocks { peer: 2, .. }
            ]
        ),
        "{req:?}"
    );
    // Peer 1's answer finally arrives: not charged again, not applied.
    assert!(
        late.on_block_response(1, response(&honest, 1, 2), NOW)
            .is_empty()
    );
    assert!(
        late.next_synced_block(NOW, &NoMempool)
            .expect("sync")
            .is_none()
    );
    // A second unasked answer from it is unsolicited.
    let a = late.on_block_response(1, response(&honest, 1, 2), NOW);
    assert!(matches!(
        &a[..],
        [Action::Penalize {
            peer: 1,
            fault: PeerFault::Unsolicited
        }]
    ));
    late.on_block_response(2, response(&honest, 1, 2), NOW);
    drain_sync(&mut late, &mut Vec::new());
    assert_eq!(late.tip_height(), 2);
}

#[test]
fn the_pool_is_bounded_per_offender_and_refuses_heights_far_ahead() {
    use agora_validator::engine::evidence_pool::MAX_PER_OFFENDER;
    let mut net = Net::new(N);
    net.run_to(8);
    let e = &mut net.engines[0];
    for h in 1..=MAX_PER_OFFENDER as u64 {
        e.submit_evidence(equivocation(1, h)).expect("room");
    }
    let full = e.submit_evidence(equivocation(1, 7)).expect_err("bound");
    assert!(
        matches!(full, agora_validator::engine::PoolError::Full(_)),
        "{full}"
    );
    // Another offender still has room; one entry per offender per block.
    e.submit_evidence(equivocation(2, 7))
        .expect("other offender");
    let ahead = e
        .submit_evidence(equivocation(2, 20))
        .expect_err("far ahead");
    assert!(
        matches!(
            ahead,
            agora_validator::engine::PoolError::TooFarAhead { .. }
        ),
        "{ahead}"
    );
    assert_eq!(e.pool().len(), MAX_PER_OFFENDER + 1);
    assert_eq!(e.pool().for_block().len(), 2, "one per offender");
}

#[test]
fn an_equivocation_that_arrives_after_the_decision_still_becomes_evidence() {
    use agora_validator::signing::vote_bytes;
    use agora_validator::types::VoteType;
    let mut net = Net::new(N);
    net.run_to(2);
    // A validator whose precommit for block 2 is in the certificate (the
    // others verified it), and a conflicting precommit of the same round
    // that arrives only now.
    let cert = net.engines[1].tip().certificate.clone().expect("cert");
    let set = net.engines[1]
        .ledger()
        .validator_set(2)
        .expect("set")
        .clone();
    let signers = cert.signer_indices(set.len()).expect("bits");
    let k = (0..N)
        .map(|i| sk(201 + i))
        .find(|k| signers.contains(&set.index_of(&addr(k)).expect("member")))
        .expect("a signer");
    let conflicting = pb::Vote {
        vote_type: VoteType::Precommit as i32,
        height: 2,
        round: cert.round,
        block_hash: vec![0xee; 32],
        validator_address: addr(&k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(
                &chain(),
                VoteType::Precommit,
                2,
                cert.round,
                &[0xee; 32],
            ))
            .to_bytes()
            .to_vec(),
    };
    let first = net.engines[1]
        .on_vote(3, conflicting.clone(), NOW + 50_000, &NoMempool)
        .expect("vote");
    assert!(matches!(first[0], Action::PersistEvidence(..)), "{first:?}");
    assert_eq!(net.engines[1].pool().len(), 1);
    // Its signature forged: the sender is charged for a bad signature
    // (the vote is the forgery, not the evidence built from it), nothing
    // is kept.
    let mut forged = conflicting;
    forged.block_hash = vec![0xdd; 32];
    forged.signature = sk(209).sign(b"x").to_bytes().to_vec();
    let before = net.engines[2].pool().len();
    let a = net.engines[2]
        .on_vote(3, forged, NOW + 50_000, &NoMempool)
        .expect("vote");
    assert_eq!(net.engines[2].pool().len(), before);
    assert!(
        matches!(
            &a[..],
            [Action::Penalize {
                peer: 3,
                fault: PeerFault::Consensus(RejectReason::BadSignature(_))
            }]
        ),
        "{a:?}"
    );
    // It is included and the signer slashed.
    net.act(1, first);
    net.run_to(5);
    assert!(
        net.engines
            .iter()
            .all(|e| e.ledger().validator(&addr(&k)).expect("v").tombstoned)
    );
}
