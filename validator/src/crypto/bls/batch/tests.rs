//! The batch check against blst's own, with bad signatures anywhere in it,
//! and with errors that cancel only without weights.

use super::super::SecretKey;
use super::*;
use crate::crypto::bls::SIG_DST;

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
    signed_by(n, |i| i)
}

/// Items 0..n over distinct messages, item i signed by key `key_of(i)`,
/// and weights.
fn signed_by(
    n: u8,
    key_of: impl Fn(u8) -> u8,
) -> (Vec<PublicKey>, Vec<Vec<u8>>, Vec<Signature>, Vec<u64>) {
    let sks: Vec<SecretKey> = (0..n).map(|i| key(key_of(i) + 20)).collect();
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

/// blst's own randomised batch check of the same items and weights.
fn blsts_verdict(items: &[BatchItem<'_>], w: &[u64]) -> bool {
    let msgs: Vec<&[u8]> = items.iter().map(|i| i.msg).collect();
    let keys: Vec<&imp::PublicKey> = items.iter().map(|i| &i.key.0).collect();
    let raw: Vec<&imp::Signature> = items.iter().map(|i| &i.sig.0).collect();
    let rands: Vec<blst::blst_scalar> = w
        .iter()
        .map(|r| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&r.to_le_bytes());
            blst::blst_scalar { b }
        })
        .collect();
    imp::Signature::verify_multiple_aggregate_signatures(
        &msgs, SIG_DST, &keys, false, &raw, false, &rands, 64,
    ) == blst::BLST_ERROR::BLST_SUCCESS
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
    let n = (key_side::PARALLEL_FROM as u8) * 2 + 3;
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

/// `sigs` with items `a` and `b` forged so that their errors cancel:
/// σa + d and σb − d for a point d of G2.
fn with_cancelling_errors(sigs: &[Signature], a: usize, b: usize) -> Vec<Signature> {
    let d = key(77).sign(b"delta");
    let neg_d = {
        let mut bytes = d.to_bytes();
        bytes[0] ^= 0x20; // the sort flag: the negated point
        Signature::from_bytes(&bytes).expect("negated point")
    };
    let mut forged = sigs.to_vec();
    forged[a] = Signature::aggregate(&[&sigs[a], &d]).expect("sum");
    forged[b] = Signature::aggregate(&[&sigs[b], &neg_d]).expect("sum");
    forged
}

/// Negative control for the weights: two wrong signatures whose errors
/// cancel ((σa + d) and (σb − d)) pass with unit weights, and fail with
/// any others, so the weighted sum really is weighted.
#[test]
fn errors_that_cancel_pass_only_without_weights() {
    let (pks, msgs, sigs, _) = signed(key_side::PARALLEL_FROM as u8 + 2);
    let forged = with_cancelling_errors(&sigs, 3, 9);
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
            let batch = items(&pks[..len], &msgs[..len], &sigs[..len]);
            let ours = batch_verify(&batch, &w[..len]);
            assert_eq!(ours.is_ok(), blsts_verdict(&batch, &w[..len]), "len {len}");
            assert_eq!(ours.is_ok(), good || len <= 4, "len {len}, good {good}");
        }
    }
    // One item whose signature is another message's.
    let other = [good_sigs[1]];
    assert!(batch_verify(&items(&pks[..1], &msgs[..1], &other), &w[..1]).is_err());
}

/// Keys that recur share one Miller loop ([`key_side`]); the verdicts stay
/// blst's, whether the bad signature sits in a shared key's group or with
/// a key met once, and `first_invalid` still names the item.
#[test]
fn grouped_and_item_by_item_agree() {
    // Items 0..35 by three keys (groups of 12, 12 and 11); 35..40 by keys
    // met once each.
    let key_of = |i: u8| if i < 35 { i % 3 } else { i };
    let (pks, msgs, sigs, w) = signed_by(40, key_of);
    let batch = items(&pks, &msgs, &sigs);
    assert!(batch_verify(&batch, &w).is_ok());
    assert!(blsts_verdict(&batch, &w));
    let other = key(99);
    for bad in [0usize, 7, 34, 37, 39] {
        for forged in [other.sign(&msgs[bad]), sigs[(bad + 3) % 40]] {
            let mut sigs = sigs.clone();
            sigs[bad] = forged;
            let batch = items(&pks, &msgs, &sigs);
            assert!(batch_verify(&batch, &w).is_err(), "item {bad}");
            assert!(!blsts_verdict(&batch, &w), "item {bad}");
            assert_eq!(first_invalid(&batch, &w), Some(bad));
        }
    }
    // A message signed by another key of a group, claimed by this one.
    let mut keys = pks.clone();
    keys[4] = pks[5];
    assert!(batch_verify(&items(&keys, &msgs, &sigs), &w).is_err());
    assert_eq!(first_invalid(&items(&keys, &msgs, &sigs), &w), Some(4));
}

/// Negative control for the grouped sum: inside one key's group, two wrong
/// signatures whose errors cancel pass with unit weights and fail with
/// others, so each hashed message is weighted by its own item's scalar.
#[test]
fn errors_that_cancel_within_one_key_pass_only_without_weights() {
    let n = key_side::SHARED_FROM as u8 * 2;
    let (pks, msgs, sigs, w) = signed_by(n, |_| 0);
    let forged = with_cancelling_errors(&sigs, 1, 6);
    let ones = vec![1u64; pks.len()];
    assert!(batch_verify(&items(&pks, &msgs, &forged), &ones).is_ok());
    assert!(batch_verify(&items(&pks, &msgs, &forged), &w).is_err());
    assert!(batch_verify(&items(&pks, &msgs, &sigs), &w).is_ok());
}
