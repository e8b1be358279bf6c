//! The batched certificate check of synced blocks (`sync_batch.rs`).

use super::*;
use crate::certificate::CommitCertificate;
use crate::consensus::RejectReason;

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

/// An observer that asked peer 0 and got `resp`.
fn asked(resp: pb::BlockResponse) -> Engine<usize> {
    let mut o = engine(None, at_genesis(4));
    let latest = resp.latest_height;
    assert_eq!(
        o.on_status(0, latest, NOW, &NoMempool)
            .expect("status")
            .len(),
        1,
        "a request"
    );
    assert!(o.on_block_response(0, resp).is_empty());
    o
}

fn checked_flags(o: &mut Engine<usize>) -> Vec<bool> {
    o.sync.queued_mut().map(|q| q.checked.is_some()).collect()
}

fn bad_certificate(actions: &[Action<usize>]) -> bool {
    penalties(actions).iter().any(|(peer, f)| {
        *peer == 0 && matches!(f, PeerFault::Consensus(RejectReason::BadCertificate(_)))
    })
}

#[test]
fn a_tampered_certificate_mid_batch_is_refused_and_charged_after_the_blocks_before_it() {
    let (records, _) = make_chain(4, 8);
    let mut o = asked(response(&records, Some(5)));
    // One batch: heights 1..=4 verified ahead, the bad one and those after
    // it (never trusted past a failure) left to the core.
    o.check_queued_certificates();
    assert_eq!(
        checked_flags(&mut o),
        [true, true, true, true, false, false, false, false]
    );
    let actions = apply_all_synced(&mut o);
    assert_eq!(
        o.tip_height(),
        4,
        "blocks before the bad one applied, not it"
    );
    assert_eq!(o.tip().block_hash, records[3].block_hash);
    assert!(
        bad_certificate(&actions),
        "its peer is charged: {actions:?}"
    );
    let commits = actions
        .iter()
        .filter(|a| matches!(a, Action::Commit(_)))
        .count();
    assert_eq!(commits, 4);
    // The rest of that response is dropped; nothing is queued.
    assert!(o.sync.next_is_empty());
}

#[test]
fn a_good_response_is_verified_in_one_batch_and_applied() {
    let (records, _) = make_chain(4, 6);
    let mut o = asked(response(&records, None));
    o.check_queued_certificates();
    assert_eq!(checked_flags(&mut o), [true; 6]);
    let actions = apply_all_synced(&mut o);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
    assert_eq!(o.tip_height(), 6);
    assert_eq!(o.tip().block_hash, records[5].block_hash);
}

/// Negative control: the core skips the pairing only for a certificate
/// verified against the very set it holds for the height. A bad one
/// marked as verified under another set's hash is still refused; marked
/// under the right hash it would be taken — the batch verdict is what
/// keeps a bad certificate out, and the test above would catch its loss.
#[test]
fn the_core_trusts_a_batch_verdict_only_for_its_own_set() {
    let (records, _) = make_chain(4, 3);
    for (set_hash, refused) in [(ZERO_HASH, true), (o_set_hash(), false)] {
        let mut o = asked(response(&records, Some(1)));
        let q = o.sync.queued_mut().next().expect("queued");
        let cert = q.block.certificate.as_ref().expect("certificate");
        let cert = CommitCertificate::from_proto(cert).expect("decodes");
        q.checked = Some(super::super::sync::Checked { cert, set_hash });
        // No batch runs over a block already looked at.
        o.sync.batched_through = 3;
        let actions = o
            .next_synced_block(NOW, &NoMempool)
            .expect("engine")
            .expect("a block");
        assert_eq!(bad_certificate(&actions), refused, "{actions:?}");
        assert_eq!(o.tip_height(), u64::from(!refused));
    }
}

/// The hash of the genesis set (the set of height 1 in these chains).
fn o_set_hash() -> Hash {
    let l = Ledger::from_genesis(&genesis(4)).expect("genesis");
    l.validator_set(1).expect("set of height 1").hash()
}
