//! Certificates of queued synced blocks verified many at once.
//!
//! A synced block's certificate is checked against the validator set of its
//! height, which this node derives itself. The set of h+2 is fixed at the
//! end of h, so with the ledger at tip t the sets of t+1 and t+2 are known
//! exactly; a later height is checked against the set of t+2 only if its
//! header names that set (`validators_hash`), which is by far the common
//! case (sets change rarely). That is a guess until the block's turn comes:
//! the core then compares the hash of the set it actually holds for the
//! height with the one the certificate was verified under and verifies the
//! certificate again, alone, if they differ (`Input::SyncedBlock`'s
//! `verified_against`). Nothing is trusted beyond what was checked.
//!
//! Before the next queued block is applied, the run of queued blocks from
//! it (same peer, consecutive heights, at most [`SYNC_CHECK_BATCH`]) whose
//! certificates pass the cheap checks (decoding, height and block hash,
//! bitmap, power) is verified in one randomised multi-pairing
//! (`bls::first_invalid`), bisected on failure: the blocks before the first
//! bad certificate are marked verified; the bad one stays unmarked, so the
//! core verifies it alone when its turn comes, rejects it and its peer is
//! charged (`PeerFault::Consensus`) — exactly as without batching, and the
//! blocks before it are applied first. No certificate enters two batches
//! (`SyncState::batched_through`) and none is decoded twice (the decoded
//! certificate travels with its block).
//!
//! Off the engine's thread: a host may take the next unbatched run as a
//! [`CertificateJob`] ([`Engine::take_certificate_job`]: copies of the
//! run's headers and certificates, see `certificate_job.rs`), run it on
//! another thread ([`CertificateJob::run`], a pure function of its data:
//! decoding, cheap checks and the batch) while it applies the blocks
//! queued before it, and hand the [`CertificateVerdict`] back
//! ([`Engine::on_certificate_verdict`]). Until then the run's blocks wait:
//! [`Engine::next_synced_block`] returns None for them and
//! [`Engine::synced_block_ready`] says false. The verdict marks the
//! blocks it verified exactly as the in-line batch does, matched by
//! height and block hash, so blocks dropped or applied meanwhile are
//! skipped; blocks of the run after its first failed cheap check may be
//! batched again. Hosts that never take a job get the in-line batch.
//!
//! The scalars: the engine has no randomness of its own; they are derived
//! from the host's secret `entropy` and a digest of every item of the batch
//! (Fiat–Shamir with a secret key, as the core's proposal check does): fixed only
//! once the items are, and unpredictable to whoever made them, so a batch
//! holding an invalid signature passes with probability about 2^-64.

use super::Engine;
use super::certificate_job::{
    CertificateJob, CertificateVerdict, Pending, Staged, stage_one, verified_prefix,
};
use super::sync::{Checked, block_height};
use crate::block::header_hash;

/// Certificates verified in one batch, at most (a sync response holds up to
/// `SYNC_BATCH` blocks; a batch this size is about 0.1 s of pairings).
pub const SYNC_CHECK_BATCH: usize = 256;

/// Certificates in a job taken while no verified block waits to be applied,
/// at most. The host applies nothing until that job's verdict, so a first
/// job of [`SYNC_CHECK_BATCH`] kept a restarted validator idle for its
/// whole batch (35–90 ms in `agora-testnet bench`); later jobs may verify
/// twice as many as are ready ahead of them, up to [`SYNC_CHECK_BATCH`],
/// so the loop applies one run while the next is verified.
pub const FIRST_JOB: usize = 48;
// `usize::clamp` needs its bounds in order.
const _: () = assert!(FIRST_JOB <= SYNC_CHECK_BATCH);

impl<P: Copy + Ord + std::fmt::Debug> Engine<P> {
    /// Verifies the certificates of the queued run starting at the next
    /// queued block in one batch, unless that block was already looked at.
    pub(super) fn check_queued_certificates(&mut self) {
        let Some(front) = self.sync.front_height() else {
            return;
        };
        if front <= self.sync.batched_through {
            return;
        }
        let staged = self.stage_front();
        self.sync.batched_through = staged.last().map_or(front, |s| s.height);
        if staged.len() < 2 {
            // A lone certificate is verified by the core as before.
            return;
        }
        let good = verified_prefix(&staged, &self.entropy);
        self.mark_checked(staged, good);
    }

