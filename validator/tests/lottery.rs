//! Statistical and determinism properties of the proposer lottery (DESIGN §5).

use agora_validator::crypto::{Hash, SecretKey, sha3_256};
use agora_validator::lottery;
use agora_validator::validator_set::{Validator, ValidatorSet};

/// Very unequal powers: the largest is 3,000 times the smallest.
const POWERS: [u64; 12] = [1, 2, 3, 5, 8, 13, 50, 100, 200, 400, 1000, 3000];
const DRAWS: u64 = 200_000;
/// Chi-square critical value for 11 degrees of freedom at p = 0.001.
const CHI2_CRIT_DF11_P001: f64 = 31.264;

fn set_with(powers: &[u64]) -> ValidatorSet {
    let vals = powers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sk = SecretKey::from_seed(&[i as u8 + 1; 32]).expect("seed");
            Validator::new(sk.public_key(), *p)
        })
        .collect();
    ValidatorSet::new(vals).expect("set")
}

fn seed_for(i: u64) -> Hash {
    sha3_256(&i.to_be_bytes())
}

/// Counts how often each validator wins over `DRAWS` (seed, height, round) inputs.
fn tally(set: &ValidatorSet, pick: impl Fn(&ValidatorSet, &Hash, u64, u32) -> usize) -> Vec<u64> {
    let mut counts = vec![0u64; set.len()];
    for i in 0..DRAWS {
        // Vary all three inputs: seeds, heights and rounds.
        counts[pick(set, &seed_for(i / 4), i, (i % 4) as u32)] += 1;
    }
    counts
}

/// Pearson's chi-square statistic of observed counts against power shares.
fn chi_square(set: &ValidatorSet, counts: &[u64]) -> f64 {
    let total = set.total_power() as f64;
    set.validators()
        .iter()
        .zip(counts)
        .map(|(v, c)| {
            let expected = DRAWS as f64 * v.power as f64 / total;
            let d = *c as f64 - expected;
            d * d / expected
        })
        .sum()
}

fn fair_pick(set: &ValidatorSet, seed: &Hash, h: u64, r: u32) -> usize {
    let p = lottery::proposer(set, seed, h, r);
    set.index_of(&p.address).expect("member")
}

/// A lottery that gives `favoured` an extra 2% of all draws.
fn biased_pick(favoured: usize) -> impl Fn(&ValidatorSet, &Hash, u64, u32) -> usize {
    move |set, seed, h, r| {
        let coin =
            sha3_256(&[seed.as_slice(), &h.to_be_bytes(), &r.to_be_bytes(), b"bias"].concat());
        if u16::from_be_bytes([coin[0], coin[1]]).is_multiple_of(50) {
            favoured
        } else {
            fair_pick(set, seed, h, r)
        }
    }
}

#[test]
fn lottery_is_stake_proportional_chi_square() {
    let set = set_with(&POWERS);
    assert!(set.len() >= 10);
    let counts = tally(&set, fair_pick);
    let chi2 = chi_square(&set, &counts);
    assert!(
        chi2 < CHI2_CRIT_DF11_P001,
        "chi-square {chi2:.2} exceeds {CHI2_CRIT_DF11_P001} (p < 0.001); counts {counts:?}"
    );
    // Every validator, even the one with 1/4782 of the power, is picked.
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
}

#[test]
fn lottery_meta_test_detects_two_percent_bias() {
    let set = set_with(&POWERS);
    // Favour the smallest, a middle and the largest validator in turn: the
    // same goodness-of-fit test must reject each biased lottery.
    let by_power = |p: u64| {
        set.validators()
            .iter()
            .position(|v| v.power == p)
            .expect("power present")
    };
    for favoured in [by_power(1), by_power(100), by_power(3000)] {
        let counts = tally(&set, biased_pick(favoured));
        let chi2 = chi_square(&set, &counts);
        assert!(
            chi2 > CHI2_CRIT_DF11_P001,
            "a 2% bias towards validator {favoured} went unnoticed: chi-square {chi2:.2}"
        );
    }
}

#[test]
fn lottery_is_deterministic_whatever_the_input_order() {
    let mut vals: Vec<Validator> = set_with(&POWERS).validators().to_vec();
    let a = ValidatorSet::new(vals.clone()).expect("set");
    vals.reverse();
    vals.rotate_left(5);
    let b = ValidatorSet::new(vals).expect("set");
    assert_eq!(a.hash(), b.hash());
    for i in 0..2_000u64 {
        let seed = seed_for(i);
        let pa = lottery::proposer(&a, &seed, i + 1, (i % 7) as u32);
        let pb = lottery::proposer(&b, &seed, i + 1, (i % 7) as u32);
        assert_eq!(pa.address, pb.address);
        // And again: the same inputs give the same winner.
        assert_eq!(
            lottery::proposer(&a, &seed, i + 1, (i % 7) as u32).address,
            pa.address
        );
    }
}

#[test]
fn lottery_target_edges() {
    // x = 0 picks the first validator, x = u64::MAX the last.
    let powers = [5u64, 1, 7];
    let total: u64 = powers.iter().sum();
    assert_eq!(lottery::pick_index(powers, lottery::target(0, total)), 0);
    assert_eq!(
        lottery::pick_index(powers, lottery::target(u64::MAX, total)),
        2
    );
    // Boundary: target 4 is still the first (running sum 5 > 4), 5 is the second.
    assert_eq!(lottery::pick_index(powers, 4), 0);
    assert_eq!(lottery::pick_index(powers, 5), 1);
    assert_eq!(lottery::pick_index(powers, 6), 2);
}
