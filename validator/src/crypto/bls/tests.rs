use super::*;

/// Memoised checks give exactly the fresh verdicts, for good and bad
/// signatures alike, however often they are asked.
#[cfg(feature = "verify-memo")]
#[test]
fn memoised_checks_give_the_same_verdicts() {
    std::thread::spawn(|| {
        enable_verify_memo();
        let (k1, k2) = (key(1).public_key(), key(2).public_key());
        let s1 = key(1).sign(b"m");
        let s2 = key(2).sign(b"m");
        let agg = Signature::aggregate(&[&s1, &s2]).unwrap();
        for _ in 0..3 {
            assert!(k1.verify(b"m", &s1).is_ok());
            assert_eq!(k1.verify(b"n", &s1), Err(BlsError::VerifyFailed));
            assert_eq!(k2.verify(b"m", &s1), Err(BlsError::VerifyFailed));
            assert!(agg.fast_aggregate_verify(b"m", &[&k1, &k2]).is_ok());
            assert!(agg.fast_aggregate_verify(b"m", &[&k1]).is_err());
            assert!(agg.fast_aggregate_verify(b"x", &[&k1, &k2]).is_err());
            // The hashed paths share the plain paths' memo keys.
            let (m, n) = (HashedMessage::new(b"m"), HashedMessage::new(b"n"));
            assert!(k1.verify_hashed(&m, &s1).is_ok());
            assert_eq!(k1.verify_hashed(&n, &s1), Err(BlsError::VerifyFailed));
            assert!(agg.fast_aggregate_verify_hashed(&m, &[&k1, &k2]).is_ok());
            assert!(agg.fast_aggregate_verify_hashed(&m, &[&k2]).is_err());
            assert_eq!(Signature::from_bytes(&s1.to_bytes()), Ok(s1));
            assert!(Signature::from_bytes(&[0xff; SIGNATURE_LEN]).is_err());
        }
    })
    .join()
    .unwrap();
}

fn key(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
}

#[test]
fn sign_verify_roundtrip_and_wrong_message_fails() {
    let sk = key(1);
    let pk = sk.public_key();
    let sig = sk.sign(b"hello");
    assert!(pk.verify(b"hello", &sig).is_ok());
    assert_eq!(pk.verify(b"hellO", &sig), Err(BlsError::VerifyFailed));
    assert_eq!(
        key(2).public_key().verify(b"hello", &sig),
        Err(BlsError::VerifyFailed)
    );
    let round = Signature::from_bytes(&sig.to_bytes()).expect("valid");
    assert_eq!(round, sig);
    let pk2 = PublicKey::from_bytes(&pk.to_bytes()).expect("valid");
    assert_eq!(pk2, pk);
}

#[test]
fn pop_is_domain_separated_from_signatures() {
    let sk = key(3);
    let pk = sk.public_key();
    let pop = sk.prove_possession();
    assert!(pk.verify_possession(&pop).is_ok());
    // A plain signature of the key bytes is not a proof of possession.
    let plain = sk.sign(&pk.to_bytes());
    assert!(pk.verify_possession(&plain).is_err());
    assert!(key(4).public_key().verify_possession(&pop).is_err());
}

#[test]
fn secret_key_is_never_printed() {
    let sk = key(5);
    let hexed = hex::encode(*sk.to_bytes());
    assert!(!format!("{sk:?}").contains(&hexed[..16]));
    assert!(!format!("{sk}").contains(&hexed[..16]));
}

#[test]
fn short_seed_and_zero_key_rejected() {
    assert_eq!(
        SecretKey::from_seed(&[1; 31]).err(),
        Some(BlsError::SeedTooShort)
    );
    assert!(SecretKey::from_bytes(&[0; 32]).is_err());
    assert!(SecretKey::from_bytes(&[0xff; 32]).is_err());
}

/// Two signatures in one weighted check, the first of weight 1.
fn verify_two(
    a: (&PublicKey, &[u8], &Signature),
    b: (&PublicKey, &[u8], &Signature),
    rho: u64,
) -> Result<(), BlsError> {
    verify_weighted(&[
        WeightedItem {
            key: a.0,
            msg: a.1,
            hashed: None,
            sig: a.2,
            weight: 1,
        },
        WeightedItem {
            key: b.0,
            msg: b.1,
            hashed: None,
            sig: b.2,
            weight: rho,
        },
    ])
}

#[test]
fn two_weighted_agree_with_two_single_checks() {
    let (a, b) = (key(9), key(10));
    let (pa, pb) = (a.public_key(), b.public_key());
    let (sa, sb) = (a.sign(b"ma"), b.sign(b"mb"));
    let other = a.sign(b"other");
    // With weight 1 the check is a plain aggregate check, which cannot
    // tell which pair a signature belongs to: why the weight must be
    // unpredictable to the signer.
    assert!(verify_two((&pa, b"ma", &sb), (&pb, b"mb", &sa), 1).is_ok());
    for rho in [2u64, 0x9e37_79b9_7f4a_7c15, u64::MAX] {
        let two = |x: &Signature, mx: &[u8], y: &Signature, my: &[u8]| {
            verify_two((&pa, mx, x), (&pb, my, y), rho).is_ok()
        };
        assert!(two(&sa, b"ma", &sb, b"mb"));
        assert!(!two(&other, b"ma", &sb, b"mb"));
        assert!(!two(&sa, b"ma", &sb, b"mX"));
        assert!(!two(&sb, b"ma", &sa, b"mb"), "signatures swapped");
        assert!(!two(&sa, b"mb", &sb, b"ma"), "messages swapped");
    }
    // Two wrong signatures whose errors cancel for rho = 1 are caught by
    // any other weight: (sa + d) + (sb - d) sums to sa + sb.
    let d = a.sign(b"delta");
    let sa_d = Signature::aggregate(&[&sa, &d]).unwrap();
    let neg_d = {
        let mut bytes = d.to_bytes();
        bytes[0] ^= 0x20; // the sort flag: the negated point
        Signature::from_bytes(&bytes).unwrap()
    };
    let sb_d = Signature::aggregate(&[&sb, &neg_d]).unwrap();
    assert!(verify_two((&pa, b"ma", &sa_d), (&pb, b"mb", &sb_d), 1).is_ok());
    assert!(verify_two((&pa, b"ma", &sa_d), (&pb, b"mb", &sb_d), 7).is_err());
    assert_eq!(
        verify_two((&pa, b"ma", &sa), (&pb, b"mb", &sb), 0),
        Err(BlsError::BadEncoding)
    );
}

