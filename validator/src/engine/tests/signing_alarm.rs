//! The signing gate and the double-instance alarm: a closed gate signs
//! nothing, and a valid vote of our own key that this instance never signed
//! (relayed back, or for a later height) stops signing.

use super::*;

fn signs(actions: &[Action<usize>]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::PersistSigningState(_)))
}

/// A lone validator (it proposes and decides every height by itself): a
/// waiting gate makes the engine sign nothing until it opens; an open one
/// signs at once (the negative control).
#[test]
fn a_closed_signing_gate_signs_nothing() {
    use crate::consensus::{SigningGate, WaitReason};
    let mut open = engine(Some(key(0)), at_genesis(1)).with_signing_gate(SigningGate::open(2));
    let out = open.start_height(NOW, &NoMempool).expect("start");
    assert!(signs(&out));
    assert!(out.iter().any(|a| matches!(a, Action::Commit(_))));

    let mut held = engine(Some(key(0)), at_genesis(1))
        .with_signing_gate(SigningGate::waiting(2, WaitReason::MissingState));
    let out = held.start_height(NOW, &NoMempool).expect("start");
    assert!(!signs(&out), "{out:?}");
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::BroadcastProposal(_) | Action::BroadcastVote(_)))
    );
    assert!(!held.signing_gate().may_sign());
}

/// Our own messages relayed back are known; a vote of our key we never
/// signed raises the alarm, and the engine signs nothing more.
#[test]
fn a_foreign_vote_of_our_key_raises_the_alarm_and_stops_signing() {
    use crate::consensus::{GateStatus, SigningGate};
    let run = |foreign: bool| {
        let mut e = engine(Some(key(0)), at_genesis(1)).with_signing_gate(SigningGate::open(2));
        let out = e.start_height(NOW, &NoMempool).expect("start");
        // Height 1 is decided; its own messages come back by gossip.
        for a in &out {
            if let Action::BroadcastVote(v) = a {
                assert!(e.on_vote(1, v.clone(), NOW, &NoMempool).is_ok());
            }
        }
        assert_eq!(e.signing_gate().alarms(), 0);
        if foreign {
            let bytes = vote_bytes(e.chain(), VoteType::Prevote, 2, 3, &[9; 32]);
            let v = pb::Vote {
                vote_type: VoteType::Prevote as i32,
                height: 2,
                round: 3,
                block_hash: vec![9; 32],
                validator_address: Address::of(&key(0).public_key()).0.to_vec(),
                signature: key(0).sign(&bytes).to_bytes().to_vec(),
            };
            e.on_vote(1, v, NOW, &NoMempool).expect("vote");
            assert_eq!(e.signing_gate().status(), GateStatus::Alarmed { height: 2 });
            assert_eq!(e.signing_gate().alarms(), 1);
        }
        signs(&e.start_height(NOW, &NoMempool).expect("start"))
    };
    assert!(run(false), "without the foreign vote height 2 is signed");
    assert!(!run(true), "after the alarm nothing is signed");
}

/// A second instance running a height ahead is seen by the messages it
/// signs for that later height: this instance cannot have signed them yet,
/// so a valid one raises the alarm at once (not when its height starts).
/// A forgery claiming our key does not.
#[test]
fn a_vote_of_our_key_for_a_later_height_raises_the_alarm_on_arrival() {
    use crate::consensus::{GateStatus, SigningGate};
    let ours = |height: Height, value: u8, forged: bool| {
        let bytes = vote_bytes(
            &ChainId::new("agora-engine-test").unwrap(),
            VoteType::Prevote,
            height,
            0,
            &[value; 32],
        );
        let signer = if forged { key(1) } else { key(0) };
        pb::Vote {
            vote_type: VoteType::Prevote as i32,
            height,
            round: 0,
            block_hash: vec![value; 32],
            validator_address: Address::of(&key(0).public_key()).0.to_vec(),
            signature: signer.sign(&bytes).to_bytes().to_vec(),
        }
    };
    let fresh = || engine(Some(key(0)), at_genesis(4)).with_signing_gate(SigningGate::open(2));

    // Started at height 1: a forgery for height 3 is not foreign.
    let mut e = fresh();
    e.start_height(NOW, &NoMempool).expect("start");
    e.on_vote(5, ours(3, 9, true), NOW, &NoMempool)
        .expect("vote");
    assert_eq!(e.signing_gate().alarms(), 0);
    assert!(e.signing_gate().may_sign());

    // A valid vote of our key for height 3 is foreign, though it waits.
    e.on_vote(5, ours(3, 9, false), NOW, &NoMempool)
        .expect("vote");
    assert_eq!(e.signing_gate().status(), GateStatus::Alarmed { height: 3 });
    assert_eq!(e.signing_gate().alarms(), 1);
    assert_eq!(e.future_buffer().0, 2, "both still wait for height 3");
}

/// Evidence that our key signed two conflicting votes proves another holder
/// of the key (this instance signs one vote per position). Seen in a
/// real-process run: two instances signed different proposals at the same
/// height and only the evidence, gossiped by a third node, showed either of
/// them the other's signature. Above the first height this process decided
/// live it is the alarm. The negative controls: evidence against another
/// validator; evidence of the first live height itself (it may be an
/// earlier life's, still gossiped); a host that signs the conflicting vote
/// on purpose.
#[test]
fn evidence_against_our_key_above_a_live_height_raises_the_alarm() {
    use crate::consensus::{GateStatus, SigningGate};
    let (_, msgs) = make_chain(4, 1);
    let ours = Address::of(&key(0).public_key()).0.to_vec();
    let run = |offender: u8, height: Height, on_purpose: bool| {
        let mut e = engine(Some(key(0)), at_genesis(4)).with_signing_gate(SigningGate::open(2));
        e.start_height(NOW, &NoMempool).expect("start");
        // Height 1 decided live, from the other three's messages.
        for m in &msgs[&1] {
            let _ = match m {
                Msg::Proposal(p) if p.proposer_address != ours => {
                    e.on_proposal(1, (**p).clone(), NOW, &NoMempool)
                }
                Msg::Vote(v) if v.validator_address != ours => {
                    e.on_vote(1, v.clone(), NOW, &NoMempool)
                }
                _ => continue,
            }
            .expect("message");
        }
        assert_eq!(e.tip_height(), 1, "height 1 decided");
        let chain = e.chain().clone();
        let conflicting = prevote(&key(offender), &chain, height, 0, [2; 32]);
        if on_purpose {
            e.record_own_vote(&conflicting);
        }
        let first = prevote(&key(offender), &chain, height, 0, [1; 32]);
        let out = e.on_evidence(5, duplicate_vote(first, conflicting));
        assert!(
            out.iter().any(|a| matches!(a, Action::PersistEvidence(..))),
            "{out:?}"
        );
        e.signing_gate().status()
    };
    assert_eq!(run(0, 2, false), GateStatus::Alarmed { height: 2 });
    assert_eq!(run(2, 2, false), GateStatus::Open);
    assert_eq!(run(0, 1, false), GateStatus::Open);
    assert_eq!(run(0, 2, true), GateStatus::Open);
}