    /// The next queued run no batch looked at yet (consecutive heights
    /// above the tip, one peer's, at most [`SYNC_CHECK_BATCH`], and at most
    /// twice the verified blocks ready before it, [`FIRST_JOB`] at least), copied
    /// into a job for another thread; None while a job is out or for a
    /// lone block. Its blocks wait for [`Self::on_certificate_verdict`].
    pub fn take_certificate_job(&mut self) -> Option<CertificateJob> {
        if self.sync.job.is_some() {
            return None;
        }
        let tip = self.tip_height();
        if tip + 2 < self.sync.job_not_before {
            return None;
        }
        let (start, first) = self
            .sync
            .first_queued_above(self.sync.batched_through.max(tip))?;
        let ready = self
            .sync
            .queued_mut()
            .take(start)
            .take_while(|q| q.checked.is_some())
            .count();
        let size = (2 * ready).clamp(FIRST_JOB, SYNC_CHECK_BATCH);
        let mut pending = Vec::new();
        let mut peer = None;
        let queued = self.sync.queued_mut().skip(start).take(size);
        for (height, q) in (first..).zip(queued) {
            if *peer.get_or_insert(q.peer) != q.peer || block_height(&q.block) != Some(height) {
                break;
            }
            let (Some(block), Some(cert)) = (&q.block.block, &q.block.certificate) else {
                break;
            };
            let Some(header) = &block.header else { break };
            pending.push(Pending {
                height,
                header: header.clone(),
                cert: cert.clone(),
            });
        }
        if pending.len() < 2 {
            // A lone block (a validator one height behind) is checked by
            // the core at once: a thread's round trip would only delay it.
            return None;
        }
        let job = CertificateJob {
            chain: self.chain.clone(),
            tip,
            sets: [
                self.ledger.validator_set(tip + 1)?.clone(),
                self.ledger.validator_set(tip + 2)?.clone(),
            ],
            pending,
            entropy: self.entropy,
        };
        self.sync.batched_through = *job.heights().end();
        self.sync.job = Some(job.heights());
        Some(job)
    }

    /// The verdict of the job taken last: its verified blocks still
    /// queued are marked, and the blocks it held back may be applied.
    /// Blocks from its first failed cheap check on may be batched again.
    pub fn on_certificate_verdict(&mut self, v: CertificateVerdict) {
        self.sync.job = None;
        let (start, end) = (*v.heights.start(), *v.heights.end());
        // The first height the job did not stage, if it stopped early.
        let stopped = start + v.staged.len() as u64;
        if self.sync.batched_through == end && stopped <= end {
            self.sync.batched_through = if stopped > v.tip + 2 {
                // Checked against a guessed set (the set changed there):
                // batched again once the tip is close enough to know it.
                self.sync.job_not_before = stopped;
                stopped - 1
            } else {
                // Failed against its known set: left to the core, and not
                // taken into a job again (a host would loop on it).
                stopped
            };
        }
        self.mark_checked(v.staged, v.good);
    }

    /// The job taken last will not be answered (its thread was lost): its
    /// blocks go on unverified, to the in-line batch or the core.
    pub fn abandon_certificate_job(&mut self) {
        if let Some(job) = self.sync.job.take() {
            self.sync.batched_through = job.start().saturating_sub(1);
        }
    }

    /// Whether [`Self::next_synced_block`] has a block to apply now (one
    /// is queued and not held back by a job out).
    pub fn synced_block_ready(&self) -> bool {
        self.sync
            .front_height()
            .is_some_and(|h| !self.sync.job.as_ref().is_some_and(|j| j.contains(&h)))
    }

    /// Marks the first `good` of `staged` verified, on the queued blocks
    /// they still match (same height, same block).
    fn mark_checked(&mut self, staged: Vec<Staged>, good: usize) {
        let mut verified = staged.into_iter().take(good).peekable();
        for q in self.sync.queued_mut() {
            let Some(h) = block_height(&q.block) else {
                continue;
            };
            while verified.next_if(|s| s.height < h).is_some() {}
            let matches = |s: &Staged| {
                s.height == h
                    && q.block
                        .block
                        .as_ref()
                        .and_then(|b| b.header.as_ref())
                        .is_some_and(|hd| header_hash(hd) == s.cert.block_hash)
            };
            if let Some(s) = verified.next_if(matches) {
                q.checked = Some(Checked {
                    cert: s.cert,
                    set_hash: s.set_hash,
                });
            }
        }
    }

    /// The cheap checks of the queued run from the front (which must be
    /// the height after the tip), in order, stopping at the first block
    /// that fails one (it is left to the normal path).
    fn stage_front(&mut self) -> Vec<Staged> {
        let tip = self.tip_height();
        let (ledger, chain) = (&self.ledger, &self.chain);
        let mut out = Vec::new();
        let mut peer = None;
        let queued = self.sync.queued_mut().take(SYNC_CHECK_BATCH);
        for (expect, q) in (tip + 1..).zip(queued) {
            if *peer.get_or_insert(q.peer) != q.peer || block_height(&q.block) != Some(expect) {
                break;
            }
            // Known exactly up to tip+2; later heights are checked against
            // the set of tip+2 if they name it (see the module docs).
            let Some(set) = ledger.validator_set(expect.min(tip + 2)) else {
                break;
            };
            let (Some(block), Some(cert)) = (&q.block.block, &q.block.certificate) else {
                break;
            };
            let Some(header) = &block.header else { break };
            match stage_one(chain, set, expect, header, cert) {
                Some(s) => out.push(s),
                None => break,
            }
        }
        out
    }
}
