//! Engine tests: a few validators' engines with instant delivery make a
//! certified chain; single engines are then fed what a host would feed them.

use super::*;
use crate::consensus::evidence::duplicate_vote;
use crate::consensus::{CheckedEvidence, RejectReason};
use crate::crypto::{AccountSecretKey, ZERO_HASH, sha3_256, vrf};
use crate::ledger::BlockInfo;
use crate::signing::vote_bytes;
use crate::types::{Address, HasAddress, Round, VoteType};
use crate::validator_set::{Validator, ValidatorSet};
use std::collections::{BTreeMap, VecDeque};

const UNIT: u128 = 1_000_000;
const NOW: u64 = 10_000;

fn key(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i + 1; 32]).expect("32-byte seed")
}

fn genesis(n: u8) -> pb::Genesis {
    let mut accounts = Vec::new();
    let mut validators = Vec::new();
    for i in 0..n {
        let op = AccountSecretKey::from_seed(&[100 + i; 32]);
        accounts.push(pb::GenesisAccount {
            address: op.address().0.to_vec(),
            balance: (100 * UNIT).to_string(),
        });
        validators.push(pb::GenesisValidator {
            operator: op.address().0.to_vec(),
            consensus_public_key: key(i).public_key().to_bytes().to_vec(),
            proof_of_possession: key(i).prove_possession().to_bytes().to_vec(),
            self_bond: (10 * UNIT).to_string(),
            commission_rate_bps: 0,
            commission_max_rate_bps: 0,
            commission_max_change_bps: 0,
        });
    }
    pb::Genesis {
        chain_id: "agora-engine-test".into(),
        genesis_time_ms: 0,
        params: Some(pb::GenesisParams {
            unbonding_period: 10,
            ..Default::default()
        }),
        accounts,
        validators,
    }
}

fn at_genesis(n: u8) -> Restored {
    let ledger = Ledger::from_genesis(&genesis(n)).expect("genesis");
    Restored {
        ledger,
        tip: Tip {
            seed: vrf::genesis_seed(&sha3_256(b"engine test genesis")),
            block_hash: ZERO_HASH,
            time_ms: 0,
            certificate: None,
        },
        evidence: Vec::new(),
    }
}

fn engine(k: Option<SecretKey>, restored: Restored) -> Engine<usize> {
    Engine::new(EngineConfig::default(), k, None, restored, [7; 32])
}

#[derive(Debug, Clone)]
enum Msg {
    Proposal(Box<pb::Proposal>),
    Vote(pb::Vote),
}

/// `n` validators with instant delivery until each committed `heights`
/// blocks: validator 0's commit records and every message by height.
fn make_chain(n: u8, heights: Height) -> (Vec<CommitRecord>, BTreeMap<Height, Vec<Msg>>) {
    let mut engines: Vec<Engine<usize>> = (0..n)
        .map(|i| engine(Some(key(i)), at_genesis(n)))
        .collect();
    let mut queue = VecDeque::new();
    for (i, e) in engines.iter_mut().enumerate() {
        for a in e.start_height(NOW, &NoMempool).expect("start") {
            queue.push_back((i, a));
        }
    }
    let mut records = Vec::new();
    let mut msgs: BTreeMap<Height, Vec<Msg>> = BTreeMap::new();
    while let Some((from, a)) = queue.pop_front() {
        let (msg, h) = match a {
            Action::BroadcastProposal(p) => (Msg::Proposal(p.clone()), p.height),
            Action::BroadcastVote(v) => (Msg::Vote(v.clone()), v.height),
            Action::Commit(rec) => {
                if rec.height < heights {
                    for a in engines[from].start_height(NOW, &NoMempool).expect("start") {
                        queue.push_back((from, a));
                    }
                }
                if from == 0 {
                    records.push(*rec);
                }
                continue;
            }
            _ => continue,
        };
        msgs.entry(h).or_default().push(msg.clone());
        for (to, e) in engines.iter_mut().enumerate().filter(|(to, _)| *to != from) {
            let out = match &msg {
                Msg::Proposal(p) => e.on_proposal(from, (**p).clone(), NOW, &NoMempool),
                Msg::Vote(v) => e.on_vote(from, v.clone(), NOW, &NoMempool),
            };
            for a in out.expect("engine") {
                queue.push_back((to, a));
            }
        }
    }
    assert_eq!(records.len() as u64, heights, "the chain was not made");
    (records, msgs)
}

fn certified(rec: &CommitRecord) -> pb::CertifiedBlock {
    pb::CertifiedBlock {
        block: Some(rec.block.clone()),
        certificate: Some(rec.certificate.to_proto()),
    }
}

