//! Block execution cost: 1,000 transfers from distinct accounts, signature
//! verification included, with batch verification (the node's path) and
//! with one verification per transaction for comparison.

use agora_proto::v1 as pb;
use agora_validator::crypto::SecretKey;
use agora_validator::ledger::{BlockInfo, Ledger, tx};
use agora_validator::types::{Address, ChainId};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;

const N: usize = 1000;
const CHAIN: &str = "agora-bench";

fn setup() -> (Ledger, Vec<pb::Transaction>, BlockInfo) {
    let keys: Vec<SecretKey> = (0..N)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            seed[8] = 1;
            SecretKey::from_seed(&seed).expect("seed")
        })
        .collect();
    let val = SecretKey::from_seed(&[0xee; 32]).expect("seed");
    let mut accounts: Vec<pb::GenesisAccount> = keys
        .iter()
        .map(|k| pb::GenesisAccount {
            address: Address::of(&k.public_key()).0.to_vec(),
            balance: "1000000000".into(),
        })
        .collect();
    let op = Address::of(&val.public_key());
    accounts.push(pb::GenesisAccount {
        address: op.0.to_vec(),
        balance: "10000000".into(),
    });
    let genesis = pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: None,
        accounts,
        validators: vec![pb::GenesisValidator {
            operator: op.0.to_vec(),
            consensus_public_key: val.public_key().to_bytes().to_vec(),
            proof_of_possession: val.prove_possession().to_bytes().to_vec(),
            self_bond: "10000000".into(),
            commission_rate_bps: 1_000,
            commission_max_rate_bps: 2_000,
            commission_max_change_bps: 100,
        }],
    };
    let ledger = Ledger::from_genesis(&genesis).expect("genesis");
    let chain = ChainId::new(CHAIN).expect("chain");
    let txs = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let to = Address::of(&keys[(i + 1) % N].public_key());
            tx::sign(
                k,
                &chain,
                pb::TxBody {
                    chain_id: CHAIN.into(),
                    nonce: 0,
                    fee: "1000".into(),
                    kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                        to: to.0.to_vec(),
                        amount: "12345".into(),
                    })),
                },
            )
        })
        .collect();
    // Block 1 carries no certificate: the proposer takes the whole pool
    // (block reward and fees), commission included, so the reward path runs.
    let info = BlockInfo {
        proposer: Some(Address::of(&val.public_key())),
        last_commit_signers: None,
    };
    (ledger, txs, info)
}

fn bench(c: &mut Criterion) {
    let (ledger, txs, info) = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10);
    g.bench_function("block_1000_transfers_batch_verify", |b| {
        b.iter_batched(
            || {
                let r: Vec<u64> = (0..N).map(|_| rng.random_range(1..=u64::MAX)).collect();
                (ledger.clone(), r)
            },
            |(mut l, r)| {
                let res = l.apply_block(1, &info, &txs, &[], &r).expect("block");
                assert!(res.receipts.iter().all(|x| x.is_ok()));
                black_box(res.end.app_hash)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("block_1000_transfers_single_verify", |b| {
        b.iter_batched(
            || ledger.clone(),
            |mut l| {
                // No randomness: every signature is verified on its own.
                let res = l.apply_block(1, &info, &txs, &[], &[]).expect("block");
                assert!(res.receipts.iter().all(|x| x.is_ok()));
                black_box(res.end.app_hash)
            },
            BatchSize::LargeInput,
        )
    });
    // The state machine alone: transactions decoded and signatures taken as
    // verified, to separate execution (and the app hash) from cryptography.
    let chain = ChainId::new(CHAIN).expect("chain");
    let decoded: Vec<tx::DecodedTx> = txs
        .iter()
        .map(|t| tx::decode(&chain, t).expect("valid"))
        .collect();
    g.bench_function("block_1000_transfers_execution_only", |b| {
        b.iter_batched(
            || ledger.clone(),
            |mut l| {
                l.begin_block(1, &info).expect("begin");
                for d in &decoded {
                    assert!(l.deliver_decoded(d, true).is_ok());
                }
                black_box(l.end_block().expect("end").app_hash)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("decode_1000_transfers", |b| {
        b.iter(|| {
            txs.iter()
                .map(|t| tx::decode(&chain, t).map(|d| d.nonce))
                .filter(Result::is_ok)
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
