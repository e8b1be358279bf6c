//! CPU per height of the consensus core with 100 validators: every vote
//! verified on arrival versus lazy aggregate verification (one
//! FastAggregateVerify per quorum). Messages are signed once, outside the
//! measurement; each iteration is a fresh core deciding one height from a
//! proposal, 100 prevotes and 100 precommits.

use agora_proto::v1 as pb;
use agora_validator::block::header_hash;
use agora_validator::consensus::{
    Consensus, ConsensusConfig, HeightParams, Input, Output, VerifyMode,
};
use agora_validator::crypto::{SecretKey, ZERO_HASH, sha3_256, vrf};
use agora_validator::signing::{proposal_bytes, vote_bytes};
use agora_validator::{ChainId, Validator, ValidatorSet, VoteType, lottery};
use criterion::{Criterion, criterion_group, criterion_main};

const N: usize = 100;

struct Fixture {
    chain: ChainId,
    set: ValidatorSet,
    seed: [u8; 32],
    inputs: Vec<Input>,
}

fn fixture() -> Fixture {
    let chain = ChainId::new("bench").expect("chain id");
    let keys: Vec<SecretKey> = (0..N)
        .map(|i| SecretKey::from_seed(&sha3_256(&(i as u64).to_be_bytes())).expect("key"))
        .collect();
    let set = ValidatorSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| Validator::new(k.public_key(), 1 + (i as u64 % 7)))
            .collect(),
    )
    .expect("set");
    let key_of = |addr: &agora_validator::Address| {
        keys.iter()
            .find(|k| agora_validator::Address::of(&k.public_key()) == *addr)
            .expect("key of address")
    };
    let seed = sha3_256(b"bench seed");
    let proposer = lottery::proposer(&set, &seed, 1, 0).address;
    let pk = key_of(&proposer);
    let header = pb::Header {
        chain_id: chain.as_str().into(),
        height: 1,
        parent_hash: ZERO_HASH.to_vec(),
        proposer_address: proposer.0.to_vec(),
        vrf_proof: vrf::prove(pk, &chain, 1, &seed).to_bytes().to_vec(),
        ..Default::default()
    };
    let hash = header_hash(&header);
    let proposal = pb::Proposal {
        height: 1,
        round: 0,
        pol_round: -1,
        block: Some(pb::Block {
            header: Some(header),
            ..Default::default()
        }),
        proposer_address: proposer.0.to_vec(),
        signature: pk
            .sign(&proposal_bytes(&chain, 1, 0, -1, &hash))
            .to_bytes()
            .to_vec(),
    };
    let mut inputs = vec![
        Input::Proposal(proposal),
        Input::BlockValidity {
            height: 1,
            round: 0,
            block_hash: hash,
            valid: true,
        },
    ];
    for t in [VoteType::Prevote, VoteType::Precommit] {
        for v in set.validators() {
            let k = key_of(&v.address);
            inputs.push(Input::Vote(pb::Vote {
                vote_type: t as i32,
                height: 1,
                round: 0,
                block_hash: hash.to_vec(),
                validator_address: v.address.0.to_vec(),
                signature: k
                    .sign(&vote_bytes(&chain, t, 1, 0, &hash))
                    .to_bytes()
                    .to_vec(),
            }));
        }
    }
    Fixture {
        chain,
        set,
        seed,
        inputs,
    }
}

fn one_height(f: &Fixture, mode: VerifyMode) -> bool {
    let cfg = ConsensusConfig {
        verify_mode: mode,
        ..Default::default()
    };
    let mut c = Consensus::new(cfg, f.chain.clone(), None, None);
    c.handle(Input::StartHeight(Box::new(HeightParams {
        height: 1,
        validator_set: f.set.clone(),
        prev_seed: f.seed,
        parent_hash: ZERO_HASH,
        last_commit: None,
    })));
    let mut decided = false;
    for i in &f.inputs {
        decided |= c
            .handle(i.clone())
            .iter()
            .any(|o| matches!(o, Output::Decided(_)));
    }
    decided
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    assert!(one_height(&f, VerifyMode::PerVote));
    assert!(one_height(&f, VerifyMode::Aggregate));
    let mut g = c.benchmark_group("consensus_height_100_validators");
    g.sample_size(10);
    g.bench_function("per_vote_verification", |b| {
        b.iter(|| one_height(&f, VerifyMode::PerVote))
    });
    g.bench_function("aggregate_verification", |b| {
        b.iter(|| one_height(&f, VerifyMode::Aggregate))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
