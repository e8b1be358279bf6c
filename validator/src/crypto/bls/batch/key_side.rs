//! The key side of the batch equation, Π e(rᵢ·pkᵢ, H(mᵢ)), with one Miller
//! loop per distinct key instead of one per item.
//!
//! For the items signed by one key pk, bilinearity gives
//!
//! Π e(rᵢ·pk, H(mᵢ)) = e(pk, Σ rᵢ·H(mᵢ))
//!
//! so a key met k times costs k hashes to G2, one multi-scalar
//! multiplication over their k points (blst's Pippenger) and one Miller
//! loop per chunk of at most [`CHUNK_MAX`] of them, where the item-by-item
//! form costs k hashes, k 64-bit G1 multiplications and k Miller loops. A chain's certificates are
//! signed by a few recurring signer sets (their summed keys are equal) and
//! its VRF proofs by a few recurring proposers, so an audit or a sync batch
//! of hundreds of heights needs a handful of Miller loops. A key met fewer
//! than [`SHARED_FROM`] times keeps the item-by-item form: there a 64-bit G2
//! multiplication per item costs more than the loop it saves.
//!
//! Both forms compute the same element of GT, so the verdict, and the
//! soundness argument of the module above, are unchanged: every H(mᵢ) is in
//! G2 (hash-to-curve clears the cofactor) and every key is a checked point
//! of G1 (test `grouped_and_item_by_item_agree`).

use super::super::{BlsError, PublicKey, SIG_DST, check};
use super::{BatchItem, uncleared};
use blst::{blst_p1_affine, blst_p2, blst_p2_affine};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Items from which the work is split over threads.
pub(super) const PARALLEL_FROM: usize = 16;

/// Items of one key from which they share Miller loops (measured with
/// criterion `bls/batch_verify_64_by_keys`: pairs cost a fifth more than
/// item by item, groups of 4 a few percent less, of 8 a sixth less).
pub(super) const SHARED_FROM: usize = 4;

/// The most items of one key under one Miller loop: a larger group is cut
/// into near-equal chunks, so that the threads share even one key's work
/// (a loop per 64 items costs under 2% more than one per group).
const CHUNK_MAX: usize = 64;

/// Π e(rᵢ·pkᵢ, H(mᵢ)) over `items`, accumulated (not yet exponentiated);
/// `weights` are the rᵢ, little-endian.
pub(super) fn product<'a>(
    items: &[BatchItem<'_>],
    weights: &[[u8; 8]],
) -> Result<blst::Pairing<'a>, BlsError> {
    debug_assert_eq!(items.len(), weights.len());
    let threads = if items.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let work = Work {
        items,
        weights,
        tasks: tasks(items, threads),
        next: AtomicUsize::new(0),
    };
    count!(miller_loops += work.tasks.len());
    if threads == 1 {
        return work.take();
    }
    let (mine, theirs) = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(|| work.take())).collect();
        let mine = work.take();
        let theirs: Vec<_> = helpers
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(BlsError::VerifyFailed)))
            .collect();
        (mine, theirs)
    });
    let mut acc = mine?;
    for part in theirs {
        check(acc.merge(&part?))?;
    }
    Ok(acc)
}

/// The item indices of one Miller loop: one item alone, or a chunk of a
/// key's items.
type Task = Vec<usize>;