/// A prevote signed by `k`.
fn prevote(k: &SecretKey, chain: &ChainId, h: Height, round: Round, hash: Hash) -> pb::Vote {
    pb::Vote {
        vote_type: VoteType::Prevote as i32,
        height: h,
        round,
        block_hash: hash.to_vec(),
        validator_address: Address::of(&k.public_key()).0.to_vec(),
        signature: k
            .sign(&vote_bytes(chain, VoteType::Prevote, h, round, &hash))
            .to_bytes()
            .to_vec(),
    }
}

fn penalties(actions: &[Action<usize>]) -> Vec<(usize, PeerFault)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Penalize { peer, fault } => Some((*peer, fault.clone())),
            _ => None,
        })
        .collect()
}

/// Blocks 1..=n as one response from peer 0, block `bad` (if any) with the
/// aggregate signature of another height's certificate: a valid G2 point
/// that does not sign this block.
fn response(records: &[CommitRecord], bad: Option<Height>) -> pb::BlockResponse {
    let blocks = records
        .iter()
        .map(|r| {
            let mut cb = certified(r);
            if Some(r.height) == bad
                && let Some(c) = cb.certificate.as_mut()
            {
                let other = &records[r.height as usize % records.len()];
                c.aggregate_signature = other.certificate.aggregate_signature.to_bytes().to_vec();
            }
            cb
        })
        .collect();
    pb::BlockResponse {
        blocks,
        latest_height: records.len() as Height,
        lowest_height: 0,
    }
}

/// An engine at genesis (validator `k`, or an observer) that asked peer 0
/// for blocks and got `resp`.
fn asked_by(k: Option<SecretKey>, resp: pb::BlockResponse) -> Engine<usize> {
    let mut e = engine(k, at_genesis(4));
    let latest = resp.latest_height;
    assert_eq!(
        e.on_status(0, latest, NOW, &NoMempool)
            .expect("status")
            .len(),
        1,
        "a request"
    );
    assert!(e.on_block_response(0, resp, NOW).is_empty());
    e
}

/// The chain's round-0 proposal of height 2 and its proposer's index.
fn proposal_of_height_two(msgs: &BTreeMap<Height, Vec<Msg>>) -> (pb::Proposal, u8) {
    let p = msgs[&2]
        .iter()
        .find_map(|m| match m {
            Msg::Proposal(p) if p.round == 0 => Some((**p).clone()),
            _ => None,
        })
        .expect("height 2 was proposed in round 0");
    let proposer = (0..4u8)
        .find(|i| Address::of(&key(*i).public_key()).0.to_vec() == p.proposer_address)
        .expect("a validator proposed");
    (p, proposer)
}

/// An engine of key `k` (`None`: an observer) with block 1 of `records`
/// applied through sync, height 2 not started: where a node is during the
/// pause after a commit.
fn synced_to_one(k: Option<SecretKey>, records: &[CommitRecord]) -> Engine<usize> {
    let mut e = engine(k, at_genesis(4));
    e.on_status(0, 3, NOW, &NoMempool).expect("status");
    e.on_block_response(
        0,
        pb::BlockResponse {
            blocks: vec![certified(&records[0])],
            latest_height: 1,
            lowest_height: 0,
        },
        NOW,
    );
    assert!(penalties(&apply_all_synced(&mut e)).is_empty());
    assert_eq!(e.height(), 2);
    assert!(e.awaiting_start(), "height 2 not started");
    e
}

fn apply_all_synced(e: &mut Engine<usize>) -> Vec<Action<usize>> {
    let mut all = Vec::new();
    while let Some(actions) = e.next_synced_block(NOW, &NoMempool).expect("engine") {
        all.extend(actions);
    }
    all
}

/// Found by the simulator: a synced block whose height the engine decides
/// from buffered messages while starting that height (inside
/// `apply_synced`) is already committed, and must not then be checked as
/// the next height's block and charged to the honest server.
#[test]
fn a_synced_block_decided_while_its_height_starts_is_not_charged() {
    let (records, msgs) = make_chain(4, 3);
    let mut o = engine(None, at_genesis(4));
    // Height 2's proposal and votes arrive while the node is still at
    // genesis: the core buffers them (a proposal of the very next height
    // would start it, see `early_start.rs`; this one is two ahead).
    for m in &msgs[&2] {
        let out = match m {
            Msg::Proposal(p) => o.on_proposal(1, (**p).clone(), NOW, &NoMempool),
            Msg::Vote(v) => o.on_vote(1, v.clone(), NOW, &NoMempool),
        };
        assert!(penalties(&out.expect("engine")).is_empty());
    }
    // Block 1 by sync.
    let req = o.on_status(0, 3, NOW, &NoMempool).expect("status");
    assert!(matches!(
        req.as_slice(),
        [Action::RequestBlocks {
            peer: 0,
            from: 1,
            ..
        }]
    ));
    o.on_block_response(
        0,
        pb::BlockResponse {
            blocks: vec![certified(&records[0])],
            latest_height: 1,
            lowest_height: 0,
        },
        NOW,
    );
    assert!(penalties(&apply_all_synced(&mut o)).is_empty());
    assert!(o.awaiting_start());
    assert!(o.future_buffer().0 > 0, "height 2's messages wait");
    assert_eq!(o.tip_height(), 1);
    // Then block 2 comes by sync; starting height 2 decides it from the buffer.
    let req = o.on_status(0, 3, NOW, &NoMempool).expect("status");
    assert!(matches!(
        req.as_slice(),
        [Action::RequestBlocks {
            peer: 0,
            from: 2,
            ..
        }]
    ));
    o.on_block_response(
        0,
        pb::BlockResponse {
            blocks: vec![certified(&records[1]), certified(&records[2])],
            latest_height: 3,
            lowest_height: 0,
        },
        NOW,
    );
    let actions = apply_all_synced(&mut o);
    assert_eq!(penalties(&actions), Vec::new());
    assert_eq!(o.tip_height(), 3);
    assert_eq!(o.tip().block_hash, records[2].block_hash);
}

