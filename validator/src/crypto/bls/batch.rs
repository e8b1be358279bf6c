//! Many signatures over distinct messages verified at once (audit, block
//! sync): one randomised multi-pairing, and [`first_invalid`] to find the
//! culprit when it fails.
//!
//! The equation, for signatures σᵢ by keys pkᵢ over messages mᵢ and secret
//! non-zero 64-bit weights rᵢ:
//!
//! e(g1, Σ rᵢ·σᵢ) = Π e(rᵢ·pkᵢ, H(mᵢ))
//!
//! The right side is one hash-to-curve, one 64-bit G1 multiplication and
//! one Miller loop per item, spread over the machine's cores. The left side
//! is one multi-scalar multiplication over the signatures (Pippenger, in
//! blst) and one Miller loop, instead of blst's
//! `verify_multiple_aggregate_signatures`, which multiplies each signature
//! by its weight alone in G2 (a 64-bit G2 multiplication per item, 10–12% of
//! an audit's CPU). Every signature is in G2 (checked when it was decoded:
//! a [`Signature`] is always checked), so their weighted sum is too and the
//! equation means what it does for the signatures one by one, up to the
//! 2⁻⁶⁴ chance that weights unknown to the signer cancel an invalid one.

use super::{BlsError, PublicKey, SIG_DST, Signature, check, imp};
use blst::MultiPoint;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Items from which the per-item pairing work is split over threads.
const PARALLEL_FROM: usize = 16;

/// One item of a batch verification: a key, a message and its signature.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature to check.
    pub sig: &'a Signature,
}

/// Verifies many signatures over distinct messages at once, weighting each by
/// a random scalar so that invalid signatures cannot cancel out.
///
/// The core has no randomness of its own: the caller supplies one non-zero
/// 64-bit scalar per item from a source the adversary cannot predict (the node
/// uses the OS generator; the simulator a seeded one). `Ok` means every
/// signature is valid; on `Err` the caller falls back to per-item checks to
/// find the bad ones.
pub fn batch_verify(items: &[BatchItem<'_>], randomness: &[u64]) -> Result<(), BlsError> {
    if items.is_empty() {
        return Err(BlsError::Empty);
    }
    if randomness.len() != items.len() || randomness.contains(&0) {
        return Err(BlsError::BadEncoding);
    }
    count!(
        multi_pairing_checks += 1,
        pairing_checks += 1,
        miller_loops += items.len() + 1,
        hash_to_curve += items.len(),
    );
    let weights: Vec<[u8; 8]> = randomness.iter().map(|r| r.to_le_bytes()).collect();
    let keys_side = if items.len() < PARALLEL_FROM {
        weighted_keys(items, &weights)?
    } else {
        keys_side_parallel(items, &weights)?
    };
    let sigs: Vec<imp::Signature> = items.iter().map(|i| i.sig.0).collect();
    let sum = sigs.mult(weights.as_flattened(), 64).to_signature();
    let mut gt_sig = blst::blst_fp12::default();
    blst::Pairing::aggregated(&mut gt_sig, <&blst::blst_p2_affine>::from(&sum));
    if keys_side.finalverify(Some(&gt_sig)) {
        Ok(())
    } else {
        Err(BlsError::VerifyFailed)
    }
}

/// Π e(rᵢ·pkᵢ, H(mᵢ)) over `items`, accumulated (not yet exponentiated).
fn weighted_keys<'a>(
    items: &[BatchItem<'_>],
    weights: &[[u8; 8]],
) -> Result<blst::Pairing<'a>, BlsError> {
    let next = AtomicUsize::new(0);
    weighted_keys_from(items, weights, &next)
}

/// The key side of the items this worker takes: each worker takes the next
/// untaken item from the shared counter until none is left, so a worker
/// the scheduler holds back (the cores are shared with other processes)
/// does not hold the others up with a fixed share.
fn weighted_keys_from<'a>(
    items: &[BatchItem<'_>],
    weights: &[[u8; 8]],
    next: &AtomicUsize,
) -> Result<blst::Pairing<'a>, BlsError> {
    debug_assert_eq!(items.len(), weights.len());
    let mut ctx = blst::Pairing::new(true, SIG_DST);
    // `&()` is not a signature: blst takes the key side alone.
    let no_sig: &() = &();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let (Some(item), Some(w)) = (items.get(i), weights.get(i)) else {
            break;
        };
        let pk: &blst::blst_p1_affine = (&item.key.0).into();
        check(ctx.mul_n_aggregate(pk, false, no_sig, false, w, 64, item.msg, &[]))?;
    }
    ctx.commit();
    Ok(ctx)
}

