//! Hot paths of the core: BLS sign/verify, FastAggregateVerify, certificate
//! verification and the proposer lottery; account signatures (Ed25519,
//! single and batch) beside the BLS ones they replaced.

use agora_validator::certificate::CommitCertificate;
use agora_validator::crypto::bls::{
    HashedMessage, UncheckedSignature, WeightedItem, verify_each_of_one_message, verify_weighted,
};
use agora_validator::crypto::ed25519::{AccountBatchItem, verify_batch};
use agora_validator::crypto::sha3_batch::sha3_256_batch;
use agora_validator::crypto::{
    AccountPublicKey, AccountSecretKey, AccountSignature, PublicKey, SecretKey, Signature,
    sha3_256, sha3_256_parts,
};
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
    c.bench_function("bls/hash_to_g2", |b| {
        b.iter(|| HashedMessage::new(black_box(msg)))
    });
    let hashed = HashedMessage::new(msg);
    c.bench_function("bls/sign_hashed", |b| {
        b.iter(|| sk.sign_hashed(black_box(&hashed)))
    });
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
    proposal_check(c);
    quorum_from_bytes(c);
}

/// What verifying a quorum of votes costs from their bytes: the plain sum
/// (decompress, sum, one subgroup check, FastAggregateVerify; the rule
/// before session 40) against the weighted check that vouches for each
/// vote (decode with each subgroup check, two multi-scalar sums, one
/// pairing check; `consensus::vote_set` docs).
fn quorum_from_bytes(c: &mut Criterion) {
    let msg = b"agora bench vote";
    let mut g = c.benchmark_group("bls/quorum_from_bytes");
    for n in [3usize, 11, 67] {
        let sks = keys(n);
        let pks: Vec<PublicKey> = sks.iter().map(|s| s.public_key()).collect();
        let pk_refs: Vec<&PublicKey> = pks.iter().collect();
        let bytes: Vec<[u8; 96]> = sks.iter().map(|s| s.sign(msg).to_bytes()).collect();
        let weights: Vec<u64> = (0..n as u64)
            .map(|i| {
                if i == 0 {
                    1
                } else {
                    sha3_256(&i.to_le_bytes())[0] as u64 * 0x0101_0101_0101 + 2
                }
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("plain_sum", n), &n, |b, _| {
            b.iter(|| {
                let sigs: Vec<UncheckedSignature> = bytes
                    .iter()
                    .map(|s| UncheckedSignature::from_bytes(s).expect("decodes"))
                    .collect();
                let refs: Vec<&UncheckedSignature> = sigs.iter().collect();
                let sum = UncheckedSignature::aggregate_checked(&refs).expect("in G2");
                sum.fast_aggregate_verify(msg, &pk_refs).is_ok()
            })
        });
        g.bench_with_input(BenchmarkId::new("weighted", n), &n, |b, _| {
            b.iter(|| {
                let sigs: Vec<Signature> = bytes
                    .iter()
                    .map(|s| Signature::from_bytes(s).expect("decodes"))
                    .collect();
                let refs: Vec<&Signature> = sigs.iter().collect();
                verify_each_of_one_message(msg, None, &pk_refs, &refs, &weights).is_ok()
            })
        });
    }
    g.finish();
}

/// The shape of a validator's proposal check: the proposer's signature
/// (weight 1) and VRF proof under one key, messages not hashed yet, and a
/// three-signer certificate whose message point the checker already holds.
fn proposal_check(c: &mut Criterion) {
    let sks = keys(4);
    let (proposal, vrf_input, commit) = (b"proposal bytes", b"vrf input", b"precommit bytes");
    let pk = sks[0].public_key();
    let (sig, proof) = (sks[0].sign(proposal), sks[0].sign(vrf_input));
    let pks: Vec<PublicKey> = sks[1..].iter().map(|s| s.public_key()).collect();
    let apk = PublicKey::aggregate(&pks.iter().collect::<Vec<_>>()).expect("keys");
    let shares: Vec<Signature> = sks[1..].iter().map(|s| s.sign(commit)).collect();
    let agg = Signature::aggregate(&shares.iter().collect::<Vec<_>>()).expect("shares");
    let hashed = HashedMessage::new(commit);
    let items = [
        WeightedItem {
            key: &pk,
            msg: proposal,
            hashed: None,
            sig: &sig,
            weight: 1,
        },
        WeightedItem {
            key: &pk,
            msg: vrf_input,
            hashed: None,
            sig: &proof,
            weight: 0x9e37_79b9_7f4a_7c15,
        },
        WeightedItem {
            key: &apk,
            msg: commit,
            hashed: Some(&hashed),
            sig: &agg,
            weight: 0x6a09_e667_f3bc_c909,
        },
    ];
    c.bench_function("bls/proposal_check_weighted_3", |b| {
        b.iter(|| verify_weighted(black_box(&items)).is_ok())
    });
}

/// `n` account keys, their public keys, distinct messages and each key's
/// signature over its message.
type AccountFixtures = (
    Vec<AccountSecretKey>,
    Vec<AccountPublicKey>,
    Vec<Vec<u8>>,
    Vec<AccountSignature>,
);

fn account_fixtures(n: usize) -> AccountFixtures {
    let eks: Vec<AccountSecretKey> = (0..n)
        .map(|i| AccountSecretKey::from_seed(&sha3_256(&(i as u64).to_be_bytes())))
        .collect();
    let epks = eks.iter().map(|k| k.public_key()).collect();
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("agora/tx/v1 bench {i}").into_bytes())
        .collect();
    let esigs = eks.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    (eks, epks, msgs, esigs)
}

