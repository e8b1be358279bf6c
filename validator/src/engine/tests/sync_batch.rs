//! The batched certificate check of synced blocks (`sync_batch.rs`).

use super::*;
use crate::certificate::CommitCertificate;
use crate::consensus::RejectReason;

/// An observer that asked peer 0 and got `resp`.
fn asked(resp: pb::BlockResponse) -> Engine<usize> {
    asked_by(None, resp)
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

/// The job path (a host verifying on another thread): the run's blocks
/// wait for the verdict, then apply exactly as after the in-line batch.
#[test]
fn a_job_holds_its_blocks_until_its_verdict_then_they_apply() {
    let (records, _) = make_chain(4, 6);
    let mut o = asked(response(&records, None));
    assert!(o.synced_block_ready());
    let job = o.take_certificate_job().expect("a job for the run");
    assert_eq!(job.heights(), 1..=6);
    assert!(o.take_certificate_job().is_none(), "one job at a time");
    assert!(!o.synced_block_ready(), "held for the verdict");
    assert!(
        o.next_synced_block(NOW, &NoMempool)
            .expect("engine")
            .is_none()
    );
    assert_eq!(o.tip_height(), 0);
    o.on_certificate_verdict(job.run());
    assert_eq!(checked_flags(&mut o), [true; 6]);
    assert!(o.synced_block_ready());
    let actions = apply_all_synced(&mut o);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
    assert_eq!(o.tip_height(), 6);
    assert_eq!(o.tip().block_hash, records[5].block_hash);
}

/// A tampered certificate in the middle of a job: the blocks before it
/// apply, it is refused and its peer charged, as with the in-line batch.
#[test]
fn a_tampered_certificate_mid_job_is_refused_and_charged_after_the_blocks_before_it() {
    let (records, _) = make_chain(4, 8);
    let mut o = asked(response(&records, Some(5)));
    let job = o.take_certificate_job().expect("a job");
    o.on_certificate_verdict(job.run());
    assert_eq!(
        checked_flags(&mut o),
        [true, true, true, true, false, false, false, false]
    );
    let actions = apply_all_synced(&mut o);
    assert_eq!(o.tip_height(), 4);
    assert!(bad_certificate(&actions), "{actions:?}");
    assert!(o.sync.next_is_empty());
}

/// A job whose verdict is lost (its thread died) releases its blocks
/// unverified: they are checked on the loop, and a bad certificate among
/// them is still refused (losing a verdict never means trusting a block).
#[test]
fn an_abandoned_job_leaves_its_blocks_to_the_loop_which_still_refuses_a_bad_one() {
    let (records, _) = make_chain(4, 8);
    let mut o = asked(response(&records, Some(3)));
    let job = o.take_certificate_job().expect("a job");
    drop(job);
    assert!(!o.synced_block_ready());
    o.abandon_certificate_job();
    assert!(o.synced_block_ready());
    assert_eq!(checked_flags(&mut o), [false; 8], "nothing marked");
    let actions = apply_all_synced(&mut o);
    assert_eq!(o.tip_height(), 2);
    assert!(bad_certificate(&actions), "{actions:?}");
}

/// A verdict marks only the queued blocks it was made for: blocks applied
/// meanwhile are gone from the queue and the rest still match by height
/// and block hash. Negative control: a verdict whose certificates are for
/// other blocks (here: shifted by one height) marks nothing.
#[test]
fn a_verdict_marks_only_the_blocks_it_verified() {
    let (records, _) = make_chain(4, 6);
    let mut o = asked(response(&records, None));
    let job = o.take_certificate_job().expect("a job");
    let mut verdict = job.run();
    assert_eq!(verdict.good, 6);
    // The certificates shifted one height up: no height and hash pair matches.
    for (s, r) in verdict.staged.iter_mut().zip(records.iter().skip(1)) {
        s.cert = r.certificate.clone();
    }
    verdict.staged.pop();
    verdict.good = 5;
    o.on_certificate_verdict(verdict);
    assert_eq!(checked_flags(&mut o), [false; 6]);
    // They are still applied, each certificate verified by the core.
    let actions = apply_all_synced(&mut o);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
    assert_eq!(o.tip_height(), 6);
}

/// A job whose first certificate fails a cheap check (here it does not
/// decode) releases its blocks, and that block is not taken into a job
/// again (else a host would loop on it): the next job starts after it,
/// and the core refuses the bad block and charges its peer.
#[test]
fn a_job_whose_first_certificate_fails_a_cheap_check_moves_on() {
    let (records, _) = make_chain(4, 6);
    let mut resp = response(&records, None);
    if let Some(c) = resp.blocks[0].certificate.as_mut() {
        c.aggregate_signature = vec![1; 96];
    }
    let mut o = asked(resp);
    let job = o.take_certificate_job().expect("a job");
    assert_eq!(job.heights(), 1..=6);
    o.on_certificate_verdict(job.run());
    assert_eq!(checked_flags(&mut o), [false; 6]);
    let next = o.take_certificate_job().expect("the rest of the run");
    assert_eq!(next.heights(), 2..=6);
    o.on_certificate_verdict(next.run());
    assert_eq!(checked_flags(&mut o), [false, true, true, true, true, true]);
    let actions = apply_all_synced(&mut o);
    assert_eq!(o.tip_height(), 0);
    assert!(
        penalties(&actions).iter().any(|(peer, _)| *peer == 0),
        "{actions:?}"
    );
}

/// A lone queued block (a validator one height behind) is not made a job:
/// the core checks it at once, with no thread round trip in the way.
#[test]
fn a_lone_block_is_not_made_a_job() {
    let (records, _) = make_chain(4, 3);
    let mut o = engine(None, at_genesis(4));
    o.on_status(0, 3, NOW, &NoMempool).expect("status");
    let mut resp = response(&records[..1], None);
    resp.latest_height = 3;
    o.on_block_response(0, resp, NOW);
    assert!(o.take_certificate_job().is_none());
    assert!(o.synced_block_ready());
    let actions = apply_all_synced(&mut o);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
    assert_eq!(o.tip_height(), 1);
}

/// A job taken while nothing verified waits is small ([`FIRST_JOB`]), so
/// the host starts applying soon; later jobs take up to twice the blocks
/// ready ahead of them, and never more than [`SYNC_CHECK_BATCH`].
#[test]
fn jobs_start_small_and_grow_with_what_is_ready_ahead() {
    use crate::engine::sync_batch::FIRST_JOB;
    let n = (FIRST_JOB + 2 * FIRST_JOB + 4) as Height;
    let (records, _) = make_chain(4, n);
    let mut o = asked(response(&records, None));
    let first = o.take_certificate_job().expect("a job");
    let f = FIRST_JOB as Height;
    assert_eq!(first.heights(), 1..=f);
    o.on_certificate_verdict(first.run());
    let second = o.take_certificate_job().expect("a second job");
    assert_eq!(second.heights(), f + 1..=3 * f, "twice the {f} ready");
    // The host applies the first run while the second is verified.
    for _ in 0..f {
        o.next_synced_block(NOW, &NoMempool).expect("engine");
    }
    o.on_certificate_verdict(second.run());
    assert_eq!(o.tip_height(), f);
    let third = o.take_certificate_job().expect("a third job");
    assert_eq!(third.heights(), 3 * f + 1..=n, "the rest, under the cap");
    o.on_certificate_verdict(third.run());
    let actions = apply_all_synced(&mut o);
    assert!(penalties(&actions).is_empty(), "{actions:?}");
    assert_eq!(o.tip_height(), n);
}
