use super::*;

fn sk(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[i; 32])
}

/// ℓ, the order of the prime subgroup, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn le_add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = a[i] as u16 + b[i] as u16 + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

fn hx(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Encodings of the eight small-order points (torsion subgroup E[8])
/// plus non-canonical encodings (y ≥ p) of some of them. Computed
/// from the curve equation: y = 1 (identity), y = −1 (order 2), y = 0
/// (order 4, both signs of x) and the two y of the order-8 points.
fn small_order_encodings() -> Vec<([u8; 32], &'static str)> {
    let mut p_minus_1 = [0xffu8; 32];
    p_minus_1[0] = 0xec;
    p_minus_1[31] = 0x7f;
    let mut p = p_minus_1;
    p[0] = 0xed; // y = p ≡ 0, non-canonical
    let mut p_plus_1 = p_minus_1;
    p_plus_1[0] = 0xee; // y = p + 1 ≡ 1, non-canonical identity
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut neg_zero_identity = identity;
    neg_zero_identity[31] = 0x80; // x = 0 with the sign bit set
    let zero = [0u8; 32];
    let mut zero_neg = zero;
    zero_neg[31] = 0x80;
    let o8a = hx("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05");
    let mut o8a_neg = o8a;
    o8a_neg[31] |= 0x80;
    let o8b = hx("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
    let mut o8b_neg = o8b;
    o8b_neg[31] |= 0x80;
    vec![
        (identity, "identity"),
        (neg_zero_identity, "identity, sign bit set (non-canonical)"),
        (p_plus_1, "identity, y = p + 1 (non-canonical)"),
        (p_minus_1, "order 2"),
        (zero, "order 4"),
        (zero_neg, "order 4, other x"),
        (p, "order 4, y = p (non-canonical)"),
        (o8a, "order 8"),
        (o8a_neg, "order 8, other x"),
        (o8b, "order 8, second y"),
        (o8b_neg, "order 8, second y, other x"),
    ]
}

fn sig_of(r: &[u8; 32], s: &[u8; 32]) -> AccountSignature {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(r);
    b[32..].copy_from_slice(s);
    AccountSignature::from_bytes(&b).unwrap()
}

/// Single verdict, batch equation alone, batch with a valid signature
/// beside it, and the fallback API all agree.
fn agree(key: &AccountPublicKey, msg: &[u8], sig: &AccountSignature) -> bool {
    let single = key.verify(msg, sig).is_ok();
    let item = AccountBatchItem { key, msg, sig };
    assert_eq!(
        batch_equation_holds(&[item], &[1; 32]),
        single,
        "{key:?} {sig:?}"
    );
    let good_key = sk(9).public_key();
    let good_sig = sk(9).sign(b"other");
    let good = AccountBatchItem {
        key: &good_key,
        msg: b"other",
        sig: &good_sig,
    };
    for seed in [[2u8; 32], [3u8; 32]] {
        assert_eq!(batch_equation_holds(&[good, item], &seed), single);
        assert_eq!(verify_batch(&[good, item], &seed), vec![true, single]);
    }
    single
}

#[test]
fn sign_verify_and_redaction() {
    let k = sk(1);
    let pk = k.public_key();
    let s = k.sign(b"hello");
    assert!(pk.verify(b"hello", &s).is_ok());
    assert!(pk.verify(b"hellp", &s).is_err());
    assert!(sk(2).public_key().verify(b"hello", &s).is_err());
    assert_eq!(AccountPublicKey::from_bytes(&pk.to_bytes()), Ok(pk));
    assert_eq!(AccountSignature::from_bytes(&s.to_bytes()), Ok(s));
    assert_eq!(
        AccountSecretKey::from_bytes(k.to_bytes().as_ref())
            .unwrap()
            .public_key(),
        pk
    );
    assert!(!format!("{k:?}{k}").contains(&hex::encode(k.to_bytes().as_ref())));
    assert!(AccountPublicKey::from_bytes(&[0; 31]).is_err());
    assert!(AccountSignature::from_bytes(&[0; 63]).is_err());
    // RFC 8032 test 1: the seed → public key mapping is standard.
    let rfc = AccountSecretKey::from_seed(&hx(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ));
    assert_eq!(
        hex::encode(rfc.public_key().to_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    assert_eq!(
        hex::encode(rfc.sign(b"").to_bytes()),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
         5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
}

#[test]
fn small_order_and_non_canonical_points_agree_in_batch_and_single() {
    let points = small_order_encodings();
    for (a, an) in &points {
        let key = AccountPublicKey::from_bytes(a)
            .unwrap_or_else(|_| panic!("ZIP-215 accepts the encoding of {an}"));
        assert_eq!(key.as_bytes(), a, "bytes are kept as given");
        for (r, rn) in &points {
            // s = 0 with small-order A and R: [8]R + [8][k]A = 0 = [8][0]B,
            // so ZIP-215 accepts it for any message.
            let sig = sig_of(r, &[0; 32]);
            assert!(agree(&key, b"any message", &sig), "A {an}, R {rn}, s = 0");
            // s = ℓ: the same equation, but s is not reduced: refused.
            let sig = sig_of(r, &ELL);
            assert!(!agree(&key, b"any message", &sig), "A {an}, R {rn}, s = ℓ");
            // s = 1: [8]B is not small order, so the equation fails.
            let mut one = [0u8; 32];
            one[0] = 1;
            assert!(
                !agree(&key, b"m", &sig_of(r, &one)),
                "A {an}, R {rn}, s = 1"
            );
        }
    }
}

#[test]
fn s_not_below_ell_is_refused_in_batch_and_single() {
    let k = sk(3);
    let pk = k.public_key();
    let good = k.sign(b"msg");
    assert!(agree(&pk, b"msg", &good));
    let b = good.to_bytes();
    let r: [u8; 32] = b[..32].try_into().unwrap();
    let s: [u8; 32] = b[32..].try_into().unwrap();
    // s + ℓ is the same scalar mod ℓ: the malleated twin RFC 8032 forbids.
    let twin = sig_of(&r, &le_add(&s, &ELL));
    assert!(!agree(&pk, b"msg", &twin));
    let mut high = s;
    high[31] |= 0xf0;
    assert!(!agree(&pk, b"msg", &sig_of(&r, &high)));
}

#[test]
fn non_canonical_r_of_a_real_key_and_off_curve_points() {
    let k = sk(4);
    let pk = k.public_key();
    // A real key with R = a non-canonical small-order encoding and
    // s = 0: [8]R = 0 but [8][k]A ≠ 0, so both paths refuse.
    let mut p_plus_1 = [0xffu8; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    assert!(!agree(&pk, b"m", &sig_of(&p_plus_1, &[0; 32])));
    // y = 2 is not on the curve (x² = 3/(4d+1) is not a square): the key
    // does not decode, and as R it fails both paths.
    let mut two = [0u8; 32];
    two[0] = 2;
    assert_eq!(
        AccountPublicKey::from_bytes(&two),
        Err(AccountKeyError::NotOnCurve)
    );
    let s_bytes: [u8; 32] = k.sign(b"m").to_bytes()[32..].try_into().unwrap();
    assert!(!agree(&pk, b"m", &sig_of(&two, &s_bytes)));
}

#[test]
fn batch_verdicts_never_depend_on_the_seed() {
    let keys: Vec<_> = (0..8).map(sk).collect();
    let pks: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
    let mut sigs: Vec<_> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    sigs[5] = keys[5].sign(b"something else");
    let items: Vec<_> = (0..8)
        .map(|i| AccountBatchItem {
            key: &pks[i],
            msg: &msgs[i],
            sig: &sigs[i],
        })
        .collect();
    let want: Vec<bool> = (0..8).map(|i| i != 5).collect();
    for s in 0..4u8 {
        assert_eq!(verify_batch(&items, &[s; 32]), want);
        assert!(verify_batch(&items[..5], &[s; 32]).iter().all(|v| *v));
    }
    assert!(verify_batch(&[], &[0; 32]).is_empty());
}

#[test]
fn seed_rng_is_a_deterministic_stream() {
    use rand_core_06::RngCore;
    let mut a = SeedRng::new(&[1; 32]);
    let mut b = SeedRng::new(&[1; 32]);
    let mut c = SeedRng::new(&[2; 32]);
    let mut x = [0u8; 100];
    let mut y = [0u8; 100];
    a.fill_bytes(&mut x[..7]);
    a.fill_bytes(&mut x[7..]);
    b.fill_bytes(&mut y);
    assert_eq!(x, y);
    assert_ne!(c.next_u64(), u64::from_le_bytes(y[..8].try_into().unwrap()));
}

#[test]
fn key_cache_decodes_each_key_once_and_stays_bounded() {
    let mut cache = AccountKeyCache::new(4);
    let pks: Vec<_> = (0..6).map(|i| sk(i).public_key().to_bytes()).collect();
    for _ in 0..3 {
        assert_eq!(cache.get(&pks[0]).unwrap().to_bytes(), pks[0]);
        assert_eq!(cache.get(&pks[1]).unwrap().to_bytes(), pks[1]);
    }
    assert_eq!(cache.decodes(), 2);
    for p in &pks {
        cache.get(p).unwrap();
    }
    assert!(cache.len() <= 4);
    let mut two = [0u8; 32];
    two[0] = 2;
    assert_eq!(cache.get(&two), Err(AccountKeyError::NotOnCurve));
    assert!(cache.get(&[0; 5]).is_err());
}

/// Both curve libraries (`ed25519-consensus`'s and the batch equation's)
/// accept the same key encodings and decode them to the same point: every
/// small y, every y just below and above p, with both signs, and random
/// bytes. A key one accepted and the other refused would be refused
/// (`AccountPublicKey::from_bytes`), but it must not happen at all.
#[test]
fn both_libraries_decode_the_same_keys() {
    use rand::{Rng, SeedableRng};
    let mut encodings: Vec<[u8; 32]> = Vec::new();
    for low in 0u8..40 {
        let mut small = [0u8; 32];
        small[0] = low;
        // p − 20 … p + 19 (p = 2²⁵⁵ − 19): the non-canonical band and its edge.
        let mut near_p = [0xffu8; 32];
        near_p[31] = 0x7f;
        near_p[0] = 0xd9u8.wrapping_add(low);
        for b in [small, near_p] {
            let mut neg = b;
            neg[31] |= 0x80;
            encodings.extend([b, neg]);
        }
    }
    encodings.extend(small_order_encodings().into_iter().map(|(e, _)| e));
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(215);
    encodings.extend((0..4000).map(|_| rng.random::<[u8; 32]>()));
    let (mut both, mut neither) = (0, 0);
    for e in &encodings {
        let ng = curve25519_dalek_ng::edwards::CompressedEdwardsY(*e).decompress();
        let v4 = CompressedEdwardsY(*e).decompress();
        match (ng, v4) {
            (Some(a), Some(b)) => {
                assert_eq!(a.compress().to_bytes(), b.compress().to_bytes(), "{e:02x?}");
                assert!(AccountPublicKey::from_bytes(e).is_ok());
                both += 1;
            }
            (None, None) => {
                assert_eq!(
                    AccountPublicKey::from_bytes(e),
                    Err(AccountKeyError::NotOnCurve)
                );
                neither += 1;
            }
            (a, b) => panic!("{e:02x?}: ed25519-consensus {a:?}, batch {b:?}"),
        }
    }
    // Random y is a curve point about half the time: both cases were met.
    assert!(both > 1500 && neither > 1500, "{both} / {neither}");
}

/// One random batch item for the differential test, with the verdict
/// ZIP-215 gives it (whatever the single check says is asserted too).
struct Case {
    key: AccountPublicKey,
    msg: Vec<u8>,
    sig: AccountSignature,
}

impl Case {
    fn item(&self) -> AccountBatchItem<'_> {
        AccountBatchItem {
            key: &self.key,
            msg: &self.msg,
            sig: &self.sig,
        }
    }
}

fn random_case(rng: &mut rand_chacha::ChaCha20Rng, small: &[([u8; 32], &str)]) -> Case {
    use rand::Rng;
    let signer = sk(rng.random_range(0..5u8));
    let msg: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
    let small_key = AccountPublicKey::from_bytes(&small[rng.random_range(0..small.len())].0)
        .expect("ZIP-215 accepts small-order keys");
    let small_r = small[rng.random_range(0..small.len())].0;
    let mut one = [0u8; 32];
    one[0] = 1;
    let (key, sig) = match rng.random_range(0..100) {
        // Valid: a real key (five of them, so keys repeat in a batch).
        0..45 => (signer.public_key(), signer.sign(&msg)),
        // Valid under ZIP-215: small-order key and R, s = 0.
        45..80 => (small_key, sig_of(&small_r, &[0; 32])),
        // Invalid: signed another message.
        80..85 => (signer.public_key(), signer.sign(b"another message")),
        // Invalid: s = ℓ, or s = 1, with small-order key and R.
        85..90 => (small_key, sig_of(&small_r, &ELL)),
        90..95 => (small_key, sig_of(&small_r, &one)),
        // Invalid: R changed (off the curve, or the wrong point).
        _ => {
            let mut b = signer.sign(&msg).to_bytes();
            b[rng.random_range(0..32)] ^= 1 << rng.random_range(0..8);
            (
                signer.public_key(),
                AccountSignature::from_bytes(&b).unwrap(),
            )
        }
    };
    Case { key, msg, sig }
}

/// Differential test: on random batches mixing valid signatures (keys
/// repeating), ZIP-215's small-order edge cases and invalid signatures,
/// our batch equation holds exactly when every single check of
/// `ed25519-consensus` passes and when `ed25519-consensus`'s own batch
/// verifier accepts; `verify_batch` gives the single verdicts.
#[test]
fn the_batch_equation_agrees_with_ed25519_consensus() {
    use rand::{Rng, SeedableRng};
    let small = small_order_encodings();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8032);
    let (mut held, mut failed) = (0, 0);
    for round in 0..300u32 {
        let n = rng.random_range(1..12);
        let cases: Vec<Case> = (0..n).map(|_| random_case(&mut rng, &small)).collect();
        let items: Vec<AccountBatchItem<'_>> = cases.iter().map(Case::item).collect();
        let single: Vec<bool> = items
            .iter()
            .map(|it| it.key.verify(it.msg, it.sig).is_ok())
            .collect();
        let seed: [u8; 32] = rng.random();
        let mut reference = ed25519_consensus::batch::Verifier::new();
        for it in &items {
            reference.queue((
                ed25519_consensus::VerificationKeyBytes::from(*it.key.as_bytes()),
                it.sig.0,
                it.msg,
            ));
        }
        let all = single.iter().all(|v| *v);
        let ours = batch_equation_holds(&items, &seed);
        assert_eq!(ours, all, "round {round}: {single:?}");
        assert_eq!(
            reference.verify(SeedRng::new(&seed)).is_ok(),
            all,
            "round {round}"
        );
        assert_eq!(verify_batch(&items, &seed), single, "round {round}");
        if all { held += 1 } else { failed += 1 }
    }
    assert!(held > 50 && failed > 50, "{held} held, {failed} failed");
}
