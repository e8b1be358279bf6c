//! Verifying 64 heights of a chain: block by block (one VRF verification and
//! one FastAggregateVerify per height) against one randomised batch, and the
//! certificates alone, one by one against batched.

use agora_proto::v1 as pb;
use agora_validator::block::{header_hash, list_hash};
use agora_validator::certificate::CommitCertificate;
use agora_validator::chain_verifier::{ChainStep, ChainVerifier, SCALARS_PER_STEP};
use agora_validator::crypto::bls::{BatchItem, batch_verify};
use agora_validator::crypto::{Hash, PublicKey, SecretKey, ZERO_HASH, sha3_256, vrf};
use agora_validator::lottery;
use agora_validator::signing::vote_bytes;
use agora_validator::types::{ChainId, VoteType};
use agora_validator::validator_set::{Validator, ValidatorSet};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;

const HEIGHTS: u64 = 64;
const VALIDATORS: usize = 16;

struct Chain {
    chain: ChainId,
    set: ValidatorSet,
    seed0: Hash,
    blocks: Vec<(pb::Header, CommitCertificate)>,
}

fn build() -> Chain {
    let chain = ChainId::new("bench").expect("chain");
    let mut pairs: Vec<(SecretKey, Validator)> = (0..VALIDATORS)
        .map(|i| {
            let sk = SecretKey::from_seed(&[i as u8 + 1; 32]).expect("seed");
            let v = Validator::new(sk.public_key(), 10);
            (sk, v)
        })
        .collect();
    pairs.sort_by_key(|p| p.1.address);
    let set = ValidatorSet::new(pairs.iter().map(|p| p.1.clone()).collect()).expect("set");
    let keys: Vec<SecretKey> = pairs.into_iter().map(|p| p.0).collect();
    let seed0 = vrf::genesis_seed(&sha3_256(b"bench genesis"));
    let (mut seed, mut prev, mut blocks) = (seed0, ZERO_HASH, Vec::new());
    for h in 1..=HEIGHTS {
        let winner = lottery::proposer(&set, &seed, h, 0);
        let wi = set.index_of(&winner.address).expect("member");
        let proof = vrf::prove(&keys[wi], &chain, h, &seed);
        let header = pb::Header {
            chain_id: chain.to_string(),
            height: h,
            parent_hash: prev.to_vec(),
            proposer_address: winner.address.0.to_vec(),
            vrf_proof: proof.to_bytes().to_vec(),
            txs_hash: list_hash::<pb::Transaction>(&[]).to_vec(),
            evidence_hash: list_hash::<pb::Evidence>(&[]).to_vec(),
            last_commit_hash: ZERO_HASH.to_vec(),
            app_hash: vec![0; 32],
            validators_hash: set.hash().to_vec(),
            next_validators_hash: set.hash().to_vec(),
            time_ms: 0,
            proposal_round: 0,
        };
        let bh = header_hash(&header);
        let msg = vote_bytes(&chain, VoteType::Precommit, h, 0, &bh);
        // 12 of 16 sign (> 2/3).
        let pcs: Vec<_> = (0..12).map(|i| (i, keys[i].sign(&msg))).collect();
        let cert = CommitCertificate::from_precommits(&set, h, 0, bh, &pcs).expect("cert");
        seed = vrf::next_seed(&seed, &vrf::output(&proof));
        prev = bh;
        blocks.push((header, cert));
    }
    Chain {
        chain,
        set,
        seed0,
        blocks,
    }
}

fn chain(c: &mut Criterion) {
    let ch = build();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut scalars =
        |n: usize| -> Vec<u64> { (0..n).map(|_| rng.next_u64() | 1).collect::<Vec<_>>() };

    let mut g = c.benchmark_group("chain_verify_64_heights");
    g.sample_size(10);
    g.bench_function("one_by_one", |b| {
        b.iter(|| {
            let mut v = ChainVerifier::from_genesis(ch.chain.clone(), ch.seed0, ch.set.clone());
            for (header, cert) in &ch.blocks {
                v.verify_next(header, cert, &ch.set).expect("valid");
            }
            black_box(v.next_height())
        })
    });
    let steps: Vec<ChainStep<'_>> = ch
        .blocks
        .iter()
        .map(|(header, cert)| ChainStep {
            header,
            cert,
            next_set: &ch.set,
            vrf_proof: None,
        })
        .collect();
    let rands = scalars(steps.len() * SCALARS_PER_STEP);
    g.bench_function("batched", |b| {
        b.iter(|| {
            let mut v = ChainVerifier::from_genesis(ch.chain.clone(), ch.seed0, ch.set.clone());
            v.verify_batch(black_box(&steps), &rands).expect("valid");
            black_box(v.next_height())
        })
    });
    g.finish();

    // The certificates alone (the signers' keys are summed in both).
    let mut g = c.benchmark_group("certificates_64");
    g.sample_size(10);
    g.bench_function("one_by_one", |b| {
        b.iter(|| {
            for (_, cert) in &ch.blocks {
                cert.verify(&ch.chain, &ch.set).expect("valid");
            }
        })
    });
    let rands = scalars(ch.blocks.len());
    g.bench_function("batched", |b| {
        b.iter(|| {
            let prepared: Vec<(PublicKey, Vec<u8>)> = ch
                .blocks
                .iter()
                .map(|(_, cert)| {
                    let idx = cert.signer_indices(ch.set.len()).expect("bitmap");
                    let keys: Vec<&PublicKey> = idx
                        .iter()
                        .map(|i| &ch.set.validators()[*i].public_key)
                        .collect();
                    let key = PublicKey::aggregate(&keys).expect("keys");
                    let msg = vote_bytes(
                        &ch.chain,
                        VoteType::Precommit,
                        cert.height,
                        cert.round,
                        &cert.block_hash,
                    );
                    (key, msg)
                })
                .collect();
            let items: Vec<BatchItem<'_>> = prepared
                .iter()
                .zip(&ch.blocks)
                .map(|((key, msg), (_, cert))| BatchItem {
                    key,
                    msg,
                    sig: &cert.aggregate_signature,
                })
                .collect();
            batch_verify(&items, &rands).expect("valid")
        })
    });
    g.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
