//! The certificate check of a run of synced blocks as pure data: what the
//! engine stages (the in-line batch of `sync_batch.rs`) or hands to a host
//! thread ([`CertificateJob`]), and the verdict that comes back.
//!
//! A job owns copies of what it checks (each block's header and
//! certificate, the validator sets of the two heights after the tip, the
//! host's batch entropy): decoding the certificates (two decompressions
//! and a subgroup check each), the cheap checks and the pairings all run
//! on the job's thread, none on the engine's. The rules are the in-line
//! batch's, in one function ([`stage_one`]).

use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::crypto::bls::{self, BatchItem};
use crate::crypto::{Hash, PublicKey, Signature, sha3_256_parts};
use crate::types::{ChainId, Height};
use crate::validator_set::ValidatorSet;
use agora_proto::v1 as pb;

/// One certificate that passed the cheap checks, ready for the batch.
#[derive(Debug)]
pub(super) struct Staged {
    pub(super) height: Height,
    pub(super) cert: CommitCertificate,
    pub(super) set_hash: Hash,
    key: PublicKey,
    msg: Vec<u8>,
}

/// The cheap checks of one block's certificate against `set` (the set of
/// its height, or the guess the module docs of `sync_batch.rs` allow):
/// the header names the set, the certificate decodes, certifies this
/// height and header, and its signers carry enough power. None if any
/// fails (the block is then left to the core).
pub(super) fn stage_one(
    chain: &ChainId,
    set: &ValidatorSet,
    height: Height,
    header: &pb::Header,
    cert: &pb::CommitCertificate,
) -> Option<Staged> {
    let set_hash = set.hash();
    if header.validators_hash.as_slice() != set_hash.as_slice() {
        return None;
    }
    let cert = CommitCertificate::from_proto(cert).ok()?;
    cert.matches(height, &header_hash(header)).ok()?;
    let (key, msg) = cert.stage(chain, set).ok()?;
    Some(Staged {
        height,
        cert,
        set_hash,
        key,
        msg,
    })
}

/// One non-zero scalar per item from the host's secret `entropy` and a
/// digest of the whole batch (see the module docs of `sync_batch.rs`).
pub(super) fn batch_scalars(entropy: &Hash, staged: &[Staged]) -> Vec<u64> {
    let mut digest = sha3_256_parts(&[b"agora-engine-sync-batch", &entropy[..]]);
    for s in staged {
        let sig: [u8; 96] = Signature::to_bytes(&s.cert.aggregate_signature);
        digest = sha3_256_parts(&[&digest, &s.key.to_bytes(), &s.msg, &sig]);
    }
    (0..staged.len() as u64)
        .map(|i| {
            let r = sha3_256_parts(&[&digest, &i.to_be_bytes()]);
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[..8]);
            u64::from_be_bytes(b) | 1
        })
        .collect()
}

/// How many of `staged`, from the first, verify: all of them in one
/// randomised multi-pairing, bisected to the first bad one on failure.
pub(super) fn verified_prefix(staged: &[Staged], entropy: &Hash) -> usize {
    let scalars = batch_scalars(entropy, staged);
    let items: Vec<BatchItem<'_>> = staged
        .iter()
        .map(|s| BatchItem {
            key: &s.key,
            msg: &s.msg,
            sig: &s.cert.aggregate_signature,
        })
        .collect();
    bls::first_invalid(&items, &scalars).unwrap_or(staged.len())
}

/// A queued block's header and certificate, copied into a job.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) height: Height,
    pub(super) header: pb::Header,
    pub(super) cert: pb::CommitCertificate,
}

/// The certificates of a run of queued synced blocks, checked by
/// [`Self::run`] on any thread.
#[derive(Debug)]
pub struct CertificateJob {
    pub(super) chain: ChainId,
    /// The last committed height when the job was taken.
    pub(super) tip: Height,
    /// The sets of `tip + 1` and `tip + 2`, known exactly; the second is
    /// also the guess for later heights.
    pub(super) sets: [ValidatorSet; 2],
    /// Consecutive heights from `tip + 1` or later, one peer's.
    pub(super) pending: Vec<Pending>,
    pub(super) entropy: Hash,
}

/// What a [`CertificateJob`] found: the certificates that passed the
/// cheap checks (a prefix of the run) and how many of them, from the
/// first, verified.
#[derive(Debug)]
pub struct CertificateVerdict {
    pub(super) staged: Vec<Staged>,
    pub(super) good: usize,
    /// The heights the job held back.
    pub(super) heights: std::ops::RangeInclusive<Height>,
    /// The tip when the job was taken (sets above `tip + 2` were guessed).
    pub(super) tip: Height,
}

impl CertificateJob {
    /// The heights it covers.
    pub fn heights(&self) -> std::ops::RangeInclusive<Height> {
        let first = self.pending.first().map_or(0, |p| p.height);
        first..=self.pending.last().map_or(0, |p| p.height)
    }

    /// Stages and verifies the run: decoding and the cheap checks (over
    /// the cores; the run ends at the first block that fails one), then
    /// the batch.
    pub fn run(self) -> CertificateVerdict {
        let heights = self.heights();
        let stage = |p: &Pending| {
            let set = if p.height <= self.tip + 1 {
                &self.sets[0]
            } else {
                &self.sets[1]
            };
            stage_one(&self.chain, set, p.height, &p.header, &p.cert)
        };
        let staged: Vec<Staged> = parallel_map(&self.pending, stage)
            .into_iter()
            .map_while(|s| s)
            .collect();
        let good = verified_prefix(&staged, &self.entropy);
        CertificateVerdict {
            staged,
            good,
            heights,
            tip: self.tip,
        }
    }
}

/// `f` over `items` on the calling thread and one more per further core,
/// each taking the next item from one counter; the results in the items'
/// order. A panic in a helper is a panic here.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let take = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return out;
            };
            out.push((i, f(item)));
        }
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads.min(items.len()))
            .map(|_| s.spawn(take))
            .collect();
        let mut mine = take();
        for h in helpers {
            mine.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        mine
    });
    debug_assert_eq!(all.len(), items.len());
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::parallel_map;

    #[test]
    fn parallel_map_keeps_the_items_order_and_misses_none() {
        for n in [0usize, 1, 2, 3, 257] {
            let items: Vec<usize> = (0..n).collect();
            let out = parallel_map(&items, |i| i * 3 + 1);
            assert_eq!(out, items.iter().map(|i| i * 3 + 1).collect::<Vec<_>>());
        }
    }
}