/// [`weighted_keys`] over the machine's cores: the calling thread and one
/// more per further core take items from one counter; the partial products
/// are merged.
fn keys_side_parallel<'a>(
    items: &[BatchItem<'_>],
    weights: &[[u8; 8]],
) -> Result<blst::Pairing<'a>, BlsError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let (mine, theirs) = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| s.spawn(|| weighted_keys_from(items, weights, &next)))
            .collect();
        let mine = weighted_keys_from(items, weights, &next);
        let theirs: Vec<_> = helpers
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(BlsError::VerifyFailed)))
            .collect();
        (mine, theirs)
    });
    let mut acc = mine?;
    for p in theirs {
        check(acc.merge(&p?))?;
    }
    Ok(acc)
}

/// The index of the first item whose signature does not verify, if any:
/// one randomised batch over all of them, then halves (the earlier half
/// first) when it fails, down to single checks, so the answer is the one
/// checking each item alone in order gives (up to the batch's 2^-64
/// soundness error). `randomness` as for [`batch_verify`]; with too few
/// scalars or a zero among them every item is checked alone.
pub fn first_invalid(items: &[BatchItem<'_>], randomness: &[u64]) -> Option<usize> {
    if randomness.len() < items.len() || randomness[..items.len()].contains(&0) {
        return items
            .iter()
            .position(|i| i.key.verify(i.msg, i.sig).is_err());
    }
    bisect(items, &randomness[..items.len()], 0)
}

fn bisect(items: &[BatchItem<'_>], randomness: &[u64], offset: usize) -> Option<usize> {
    match items {
        [] => None,
        [one] => one.key.verify(one.msg, one.sig).is_err().then_some(offset),
        _ if batch_verify(items, randomness).is_ok() => None,
        _ => {
            let mid = items.len() / 2;
            bisect(&items[..mid], &randomness[..mid], offset)
                .or_else(|| bisect(&items[mid..], &randomness[mid..], offset + mid))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::SecretKey;
    use super::*;

    fn key(i: u8) -> SecretKey {
        SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
    }

    #[test]
    fn batch_verify_accepts_good_and_rejects_one_bad() {
        let sks: Vec<SecretKey> = (0..6).map(key).collect();
        let pks: Vec<PublicKey> = sks.iter().map(|s| s.public_key()).collect();
        let msgs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Signature> = sks.iter().zip(&msgs).map(|(s, m)| s.sign(m)).collect();
        let rands: Vec<u64> = (1..=6u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
            .collect();
        let items = |sigs: &[Signature]| -> Vec<(usize, Signature)> {
            sigs.iter().copied().enumerate().collect()
        };
        let build = |v: &Vec<(usize, Signature)>| -> Result<(), BlsError> {
            let items: Vec<BatchItem<'_>> = v
                .iter()
                .map(|(i, s)| BatchItem {
                    key: &pks[*i],
                    msg: &msgs[*i],
                    sig: s,
                })
                .collect();
            batch_verify(&items, &rands)
        };
        assert!(build(&items(&sigs)).is_ok());
        sigs[3] = sks[3].sign(b"other");
        assert!(build(&items(&sigs)).is_err());
        assert_eq!(build(&Vec::new()), Err(BlsError::Empty));
    }

    /// Items signed by keys 0..n over distinct messages, and weights.
    fn signed(n: u8) -> (Vec<PublicKey>, Vec<Vec<u8>>, Vec<Signature>, Vec<u64>) {
        let sks: Vec<SecretKey> = (0..n).map(|i| key(i + 20)).collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![i, 7, i]).collect();
        let sigs = sks.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let weights = (1..=u64::from(n))
            .map(|i| i.wrapping_mul(0xd1b5_4a32_d192_ed03) | 1)
            .collect();
        (
            sks.iter().map(SecretKey::public_key).collect(),
            msgs,
            sigs,
            weights,
        )
    }

    fn items<'a>(
        pks: &'a [PublicKey],
        msgs: &'a [Vec<u8>],
        sigs: &'a [Signature],
    ) -> Vec<BatchItem<'a>> {
        pks.iter()
            .zip(msgs)
            .zip(sigs)
            .map(|((key, msg), sig)| BatchItem { key, msg, sig })
            .collect()
    }

    /// Over the threaded path too: a good batch passes, one bad signature
    /// anywhere fails it, and `first_invalid` names it.
    #[test]
    fn a_large_batch_finds_its_one_bad_signature() {
        let n = (PARALLEL_FROM as u8) * 2 + 3;
        let (pks, msgs, mut sigs, w) = signed(n);
        assert!(batch_verify(&items(&pks, &msgs, &sigs), &w).is_ok());
        assert_eq!(first_invalid(&items(&pks, &msgs, &sigs), &w), None);
        for bad in [0, 17, usize::from(n) - 1] {
            let saved = sigs[bad];
            sigs[bad] = key(99).sign(&msgs[bad]);
            assert!(batch_verify(&items(&pks, &msgs, &sigs), &w).is_err());
            assert_eq!(first_invalid(&items(&pks, &msgs, &sigs), &w), Some(bad));
            sigs[bad] = saved;
        }
    }

    /// Negative control for the weights: two wrong signatures whose errors
    /// cancel ((σa + d) and (σb − d)) pass with unit weights, and fail with
    /// any others, so the weighted sum really is weighted.
    #[test]
    fn errors_that_cancel_pass_only_without_weights() {
        let (pks, msgs, sigs, _) = signed(PARALLEL_FROM as u8 + 2);
        let d = key(77).sign(b"delta");
        let neg_d = {
            let mut bytes = d.to_bytes();
            bytes[0] ^= 0x20; // the sort flag: the negated point
            Signature::from_bytes(&bytes).expect("negated point")
        };
        let mut forged = sigs.clone();
        forged[3] = Signature::aggregate(&[&sigs[3], &d]).expect("sum");
        forged[9] = Signature::aggregate(&[&sigs[9], &neg_d]).expect("sum");
        let ones = vec![1u64; pks.len()];
        assert!(batch_verify(&items(&pks, &msgs, &forged), &ones).is_ok());
        let mut w = ones.clone();
        w[9] = 3;
        assert!(batch_verify(&items(&pks, &msgs, &forged), &w).is_err());
        let few = items(&pks[..10], &msgs[..10], &forged[..10]);
        assert!(batch_verify(&few, &ones[..10]).is_ok());
        assert!(batch_verify(&few, &w[..10]).is_err());
    }

    /// The same verdicts as blst's own randomised batch check.
    #[test]
    fn agrees_with_blsts_batch_check() {
        let (pks, msgs, good_sigs, w) = signed(20);
        let mut bad_sigs = good_sigs.clone();
        bad_sigs.swap(4, 5);
        for len in [1usize, 2, 5, 6, 20] {
            for good in [true, false] {
                let sigs = if good { &good_sigs } else { &bad_sigs };
                let sigs = &sigs[..len];
                let ours = batch_verify(&items(&pks[..len], &msgs[..len], sigs), &w[..len]);
                let msgs: Vec<&[u8]> = msgs[..len].iter().map(Vec::as_slice).collect();
                let keys: Vec<&imp::PublicKey> = pks[..len].iter().map(|k| &k.0).collect();
                let raw: Vec<&imp::Signature> = sigs.iter().map(|s| &s.0).collect();
                let rands: Vec<blst::blst_scalar> = w[..len]
                    .iter()
                    .map(|r| {
                        let mut b = [0u8; 32];
                        b[..8].copy_from_slice(&r.to_le_bytes());
                        blst::blst_scalar { b }
                    })
                    .collect();
                let theirs = imp::Signature::verify_multiple_aggregate_signatures(
                    &msgs, SIG_DST, &keys, false, &raw, false, &rands, 64,
                );
                assert_eq!(
                    ours.is_ok(),
                    theirs == blst::BLST_ERROR::BLST_SUCCESS,
                    "len {len}, good {good}"
                );
                assert_eq!(ours.is_ok(), good || len <= 4, "len {len}, good {good}");
            }
        }
        // One item whose signature is another message's.
        let other = [good_sigs[1]];
        assert!(batch_verify(&items(&pks[..1], &msgs[..1], &other), &w[..1]).is_err());
    }
}
