//! Pairing checks on the calling thread with the signature side inside the
//! same Miller loop as the key side, and several signatures over different
//! messages checked at once with weights (a proposal's signature, its
//! block's VRF proof and the certificate the block carries).
//!
//! The equation, for signatures σᵢ by keys pkᵢ over messages mᵢ and
//! non-zero 64-bit weights wᵢ:
//!
//! Π e(wᵢ·pkᵢ, H(mᵢ)) · e(g1, −Σ wᵢ·σᵢ) = 1
//!
//! All pairs go through one multi-Miller loop (blst shares the loop's Fp12
//! squarings between the pairs it holds, up to eight) and one final
//! exponentiation. blst's own `finalverify` runs the signature's Miller
//! loop alone, after the others; negating the sum and handing it over as
//! one more pair gives the same product with fewer squarings.
//!
//! Items under one key share its pair: Π e(wᵢ·pk, H(mᵢ)) = e(pk, Σ wᵢ·H(mᵢ))
//! by bilinearity, so a proposal's signature and its block's VRF proof (one
//! proposer, one key) cost one Miller-loop pair, with a 64-bit
//! multiplication in G2 where there was one in G1. Same equation, same
//! verdict (test `items_under_one_key_share_a_pair_and_keep_the_verdict`).
//!
//! A weight of 1 skips the scalar multiplications. With more than one item
//! the weights must be unknown to whoever chose the signatures (see
//! `consensus::state::proposal` for how the core derives them), or errors
//! in two signatures could cancel (test
//! `weighted_errors_that_cancel_pass_only_with_unit_weights`).

use super::{BlsError, HashedMessage, PublicKey, SIG_DST, Signature, check};
use blst::{blst_fp2, blst_p1, blst_p1_affine, blst_p2, blst_p2_affine};

/// One signature of a weighted check.
#[derive(Debug, Clone, Copy)]
pub struct WeightedItem<'a> {
    /// The signer's key (or the sum of the signers' keys, for an aggregate
    /// over one message).
    pub key: &'a PublicKey,
    /// The signed message.
    pub msg: &'a [u8],
    /// `msg` already hashed to G2, when the caller has it.
    pub hashed: Option<&'a HashedMessage>,
    /// The signature to check.
    pub sig: &'a Signature,
    /// The item's weight: non-zero.
    pub weight: u64,
}

