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
//! The scalars: the engine has no randomness of its own; they are derived
//! from the host's secret `entropy` and a digest of every item of the batch
//! (Fiat–Shamir with a secret key, as `bls::verify_two` does): fixed only
//! once the items are, and unpredictable to whoever made them, so a batch
//! holding an invalid signature passes with probability about 2^-64.

use super::Engine;
use super::sync::{Checked, block_height};
use crate::block::header_hash;
use crate::certificate::CommitCertificate;
use crate::crypto::bls::{self, BatchItem};
use crate::crypto::{Hash, PublicKey, Signature, sha3_256_parts};
use crate::types::Height;

/// Certificates verified in one batch, at most (a sync response holds up to
/// `SYNC_BATCH` blocks; a batch this size is about 0.1 s of pairings).
pub const SYNC_CHECK_BATCH: usize = 256;

/// One certificate staged for the batch.
struct Staged {
    index: usize,
    height: Height,
    cert: CommitCertificate,
    set_hash: Hash,
    key: PublicKey,
    msg: Vec<u8>,
}

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
        let staged = self.stage_queued();
        self.sync.batched_through = staged.last().map_or(front, |s| s.height);
        if staged.len() < 2 {
            // A lone certificate is verified by the core as before.
            return;
        }
        let items: Vec<BatchItem<'_>> = staged
            .iter()
            .map(|s| BatchItem {
                key: &s.key,
                msg: &s.msg,
                sig: &s.cert.aggregate_signature,
            })
            .collect();
        let scalars = self.batch_scalars(&staged);
        let good = bls::first_invalid(&items, &scalars).unwrap_or(staged.len());
        let mut verified = staged.into_iter().take(good).peekable();
        for (i, q) in self.sync.queued_mut().enumerate() {
            let Some(s) = verified.next_if(|s| s.index == i) else {
                continue;
            };
            q.checked = Some(Checked {
                cert: s.cert,
                set_hash: s.set_hash,
            });
        }
    }

    /// The cheap checks of the queued run, in order, stopping at the first
    /// block that fails one (it is left to the normal path).
    fn stage_queued(&mut self) -> Vec<Staged> {
        let tip = self.tip_height();
        let (ledger, chain) = (&self.ledger, &self.chain);
        let mut out = Vec::new();
        let mut peer = None;
        let queued = self.sync.queued_mut().enumerate().take(SYNC_CHECK_BATCH);
        for (expect, (index, q)) in (tip + 1..).zip(queued) {
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
            let set_hash = set.hash();
            if header.validators_hash.as_slice() != set_hash.as_slice() {
                break;
            }
            let Ok(cert) = CommitCertificate::from_proto(cert) else {
                break;
            };
            if cert.matches(expect, &header_hash(header)).is_err() {
                break;
            }
            let Ok((key, msg)) = cert.stage(chain, set) else {
                break;
            };
            out.push(Staged {
                index,
                height: expect,
                cert,
                set_hash,
                key,
                msg,
            });
        }
        out
    }

    /// One non-zero scalar per item from the host's secret entropy and a
    /// digest of the whole batch (see the module docs).
    fn batch_scalars(&self, staged: &[Staged]) -> Vec<u64> {
        let mut digest = sha3_256_parts(&[b"agora-engine-sync-batch", &self.entropy[..]]);
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
}