/// The Miller loops of a batch: each key met at least [`SHARED_FROM`]
/// times, in chunks of at most [`CHUNK_MAX`] (and at least two chunks
/// for two threads where the key has items enough), then every other
/// item alone, in the order keys first appear.
fn tasks(items: &[BatchItem<'_>], threads: usize) -> Vec<Task> {
    let mut by_key: HashMap<&PublicKey, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let g = *by_key.entry(item.key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let (shared, alone): (Vec<_>, Vec<_>) =
        groups.into_iter().partition(|g| g.len() >= SHARED_FROM);
    let mut tasks = Vec::new();
    for group in shared {
        let chunks = group
            .len()
            .div_ceil(CHUNK_MAX)
            .max(threads.min(group.len() / SHARED_FROM))
            .max(1);
        let len = group.len().div_ceil(chunks);
        tasks.extend(group.chunks(len).map(<[usize]>::to_vec));
    }
    tasks.extend(alone.into_iter().flatten().map(|i| vec![i]));
    debug_assert_eq!(tasks.iter().map(Vec::len).sum::<usize>(), items.len());
    tasks
}

/// The Miller loops of a batch, taken by one or more workers.
struct Work<'i, 'w> {
    items: &'i [BatchItem<'i>],
    weights: &'w [[u8; 8]],
    tasks: Vec<Task>,
    next: AtomicUsize,
}

impl Work<'_, '_> {
    /// Takes the next untaken task from the shared counter until none is
    /// left, so a worker the scheduler holds back (the cores are shared
    /// with other processes) does not hold the others up with a fixed
    /// share; returns the product of the loops this worker ran.
    fn take<'a>(&self) -> Result<blst::Pairing<'a>, BlsError> {
        let mut ctx = blst::Pairing::new(true, SIG_DST);
        loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(task) = self.tasks.get(t) else {
                break;
            };
            match task.as_slice() {
                [i] => self.add_alone(&mut ctx, *i)?,
                chunk => self.add_chunk(&mut ctx, chunk),
            }
        }
        ctx.commit();
        Ok(ctx)
    }

    /// Adds e(rᵢ·pkᵢ, H(mᵢ)) for one item: a 64-bit G1 multiplication.
    fn add_alone(&self, ctx: &mut blst::Pairing, i: usize) -> Result<(), BlsError> {
        count!(hash_to_curve += 1);
        let item = &self.items[i];
        let pk: &blst_p1_affine = (&item.key.0).into();
        // `&()` is not a signature: blst takes the key side alone.
        let no_sig: &() = &();
        check(ctx.mul_n_aggregate(
            pk,
            false,
            no_sig,
            false,
            &self.weights[i],
            64,
            item.msg,
            &[],
        ))
    }

    /// Adds e(pk, Σ rᵢ·H(mᵢ)) for a chunk of one key's items.
    fn add_chunk(&self, ctx: &mut blst::Pairing, chunk: &[usize]) {
        let key = self.items[chunk[0]].key;
        debug_assert!(chunk.iter().all(|&i| self.items[i].key == key));
        // Σ rᵢ·H(mᵢ) = h_eff·Σ rᵢ·Qᵢ: one cofactor clearing for the chunk
        // (`uncleared.rs`).
        let hashes: Vec<blst_p2> = chunk
            .iter()
            .map(|&i| uncleared::hash_to_e2(self.items[i].msg))
            .collect();
        let scalars: Vec<u8> = chunk.iter().flat_map(|&i| self.weights[i]).collect();
        let sum = uncleared::clear_cofactor(&weighted_sum(&hashes, &scalars));
        let mut affine = blst_p2_affine::default();
        // SAFETY: blst reads the valid point and writes the exclusive affine.
        unsafe { blst::blst_p2_to_affine(&mut affine, &sum) };
        // SAFETY: blst only reads the valid affine point.
        if unsafe { blst::blst_p2_affine_is_inf(&affine) } {
            // e(pk, O) = 1: nothing to multiply in (weights unknown to the
            // signer make this a 2⁻⁶⁴ event; blst's loop wants a finite point).
            return;
        }
        ctx.raw_aggregate(&affine, (&key.0).into());
    }
}

/// Σ sᵢ·Pᵢ for 64-bit little-endian scalars, by blst's Pippenger on the
/// calling thread (the workers are already one per core; blst's
/// `MultiPoint::mult` would hand fewer than 32 points to its own pool one
/// multiplication each, which costs more than the loops a chunk saves).
fn weighted_sum(points: &[blst_p2], scalars: &[u8]) -> blst_p2 {
    let n = points.len();
    assert!(
        n > 0 && scalars.len() == 8 * n,
        "one 8-byte scalar per point"
    );
    let mut affine = vec![blst_p2_affine::default(); n];
    let mut sum = blst_p2::default();
    // SAFETY: blst takes each array as a pointer to its first element
    // followed by a null (contiguous input); `points`, `affine` and
    // `scalars` hold n elements (8 bytes each for the scalars, nbits = 64),
    // and the scratch is the size blst asks for n points, in limbs.
    unsafe {
        let p = [points.as_ptr(), std::ptr::null()];
        blst::blst_p2s_to_affine(affine.as_mut_ptr(), p.as_ptr(), n);
        let a = [affine.as_ptr(), std::ptr::null()];
        let s = [scalars.as_ptr(), std::ptr::null()];
        let limbs = blst::blst_p2s_mult_pippenger_scratch_sizeof(n)
            .div_ceil(std::mem::size_of::<blst::limb_t>());
        let mut scratch: Vec<blst::limb_t> = vec![0; limbs];
        blst::blst_p2s_mult_pippenger(
            &mut sum,
            a.as_ptr(),
            n,
            s.as_ptr(),
            64,
            scratch.as_mut_ptr(),
        );
    }
    sum
}