/// Whether every item's signature is valid: one multi-pairing (module docs).
/// `Err(BadEncoding)` for a zero weight, `Err(Empty)` for no items, and
/// `Err(VerifyFailed)` when the product is not one; a caller that needs to
/// know which item is bad checks them one by one.
pub fn verify_weighted(items: &[WeightedItem<'_>]) -> Result<(), BlsError> {
    if items.is_empty() {
        return Err(BlsError::Empty);
    }
    if items.iter().any(|i| i.weight == 0) {
        return Err(BlsError::BadEncoding);
    }
    count!(
        multi_pairing_checks += usize::from(items.len() > 1),
        pairing_checks += 1,
        miller_loops += distinct_keys(items) + 1,
        hash_to_curve += items.iter().filter(|i| i.hashed.is_none()).count(),
    );
    product_is_one(items)
}

/// How many different keys `items` name: the pairs of its Miller loop,
/// besides the signatures' one.
#[cfg(feature = "crypto-counters")]
fn distinct_keys(items: &[WeightedItem<'_>]) -> usize {
    (0..items.len())
        .filter(|&i| first_of_its_key(items, i))
        .count()
}

/// Whether no item before `i` names `items[i]`'s key: the item whose pair
/// the later ones of that key join.
fn first_of_its_key(items: &[WeightedItem<'_>], i: usize) -> bool {
    items[..i].iter().all(|o| o.key != items[i].key)
}

/// The equation of the module docs for `items` (not empty, no zero
/// weight), uncounted: [`verify_weighted`] and [`check_one`] count their
/// own operations.
fn product_is_one(items: &[WeightedItem<'_>]) -> Result<(), BlsError> {
    debug_assert!(!items.is_empty() && items.iter().all(|i| i.weight != 0));
    let mut ctx = blst::Pairing::new(true, SIG_DST);
    for (i, item) in items.iter().enumerate() {
        if !first_of_its_key(items, i) {
            continue; // in the pair of the first item under its key
        }
        let mut same = items[i + 1..]
            .iter()
            .filter(|o| o.key == item.key)
            .peekable();
        if same.peek().is_none() {
            add_key_side(&mut ctx, item)?;
        } else {
            add_shared_key_side(&mut ctx, std::iter::once(item).chain(same));
        }
    }
    let sum = match items {
        // One signature of weight 1 is its own sum: no point arithmetic.
        [one] if one.weight == 1 => *<&blst_p2_affine>::from(&one.sig.0),
        _ => {
            let mut sum = blst_p2::default();
            for item in items {
                add_weighted(&mut sum, item.sig, item.weight);
            }
            to_affine(&sum)
        }
    };
    product_with_signatures_is_one(ctx, sum)
}

/// Adds e(w·pk, H(m)) to the context.
fn add_key_side(ctx: &mut blst::Pairing, item: &WeightedItem<'_>) -> Result<(), BlsError> {
    let pk: &blst_p1_affine = (&item.key.0).into();
    // `&()` is not a signature: blst takes the key side alone.
    let no_sig: &() = &();
    match (item.hashed, item.weight) {
        (Some(h), 1) => {
            debug_assert_eq!(h.message(), item.msg);
            ctx.raw_aggregate(h.affine(), pk);
        }
        (Some(h), w) => {
            debug_assert_eq!(h.message(), item.msg);
            ctx.raw_aggregate(h.affine(), &times_g1(pk, w));
        }
        (None, 1) => check(ctx.aggregate(pk, false, no_sig, false, item.msg, &[]))?,
        (None, w) => {
            let scalar = w.to_le_bytes();
            check(ctx.mul_n_aggregate(pk, false, no_sig, false, &scalar, 64, item.msg, &[]))?;
        }
    }
    Ok(())
}

/// Adds e(pk, Σ wᵢ·H(mᵢ)) for items that all name the key pk (module docs).
fn add_shared_key_side<'a, 'b: 'a>(
    ctx: &mut blst::Pairing,
    mut items: impl Iterator<Item = &'a WeightedItem<'b>>,
) {
    let Some(first) = items.next() else { return };
    let mut sum = blst_p2::default();
    for item in std::iter::once(first).chain(items) {
        debug_assert!(item.key == first.key);
        let point = match item.hashed {
            Some(h) => {
                debug_assert_eq!(h.message(), item.msg);
                *h.point()
            }
            // Counted by `verify_weighted` with the item.
            None => super::hashed::hash_to_g2_uncounted(item.msg),
        };
        add_weighted_point(&mut sum, point, item.weight);
    }
    // SAFETY: a valid point is read; blst reports the identity.
    if unsafe { blst::blst_p2_is_inf(&sum) } {
        // e(pk, O) = 1: the pair contributes nothing (and blst would skip
        // an identity point the same way).
        return;
    }
    let pk: &blst_p1_affine = (&first.key.0).into();
    ctx.raw_aggregate(&to_affine(&sum), pk);
}

/// `sum += w·point` in G2.
fn add_weighted_point(sum: &mut blst_p2, point: blst_p2, w: u64) {
    let scalar = w.to_le_bytes();
    let mut term = point;
    // SAFETY: every pointer is to a valid, initialised value of the type
    // blst expects; `scalar` holds the 64 bits read; `term` and `sum` are
    // exclusive out-parameters (blst allows `out` to alias an input).
    unsafe {
        if w != 1 {
            blst::blst_p2_mult(&mut term, &point, scalar.as_ptr(), 64);
        }
        let acc = *sum;
        blst::blst_p2_add_or_double(sum, &acc, &term);
    }
}

/// `sum += w·sig`.
fn add_weighted(sum: &mut blst_p2, sig: &Signature, w: u64) {
    let affine: &blst_p2_affine = (&sig.0).into();
    let mut point = blst_p2::default();
    // SAFETY: blst reads the valid affine point and writes the exclusive
    // out-parameter.
    unsafe { blst::blst_p2_from_affine(&mut point, affine) };
    add_weighted_point(sum, point, w);
}

/// `w·pk` in affine form.
fn times_g1(pk: &blst_p1_affine, w: u64) -> blst_p1_affine {
    let scalar = w.to_le_bytes();
    let mut point = blst_p1::default();
    let mut out = blst_p1_affine::default();
    // SAFETY: as in `add_weighted`; blst reads 64 bits of `scalar`.
    unsafe {
        blst::blst_p1_from_affine(&mut point, pk);
        let p = point;
        blst::blst_p1_mult(&mut point, &p, scalar.as_ptr(), 64);
        blst::blst_p1_to_affine(&mut out, &point);
    }
    out
}

/// `p` in affine form (the identity as all zeros).
fn to_affine(p: &blst_p2) -> blst_p2_affine {
    let mut out = blst_p2_affine::default();
    // SAFETY: `p` is a valid point and `out` an exclusive out-parameter.
    unsafe { blst::blst_p2_to_affine(&mut out, p) };
    out
}

/// Completes a check whose key side is in `ctx`: adds e(g1, −sum) as one
/// more pair of the same Miller loop, then one final exponentiation.
fn product_with_signatures_is_one(
    mut ctx: blst::Pairing,
    mut sum: blst_p2_affine,
) -> Result<(), BlsError> {
    // The identity (a sum of signatures that cancels) is not a valid
    // signature of any non-zero key; blst would skip the pair, so refuse
    // it here rather than compare without it.
    if sum == blst_p2_affine::default() {
        return Err(BlsError::VerifyFailed);
    }
    let mut y = blst_fp2::default();
    // SAFETY: valid, initialised values; `y` is an exclusive out-parameter,
    // and the generator is blst's static constant.
    let g1 = unsafe {
        blst::blst_fp2_cneg(&mut y, &sum.y, true);
        &*blst::blst_p1_affine_generator()
    };
    sum.y = y;
    ctx.raw_aggregate(&sum, g1);
    ctx.commit();
    if ctx.finalverify(None) {
        Ok(())
    } else {
        Err(BlsError::VerifyFailed)
    }
}

/// e(key, H) = e(g1, sig) on the calling thread: one item of weight 1.
pub(super) fn check_one(
    key: &PublicKey,
    msg: &[u8],
    hashed: Option<&HashedMessage>,
    sig: &Signature,
) -> Result<(), BlsError> {
    product_is_one(&[WeightedItem {
        key,
        msg,
        hashed,
        sig,
        weight: 1,
    }])
}

#[cfg(test)]
mod tests {
    use super::super::SecretKey;
    use super::*;

    fn key(i: u8) -> SecretKey {
        SecretKey::from_seed(&[i + 40; 32]).expect("32-byte seed")
    }

    /// Three signers, their messages and signatures, the third an aggregate
    /// of two keys over one message (as a certificate is).
    struct Three {
        keys: Vec<PublicKey>,
        msgs: Vec<Vec<u8>>,
        sigs: Vec<Signature>,
        hashed: HashedMessage,
    }

    fn three() -> Three {
        let sks: Vec<SecretKey> = (0..4).map(key).collect();
        let msgs = vec![
            b"proposal".to_vec(),
            b"vrf input".to_vec(),
            b"precommit".to_vec(),
        ];
        let agg_key = PublicKey::aggregate(&[&sks[2].public_key(), &sks[3].public_key()]);
        let agg_sig = Signature::aggregate(&[&sks[2].sign(&msgs[2]), &sks[3].sign(&msgs[2])]);
        Three {
            keys: vec![
                sks[0].public_key(),
                sks[1].public_key(),
                agg_key.expect("two keys"),
            ],
            sigs: vec![
                sks[0].sign(&msgs[0]),
                sks[1].sign(&msgs[1]),
                agg_sig.expect("two signatures"),
            ],
            hashed: HashedMessage::new(&msgs[2]),
            msgs,
        }
    }

    impl Three {
        fn items(&self, weights: [u64; 3], hash_third: bool) -> Vec<WeightedItem<'_>> {
            (0..3)
                .map(|i| WeightedItem {
                    key: &self.keys[i],
                    msg: &self.msgs[i],
                    hashed: (i == 2 && hash_third).then_some(&self.hashed),
                    sig: &self.sigs[i],
                    weight: weights[i],
                })
                .collect()
        }
    }

    /// −σ: the same compressed x with the sort flag flipped.
    fn negated(sig: &Signature) -> Signature {
        let mut bytes = sig.to_bytes();
        bytes[0] ^= 0x20;
        Signature::from_bytes(&bytes).expect("negated point")
    }

    const WEIGHTS: [u64; 3] = [1, 0x9e37_79b9_7f4a_7c15, 0xd1b5_4a32_d192_ed03];

    /// Good signatures pass with and without the kept point and with any
    /// weights; each one made bad fails the check, on either path.
    #[test]
    fn three_pass_together_and_each_bad_one_fails_them() {
        let mut t = three();
        for hashed in [false, true] {
            assert_eq!(verify_weighted(&t.items(WEIGHTS, hashed)), Ok(()));
            assert_eq!(verify_weighted(&t.items([1, 1, 1], hashed)), Ok(()));
            assert_eq!(verify_weighted(&t.items([5, 2, u64::MAX], hashed)), Ok(()));
        }
        let other = key(9).sign(b"other");
        for bad in 0..3 {
            let saved = t.sigs[bad];
            t.sigs[bad] = other;
            for hashed in [false, true] {
                assert_eq!(
                    verify_weighted(&t.items(WEIGHTS, hashed)),
                    Err(BlsError::VerifyFailed),
                    "item {bad} bad, hashed {hashed}"
                );
            }
            t.sigs[bad] = saved;
        }
        // A message that is not the one signed, with the point of it.
        t.msgs[2] = b"precommiT".to_vec();
        t.hashed = HashedMessage::new(&t.msgs[2]);
        assert!(verify_weighted(&t.items(WEIGHTS, true)).is_err());
    }

    /// Negative control for the weights: errors that cancel between two
    /// signatures ((σa + d) and (σb − d)) pass with unit weights, so the
    /// check is only as sound as its weights are unknown to the signer.
    #[test]
    fn weighted_errors_that_cancel_pass_only_with_unit_weights() {
        let mut t = three();
        let d = key(7).sign(b"delta");
        let neg_d = negated(&d);
        t.sigs[1] = Signature::aggregate(&[&t.sigs[1], &d]).expect("sum");
        t.sigs[2] = Signature::aggregate(&[&t.sigs[2], &neg_d]).expect("sum");
        for hashed in [false, true] {
            assert_eq!(verify_weighted(&t.items([1, 1, 1], hashed)), Ok(()));
            assert!(verify_weighted(&t.items(WEIGHTS, hashed)).is_err());
        }
    }

    /// `three()` with the first two items under one key (a proposal and
    /// its VRF proof), the second one's message point held as `hashed`
    /// when asked.
    fn two_under_one_key() -> (Three, HashedMessage) {
        let mut t = three();
        let sk = key(0);
        t.keys[1] = t.keys[0];
        t.sigs[1] = sk.sign(&t.msgs[1]);
        let second = HashedMessage::new(&t.msgs[1]);
        (t, second)
    }

    /// Items under one key share a pair (Σ wᵢ·H(mᵢ) against the key): good
    /// signatures pass whichever messages come hashed, each bad one fails,
    /// and errors that cancel between the two pass only with unit weights
    /// (the merged pair keeps the weights' meaning).
    #[test]
    fn items_under_one_key_share_a_pair_and_keep_the_verdict() {
        let (mut t, second) = two_under_one_key();
        let with_second = |t: &Three, w: [u64; 3]| {
            let mut items = t.items(w, true);
            items[1].hashed = Some(&second);
            verify_weighted(&items)
        };
        for hashed in [false, true] {
            assert_eq!(verify_weighted(&t.items(WEIGHTS, hashed)), Ok(()));
            assert_eq!(verify_weighted(&t.items([1, 1, 1], hashed)), Ok(()));
        }
        assert_eq!(with_second(&t, WEIGHTS), Ok(()));
        // The same key's valid signature of the other message in either
        // place, and a stranger's signature: all refused.
        let swapped = [t.sigs[1], t.sigs[0]];
        let other = key(9).sign(b"other");
        for (bad, sig) in [(0, swapped[0]), (1, swapped[1]), (1, other), (0, other)] {
            let saved = t.sigs[bad];
            t.sigs[bad] = sig;
            for hashed in [false, true] {
                assert_eq!(
                    verify_weighted(&t.items(WEIGHTS, hashed)),
                    Err(BlsError::VerifyFailed),
                    "item {bad} bad, hashed {hashed}"
                );
            }
            assert_eq!(with_second(&t, WEIGHTS), Err(BlsError::VerifyFailed));
            t.sigs[bad] = saved;
        }
        let d = key(7).sign(b"delta");
        let neg_d = negated(&d);
        t.sigs[0] = Signature::aggregate(&[&t.sigs[0], &d]).expect("sum");
        t.sigs[1] = Signature::aggregate(&[&t.sigs[1], &neg_d]).expect("sum");
        assert_eq!(verify_weighted(&t.items([1, 1, 1], false)), Ok(()));
        assert!(verify_weighted(&t.items(WEIGHTS, false)).is_err());
        assert!(with_second(&t, WEIGHTS).is_err());
    }

    /// One item of weight 1 is the plain check, from bytes or the point.
    #[test]
    fn one_item_is_the_plain_check() {
        let t = three();
        for i in 0..3 {
            let plain = check_one(&t.keys[i], &t.msgs[i], None, &t.sigs[i]);
            assert_eq!(plain, Ok(()));
            let wrong = check_one(&t.keys[i], &t.msgs[(i + 1) % 3], None, &t.sigs[i]);
            assert_eq!(wrong, Err(BlsError::VerifyFailed));
        }
        assert_eq!(
            check_one(&t.keys[2], &t.msgs[2], Some(&t.hashed), &t.sigs[2]),
            Ok(())
        );
        assert!(check_one(&t.keys[1], &t.msgs[2], Some(&t.hashed), &t.sigs[2]).is_err());
    }

    /// No items, a zero weight, and signatures that sum to the identity are
    /// refused without a pairing.
    #[test]
    fn degenerate_inputs_are_refused() {
        let t = three();
        assert_eq!(verify_weighted(&[]), Err(BlsError::Empty));
        assert_eq!(
            verify_weighted(&t.items([1, 0, 3], false)),
            Err(BlsError::BadEncoding)
        );
        let neg = negated(&t.sigs[0]);
        let cancel = [
            WeightedItem {
                key: &t.keys[0],
                msg: &t.msgs[0],
                hashed: None,
                sig: &t.sigs[0],
                weight: 1,
            },
            WeightedItem {
                key: &t.keys[0],
                msg: &t.msgs[0],
                hashed: None,
                sig: &neg,
                weight: 1,
            },
        ];
        assert_eq!(verify_weighted(&cancel), Err(BlsError::VerifyFailed));
    }
}
