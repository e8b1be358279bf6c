//! The CPU side of `agora audit`: one fetched range decoded, verified and
//! replayed, using both cores (see [`super::audit`] for the fetching).
//!
//! Per range, on a blocking thread:
//! 1. the replay of the *previous* (already verified) range starts on a
//!    scoped thread of its own, so execution overlaps verification;
//! 2. every height's certificate and VRF proof are decoded (each a G2
//!    subgroup check) on two scoped threads, half the range each; the
//!    certificate a block carries is bound to its header by the hash of
//!    its bytes and not decoded (`chain_verifier::verify_body`);
//! 3. the bodies are checked against their headers and the range goes to
//!    [`ChainVerifier::verify_batch`] (one randomised multi-pairing, which
//!    blst spreads over its own thread pool);
//! 4. the verified blocks wait for the next range's task to be replayed.
//!
//! Errors keep height order: a replay failure of the previous range comes
//! before anything found in this one, and when this range fails at height
//! h the verified blocks before h are replayed before the error is returned.

use agora_proto::v1 as pb;
use agora_validator::chain_verifier::{ChainStep, ChainVerifier, SCALARS_PER_STEP, verify_body};
use agora_validator::ledger::{BlockInfo, Ledger};
use agora_validator::{Address, CommitCertificate, Signature, ValidatorSet};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::audit::{AuditError, AuditReport, EvidenceSeen};

/// A fetched height whose next validator set was resolved.
pub(super) struct Prepared {
    pub block: pb::Block,
    pub header: pb::Header,
    pub cert: pb::CommitCertificate,
    pub next_set: Arc<ValidatorSet>,
}

/// A prepared height with its signatures decoded.
struct Decoded {
    p: Prepared,
    cert: CommitCertificate,
    /// None when the proof does not decode: the verifier reports it in order.
    proof: Option<Signature>,
}

/// What the verification carries from range to range.
pub(super) struct Walk {
    pub verifier: ChainVerifier,
    pub replay: Option<Ledger>,
    pub report: AuditReport,
    /// Rewards established by the replay (moved into the report at the end).
    pub rewards: BTreeMap<Address, u128>,
    /// Verified blocks not replayed yet.
    pub pending: Vec<pb::Block>,
}

/// Checks that `ledger` (after block h−1) hashes to header h's app hash
/// (the hash made once at the end of h−1, not recomputed), executes block
/// h, and adds the rewards it paid to `rewards` when h ≥ `from`.
fn replay_block(
    ledger: &mut Ledger,
    block: &pb::Block,
    from: u64,
    rewards: &mut BTreeMap<Address, u128>,
) -> Result<(), AuditError> {
    let header = block.header.as_ref().ok_or(AuditError::Malformed {
        height: 0,
        what: "block",
        detail: "missing header".into(),
    })?;
    let h = header.height;
    let computed = ledger.app_hash();
    if computed.as_slice() != header.app_hash.as_slice() {
        return Err(AuditError::StateMismatch {
            height: h,
            computed: hex::encode(computed),
            committed: hex::encode(&header.app_hash),
        });
    }
    let batch_seed: [u8; 32] = rand::random();
    let result = ledger
        .apply_block(
            h,
            &BlockInfo::of_block(block),
            &block.txs,
            &block.evidence,
            &batch_seed,
        )
        .map_err(|e| AuditError::Replay {
            height: h,
            reason: e.to_string(),
        })?;
    if h >= from {
        for (v, amount) in result.end.rewards {
            let total = rewards.entry(v).or_default();
            *total = total.saturating_add(amount);
        }
    }
    Ok(())
}

/// Replays `blocks` in order on `ledger` (if replaying at all).
fn replay_all(
    ledger: Option<&mut Ledger>,
    blocks: &[pb::Block],
    from: u64,
    rewards: &mut BTreeMap<Address, u128>,
) -> Result<(), AuditError> {
    let Some(ledger) = ledger else { return Ok(()) };
    blocks
        .iter()
        .try_for_each(|b| replay_block(ledger, b, from, rewards))
}

impl Walk {
    /// Replays what is still pending (after the last range).
    pub(super) fn finish(&mut self) -> Result<(), AuditError> {
        let pending = std::mem::take(&mut self.pending);
        let from = self.report.from;
        replay_all(self.replay.as_mut(), &pending, from, &mut self.rewards)
    }
}