#[test]
fn unchecked_signatures_aggregate_to_the_checked_sum() {
    let (a, b) = (key(11), key(12));
    let (pa, pb) = (a.public_key(), b.public_key());
    let (sa, sb) = (a.sign(b"m"), b.sign(b"m"));
    let ua = UncheckedSignature::from_bytes(&sa.to_bytes()).unwrap();
    let ub = UncheckedSignature::from_bytes(&sb.to_bytes()).unwrap();
    assert_eq!(ua.check(), Ok(sa));
    let agg = UncheckedSignature::aggregate_checked(&[&ua, &ub]).unwrap();
    assert_eq!(agg, Signature::aggregate(&[&sa, &sb]).unwrap());
    assert!(agg.fast_aggregate_verify(b"m", &[&pa, &pb]).is_ok());
    let mut inf = [0u8; SIGNATURE_LEN];
    inf[0] = 0xc0;
    assert_eq!(
        UncheckedSignature::from_bytes(&inf),
        Err(BlsError::Infinity)
    );
    assert!(UncheckedSignature::from_bytes(&[0xff; SIGNATURE_LEN]).is_err());
    assert!(UncheckedSignature::from_bytes(&[1; 95]).is_err());
}

/// A point on the curve outside G2 decodes unchecked, fails its own
/// check, and makes any sum it is in fail the sum's check, unless its
/// torsion is cancelled by another (which the sum's check then rightly
/// accepts: the sum is the honest sum).
#[test]
fn points_outside_the_subgroup_are_caught_alone_and_in_sums() {
    // Find an x whose point is on the curve but not in G2 (almost all are).
    let mut bytes = [0u8; SIGNATURE_LEN];
    let mut outside = None;
    for i in 1..=255u8 {
        bytes[0] = 0x80;
        bytes[SIGNATURE_LEN - 1] = i;
        if let Ok(u) = UncheckedSignature::from_bytes(&bytes)
            && u.check().is_err()
        {
            outside = Some(u);
            break;
        }
    }
    let t = outside.expect("a point outside G2");
    assert_eq!(
        Signature::from_bytes(&t.0.compress()),
        Err(BlsError::NotInSubgroup)
    );
    let s = UncheckedSignature::from(key(13).sign(b"m"));
    assert_eq!(
        UncheckedSignature::aggregate_checked(&[&s, &t]),
        Err(BlsError::NotInSubgroup)
    );
}

#[test]
fn aggregate_of_two_swapped_signatures_fails_fast_aggregate() {
    let (a, b) = (key(7), key(8));
    let (pa, pb) = (a.public_key(), b.public_key());
    let agg = Signature::aggregate(&[&a.sign(b"m"), &b.sign(b"m")]).expect("two");
    assert!(agg.fast_aggregate_verify(b"m", &[&pa, &pb]).is_ok());
    let aggk = PublicKey::aggregate(&[&pa, &pb]).expect("two");
    assert!(
        agg.fast_aggregate_verify_pre_aggregated(b"m", &aggk)
            .is_ok()
    );
    assert!(agg.fast_aggregate_verify(b"m", &[&pa]).is_err());
    let wrong = Signature::aggregate(&[&a.sign(b"m"), &b.sign(b"n")]).expect("two");
    assert!(wrong.fast_aggregate_verify(b"m", &[&pa, &pb]).is_err());
}

/// Signing and verifying from a hashed message give what the plain paths
/// give: the same signature bytes, the same verdicts; a point of other
/// bytes does not verify (the negative control of the reuse).
#[test]
fn hashed_paths_agree_with_the_plain_ones() {
    let (k1, k2) = (key(1), key(2));
    for msg in [&b""[..], b"m", &[7u8; 200]] {
        let hashed = HashedMessage::new(msg);
        assert_eq!(hashed.message(), msg);
        let s1 = k1.sign_hashed(&hashed);
        assert_eq!(s1.to_bytes(), k1.sign(msg).to_bytes());
        let s2 = k2.sign_hashed(&hashed);
        let (p1, p2) = (k1.public_key(), k2.public_key());
        assert!(p1.verify_hashed(&hashed, &s1).is_ok());
        assert_eq!(p1.verify_hashed(&hashed, &s2), Err(BlsError::VerifyFailed));
        let other = HashedMessage::new(b"other bytes");
        assert_eq!(p1.verify_hashed(&other, &s1), Err(BlsError::VerifyFailed));
        let agg = Signature::aggregate(&[&s1, &s2]).unwrap();
        assert!(
            agg.fast_aggregate_verify_hashed(&hashed, &[&p1, &p2])
                .is_ok()
        );
        assert!(agg.fast_aggregate_verify_hashed(&hashed, &[&p1]).is_err());
        assert!(
            agg.fast_aggregate_verify_hashed(&other, &[&p1, &p2])
                .is_err()
        );
        assert_eq!(
            agg.fast_aggregate_verify_hashed(&hashed, &[]),
            Err(BlsError::Empty)
        );
    }
}
