//! Hot paths of the core: BLS sign/verify, FastAggregateVerify, certificate
//! verification and the proposer lottery.

use agora_validator::certificate::CommitCertificate;
use agora_validator::crypto::{PublicKey, SecretKey, Signature, sha3_256};
use agora_validator::lottery;
use agora_validator::signing::vote_bytes;
use agora_validator::types::{ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn keys(n: usize) -> Vec<SecretKey> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            SecretKey::from_seed(&seed).expect("seed")
        })
        .collect()
}

fn bls(c: &mut Criterion) {
    let sk = &keys(1)[0];
    let pk = sk.public_key();
    let msg = b"agora bench message";
    let sig = sk.sign(msg);
    c.bench_function("bls/sign", |b| b.iter(|| sk.sign(black_box(msg))));
    c.bench_function("bls/verify", |b| {
        b.iter(|| pk.verify(black_box(msg), black_box(&sig)).is_ok())
    });
    let bytes = sig.to_bytes();
    c.bench_function("bls/signature_decode_subgroup_check", |b| {
        b.iter(|| Signature::from_bytes(black_box(&bytes)).is_ok())
    });

    let mut g = c.benchmark_group("bls/fast_aggregate_verify");
    for n in [4usize, 64, 128] {
        let sks = keys(n);
        let pks: Vec<PublicKey> = sks.iter().map(|s| s.public_key()).collect();
        let sigs: Vec<Signature> = sks.iter().map(|s| s.sign(msg)).collect();
        let refs: Vec<&Signature> = sigs.iter().collect();
        let agg = Signature::aggregate(&refs).expect("aggregate");
        let pk_refs: Vec<&PublicKey> = pks.iter().collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                agg.fast_aggregate_verify(black_box(msg), black_box(&pk_refs))
                    .is_ok()
            })
        });
    }
    g.finish();

    let sks = keys(100);
    let sigs: Vec<Signature> = sks.iter().map(|s| s.sign(msg)).collect();
    let refs: Vec<&Signature> = sigs.iter().collect();
    c.bench_function("bls/aggregate_100_signatures", |b| {
        b.iter(|| Signature::aggregate(black_box(&refs)).is_ok())
    });
}

fn certificates(c: &mut Criterion) {
    let chain = ChainId::new("bench").expect("chain");
    let mut g = c.benchmark_group("certificate/verify");
    for n in [4usize, 100] {
        let mut pairs: Vec<(SecretKey, Validator)> = keys(n)
            .into_iter()
            .enumerate()
            .map(|(i, sk)| {
                let v = Validator::new(sk.public_key(), 10 + i as u64);
                (sk, v)
            })
            .collect();
        pairs.sort_by_key(|p| p.1.address);
        let set = ValidatorSet::new(pairs.iter().map(|p| p.1.clone()).collect()).expect("set");
        let hash = sha3_256(b"block");
        let msg = vote_bytes(&chain, VoteType::Precommit, 42, 0, &hash);
        let pcs: Vec<(usize, Signature)> = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.0.sign(&msg)))
            .collect();
        let cert = CommitCertificate::from_precommits(&set, 42, 0, hash, &pcs).expect("cert");
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| cert.verify(black_box(&chain), black_box(&set)).is_ok())
        });
    }
    g.finish();
}

fn lottery_pick(c: &mut Criterion) {
    let vals: Vec<Validator> = keys(100)
        .iter()
        .enumerate()
        .map(|(i, sk)| Validator::new(sk.public_key(), 1 + (i as u64 * 7919) % 1000))
        .collect();
    let set = ValidatorSet::new(vals).expect("set");
    let seed = sha3_256(b"seed");
    let mut h = 0u64;
    c.bench_function("lottery/proposer_100_validators", |b| {
        b.iter(|| {
            h += 1;
            lottery::proposer(black_box(&set), black_box(&seed), h, 0).power
        })
    });
}

criterion_group!(benches, bls, certificates, lottery_pick);
criterion_main!(benches);