/// Decodes, verifies and queues for replay one range; replays the previous
/// range meanwhile (see the module docs).
pub(super) fn verify_range(w: &mut Walk, range: Vec<Prepared>) -> Result<(), AuditError> {
    let pending = std::mem::take(&mut w.pending);
    let from = w.report.from;
    let Walk {
        verifier,
        replay,
        report,
        rewards,
        pending: next_pending,
    } = w;
    let (replayed, verified) = std::thread::scope(|s| {
        let replayer = s.spawn(|| replay_all(replay.as_mut(), &pending, from, rewards));
        let verified = verify_decoded(verifier, report, range, next_pending);
        let replayed = replayer.join().unwrap_or_else(|_| {
            Err(AuditError::Replay {
                height: 0,
                reason: "the replay thread panicked".into(),
            })
        });
        (replayed, verified)
    });
    replayed?;
    if verified.is_err() {
        // The verified blocks before the failure are replayed first, so
        // the error reported is the first one in height order.
        let pending = std::mem::take(&mut w.pending);
        replay_all(w.replay.as_mut(), &pending, from, &mut w.rewards)?;
    }
    verified
}

/// Steps 2–4 of the module docs.
fn verify_decoded(
    verifier: &mut ChainVerifier,
    report: &mut AuditReport,
    range: Vec<Prepared>,
    pending: &mut Vec<pb::Block>,
) -> Result<(), AuditError> {
    let (decoded, mut stopped) = decode_parallel(range);
    // Bodies against headers, cheap and in order; a failure cuts the range.
    let mut good = decoded.len();
    for (i, d) in decoded.iter().enumerate() {
        if let Err(e) = verify_body(&d.p.block) {
            good = i;
            stopped = Some(e.into());
            break;
        }
    }
    let decoded = &decoded[..good];
    let steps: Vec<ChainStep<'_>> = decoded
        .iter()
        .map(|d| ChainStep {
            header: &d.p.header,
            cert: &d.cert,
            next_set: &d.p.next_set,
            vrf_proof: d.proof.as_ref(),
        })
        .collect();
    let randomness: Vec<u64> = (0..steps.len() * SCALARS_PER_STEP)
        .map(|_| rand::random::<u64>() | 1)
        .collect();
    let verdict = if steps.is_empty() {
        Ok(Vec::new())
    } else {
        verifier.verify_batch(&steps, &randomness)
    };
    let verified_to = verifier.next_height();
    for d in decoded.iter().filter(|d| d.p.header.height < verified_to) {
        let h = d.p.header.height;
        report.verified_total += 1;
        if h >= report.from {
            report.verified += 1;
            report
                .evidence
                .extend(
                    d.p.block
                        .evidence
                        .iter()
                        .cloned()
                        .map(|evidence| EvidenceSeen {
                            height: h,
                            evidence,
                        }),
                );
        }
        pending.push(d.p.block.clone());
    }
    verdict?;
    stopped.map_or(Ok(()), Err)
}

/// Decodes every height's signatures on two threads (half the range each).
/// Returns the decoded prefix and the error of the first height that does
/// not decode, if any.
fn decode_parallel(range: Vec<Prepared>) -> (Vec<Decoded>, Option<AuditError>) {
    let mid = range.len().div_ceil(2);
    let mut range = range;
    let second: Vec<Prepared> = range.split_off(mid);
    let (a, b) = std::thread::scope(|s| {
        let t = s.spawn(move || decode_all(second));
        let a = decode_all(range);
        (a, t.join())
    });
    let b = b.unwrap_or_else(|_| {
        vec![Err(AuditError::Replay {
            height: 0,
            reason: "a decoding thread panicked".into(),
        })]
    });
    let mut out = Vec::with_capacity(a.len() + b.len());
    for r in a.into_iter().chain(b) {
        match r {
            Ok(d) => out.push(d),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn decode_all(range: Vec<Prepared>) -> Vec<Result<Decoded, AuditError>> {
    range.into_iter().map(decode_one).collect()
}

fn decode_one(p: Prepared) -> Result<Decoded, AuditError> {
    let h = p.header.height;
    let cert = CommitCertificate::from_proto(&p.cert).map_err(|e| AuditError::Malformed {
        height: h,
        what: "certificate",
        detail: e.to_string(),
    })?;
    let proof = Signature::from_bytes(&p.header.vrf_proof).ok();
    Ok(Decoded { p, cert, proof })
}