/// The fixtures' keys, messages and signatures as batch items, in order.
fn batch_items<'a>(
    keys: &'a [AccountPublicKey],
    msgs: &'a [Vec<u8>],
    sigs: &'a [AccountSignature],
) -> Vec<AccountBatchItem<'a>> {
    keys.iter()
        .zip(msgs)
        .zip(sigs)
        .map(|((key, msg), sig)| AccountBatchItem { key, msg, sig })
        .collect()
}

/// Account signatures: Ed25519 (ZIP-215) single and batch verification of
/// 64 distinct keys and messages, and the BLS batch of the same shape that
/// accounts used before.
fn accounts(c: &mut Criterion) {
    const N: usize = 64;
    let (eks, epks, msgs, esigs) = account_fixtures(N);
    c.bench_function("ed25519/sign", |b| {
        b.iter(|| eks[0].sign(black_box(&msgs[0])))
    });
    c.bench_function("ed25519/verify", |b| {
        b.iter(|| {
            epks[0]
                .verify(black_box(&msgs[0]), black_box(&esigs[0]))
                .is_ok()
        })
    });
    let pk_bytes = epks[0].to_bytes();
    c.bench_function("ed25519/public_key_decode", |b| {
        b.iter(|| AccountPublicKey::from_bytes(black_box(&pk_bytes)).is_ok())
    });
    let items = batch_items(&epks, &msgs, &esigs);
    c.bench_function("ed25519/batch_verify_64", |b| {
        b.iter(|| verify_batch(black_box(&items), &[7; 32]).iter().all(|v| *v))
    });
    c.bench_function("ed25519/single_verify_64", |b| {
        b.iter(|| items.iter().all(|it| it.key.verify(it.msg, it.sig).is_ok()))
    });

    let bks = keys(N);
    let bpks: Vec<PublicKey> = bks.iter().map(|k| k.public_key()).collect();
    let bsigs: Vec<Signature> = bks.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let bitems: Vec<agora_validator::crypto::bls::BatchItem<'_>> = (0..N)
        .map(|i| agora_validator::crypto::bls::BatchItem {
            key: &bpks[i],
            msg: &msgs[i],
            sig: &bsigs[i],
        })
        .collect();
    let rand: Vec<u64> = (1..=N as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        .collect();
    c.bench_function("bls/batch_verify_64", |b| {
        b.iter(|| agora_validator::crypto::bls::batch_verify(black_box(&bitems), &rand).is_ok())
    });
    batch_of_recurring_keys(c, &bks, &msgs, &rand);
}

/// 64 items signed by k keys in turn (a chain's recurring signer sets and
/// proposers): what a Miller loop shared per key saves at each group size.
fn batch_of_recurring_keys(c: &mut Criterion, sks: &[SecretKey], msgs: &[Vec<u8>], rand: &[u64]) {
    const N: usize = 64;
    let mut g = c.benchmark_group("bls/batch_verify_64_by_keys");
    for k in [32usize, 16, 8, 2, 1] {
        let pks: Vec<PublicKey> = (0..N).map(|i| sks[i % k].public_key()).collect();
        let sigs: Vec<Signature> = (0..N).map(|i| sks[i % k].sign(&msgs[i])).collect();
        let items: Vec<agora_validator::crypto::bls::BatchItem<'_>> = (0..N)
            .map(|i| agora_validator::crypto::bls::BatchItem {
                key: &pks[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        g.bench_function(format!("{k}"), |b| {
            b.iter(|| agora_validator::crypto::bls::batch_verify(black_box(&items), rand).is_ok())
        });
    }
    g.finish();
}

/// Ed25519 batch verification per signature at the batch sizes the
/// transaction verifier can form: whether a larger multiscalar
/// multiplication costs less per point, which `tx_verifier::MAX_BATCH`
/// would trade against the cost of a batch that fails.
fn account_batch_sizes(c: &mut Criterion) {
    const MAX: usize = 1024;
    let (_, epks, msgs, esigs) = account_fixtures(MAX);
    let all = batch_items(&epks, &msgs, &esigs);
    let mut g = c.benchmark_group("ed25519/batch_verify_per_signature");
    for n in [32, 64, 128, 256, 512, MAX] {
        let items = &all[..n];
        g.throughput(criterion::Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), items, |b, items| {
            b.iter(|| verify_batch(black_box(items), &[7; 32]).iter().all(|v| *v))
        });
    }
    g.finish();
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

/// SHA3-256 of 1,024 internal-node-shaped messages (16 + 32 + 32 bytes):
/// one at a time against the batch (eight lanes where AVX-512F exists).
fn hashing(c: &mut Criterion) {
    let halves: Vec<[u8; 32]> = (0..1025u32).map(|i| sha3_256(&i.to_le_bytes())).collect();
    let messages: Vec<[&[u8]; 3]> = halves
        .windows(2)
        .map(|w| [b"JMT::IntrnalNode".as_slice(), &w[0][..], &w[1][..]])
        .collect();
    c.bench_function("hash/sha3_256_1024_one_at_a_time", |b| {
        b.iter(|| {
            black_box(&messages)
                .iter()
                .map(|m| sha3_256_parts(m))
                .fold(0u8, |a, h| a ^ h[0])
        })
    });
    c.bench_function("hash/sha3_256_1024_batch", |b| {
        b.iter(|| sha3_256_batch(black_box(&messages)).len())
    });
}

criterion_group!(
    benches,
    hashing,
    bls,
    accounts,
    account_batch_sizes,
    certificates,
    lottery_pick
);
criterion_main!(benches);