/// Found by the simulator: a peer that announces a false height and never
/// answers was asked again after every timeout (its next announcement
/// restored its claim, the highest), so a node behind never caught up.
/// The timed-out request is now reported like a false announcement, and
/// the next request goes to another peer.
#[test]
fn an_unanswered_sync_request_is_reported_and_the_next_goes_elsewhere() {
    let mut e = engine(None, at_genesis(4));
    assert!(
        e.on_status(2, 5, NOW, &NoMempool)
            .expect("status")
            .iter()
            .any(|a| matches!(a, Action::RequestBlocks { peer: 2, .. }))
    );
    // The liar claims more, but a request is in flight.
    assert!(
        e.on_status(9, 1_000_000, NOW, &NoMempool)
            .expect("status")
            .is_empty()
    );
    let out = e.on_tick(NOW + sync::REQUEST_TIMEOUT_MS - 1);
    assert!(penalties(&out).is_empty());
    let out = e.on_tick(NOW + sync::REQUEST_TIMEOUT_MS);
    assert_eq!(penalties(&out), vec![(2, PeerFault::FalseHeight)]);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::RequestBlocks { peer: 9, .. }))
    );
    // The liar does not answer either: reported, and honest peer 2's claim,
    // heard again, is asked.
    e.on_status(2, 5, NOW + sync::REQUEST_TIMEOUT_MS, &NoMempool)
        .expect("status");
    let out = e.on_tick(NOW + 2 * sync::REQUEST_TIMEOUT_MS);
    assert_eq!(penalties(&out), vec![(9, PeerFault::FalseHeight)]);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::RequestBlocks { peer: 2, .. }))
    );
}

