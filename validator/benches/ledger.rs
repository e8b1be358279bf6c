//! Block execution cost: 1,000 transfers from distinct accounts, signature
//! verification included, with batch verification (the node's path) and
//! with one verification per transaction for comparison.

use agora_proto::v1 as pb;
use agora_validator::crypto::SecretKey;
use agora_validator::ledger::{Ledger, tx};
use agora_validator::types::{Address, ChainId};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;

const N: usize = 1000;
const CHAIN: &str = "agora-bench";

fn setup() -> (Ledger, Vec<pb::Transaction>) {
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
                    kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                        to: to.0.to_vec(),
                        amount: "12345".into(),
                    })),
                },
            )
        })
        .collect();
    (ledger, txs)
}

fn bench(c: &mut Criterion) {
    let (ledger, txs) = setup();
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
                let res = l.apply_block(1, &txs, &[], &r).expect("block");
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
                let res = l.apply_block(1, &txs, &[], &[]).expect("block");
                assert!(res.receipts.iter().all(|x| x.is_ok()));
                black_box(res.end.app_hash)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