fn votes_of(actions: &[Action<usize>]) -> Vec<pb::Vote> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::BroadcastVote(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// Found by the simulator: a validator that prevoted and precommitted,
/// crashed and restarted had neither vote again (they were outputs, not
/// WAL inputs) and may not sign its prevote again (its signing state is
/// past it); a peer that had missed that prevote waited for it forever and
/// the height stalled. Our own messages now go to the WAL, so the
/// restarted core has them and gossips them.
#[test]
fn a_restarted_validator_gossips_the_votes_it_signed_before() {
    let mut es: Vec<Engine<usize>> = (0..4)
        .map(|i| engine(Some(key(i)), at_genesis(4)))
        .collect();
    let starts: Vec<Vec<Action<usize>>> = es
        .iter_mut()
        .map(|e| e.start_height(NOW, &NoMempool).expect("start"))
        .collect();
    let proposer = starts
        .iter()
        .position(|a| a.iter().any(|x| matches!(x, Action::BroadcastProposal(_))))
        .expect("a proposer");
    let proposal = starts[proposer]
        .iter()
        .find_map(|a| match a {
            Action::BroadcastProposal(p) => Some((**p).clone()),
            _ => None,
        })
        .expect("proposal");
    let v = (proposer + 1) % 4;
    let mut log = starts[v].clone();
    let mut prevotes = votes_of(&starts[proposer]);
    for (i, e) in es.iter_mut().enumerate().filter(|(i, _)| *i != proposer) {
        let out = e
            .on_proposal(proposer, proposal.clone(), NOW, &NoMempool)
            .expect("engine");
        prevotes.extend(votes_of(&out));
        if i == v {
            log.extend(out);
        }
    }
    let mine = Address::of(&key(v as u8).public_key()).0.to_vec();
    for pv in prevotes.iter().filter(|pv| pv.validator_address != mine) {
        log.extend(
            es[v]
                .on_vote(0, pv.clone(), NOW, &NoMempool)
                .expect("engine"),
        );
    }
    let signed: Vec<pb::Vote> = votes_of(&log);
    assert_eq!(signed.len(), 2, "a prevote and a precommit: {signed:?}");
    // Restart from what the host persisted.
    let signing = log.iter().rev().find_map(|a| match a {
        Action::PersistSigningState(s) => Some(*s),
        _ => None,
    });
    let wal: Vec<Input> = log
        .iter()
        .filter_map(|a| match a {
            Action::Wal(i) => Some(i.clone()),
            _ => None,
        })
        .collect();
    let mut restarted = Engine::new(
        EngineConfig::default(),
        Some(key(v as u8)),
        signing,
        at_genesis(4),
        [8; 32],
    );
    restarted.resume(wal, NOW, &NoMempool).expect("resume");
    let gossip = votes_of(&restarted.on_tick(NOW + TICK_MS));
    for vote in &signed {
        assert!(gossip.contains(vote), "{vote:?} is not gossiped again");
    }
}

/// Messages for a height not started yet wait in the engine with their
/// senders; when the height starts, one that fails its check is charged to
/// the peer that sent it (the core's own buffer could not say who), and
/// the valid ones are not. Messages for the next height wait on.
#[test]
fn a_bad_message_buffered_for_its_height_is_charged_to_its_sender_when_it_starts() {
    let mut e = engine(Some(key(0)), at_genesis(4));
    let chain = e.chain().clone();
    let good = prevote(&key(2), &chain, 1, 0, [3; 32]);
    let mut bad = prevote(&key(1), &chain, 1, 0, [3; 32]);
    bad.signature.pop(); // structurally broken: not 96 bytes
    let next = prevote(&key(3), &chain, 2, 0, [4; 32]);
    let mut out = Vec::new();
    for (peer, v) in [(5, bad), (6, good), (7, next)] {
        out.extend(e.on_vote(peer, v, NOW, &NoMempool).expect("engine"));
    }
    assert_eq!(
        penalties(&out),
        Vec::new(),
        "nothing is checked before its height"
    );
    assert_eq!(e.future_buffer().0, 3);
    let started = e.start_height(NOW, &NoMempool).expect("start");
    let charged = penalties(&started);
    assert_eq!(charged.len(), 1, "{charged:?}");
    assert_eq!(charged[0].0, 5);
    assert!(
        matches!(
            charged[0].1,
            PeerFault::Consensus(crate::consensus::RejectReason::BadSignature(_))
        ),
        "{charged:?}"
    );
    assert_eq!(e.future_buffer().0, 1, "height 2's vote waits on");
}

/// A validator of the set that connects is sent the height so far (the
/// proposal and every verified vote), at once; a peer that proved no key,
/// or a key outside the set, is sent nothing.
#[test]
fn a_connecting_validator_is_sent_the_height_so_far_and_an_outsider_nothing() {
    let (_, msgs) = make_chain(4, 1);
    let mut e = engine(None, at_genesis(4));
    e.start_height(NOW, &NoMempool).expect("start");
    let mut fed_votes = 0;
    // Everything but validator 3's messages: the height is not decided yet.
    let from_3 = Address::of(&key(3).public_key()).0.to_vec();
    for m in &msgs[&1] {
        match m {
            Msg::Proposal(p) if p.proposer_address != from_3 => {
                e.on_proposal(9, (**p).clone(), NOW, &NoMempool)
                    .expect("proposal");
            }
            Msg::Vote(v)
                if v.validator_address != from_3 && v.vote_type == VoteType::Prevote as i32 =>
            {
                e.on_vote(9, v.clone(), NOW, &NoMempool).expect("vote");
                fed_votes += 1;
            }
            _ => {}
        }
    }
    assert!(fed_votes >= 2, "the chain had too few prevotes to feed");
    let validator = Address::of(&key(3).public_key());
    let sent = e.on_peer_connected(3, Some(&validator));
    let proposals = sent
        .iter()
        .filter(|a| matches!(a, Action::SendProposal { peer: 3, .. }))
        .count();
    let votes = sent
        .iter()
        .filter(|a| matches!(a, Action::SendVote { peer: 3, .. }))
        .count();
    assert_eq!(proposals + votes, sent.len(), "{sent:?}");
    assert!(votes >= fed_votes, "{votes} votes sent, {fed_votes} fed");
    let outsider = Address::of(&key(42).public_key());
    assert!(e.on_peer_connected(8, Some(&outsider)).is_empty());
    assert!(e.on_peer_connected(8, None).is_empty());
}

mod body_cache;
mod carried_commit;
mod early_start;
mod evidence;
mod restart;
mod signing_alarm;
mod state_sync_anchor;
mod sync_batch;
mod synced_heights;
mod vote_charges;
