//! Block execution cost: 1,000 transfers from distinct accounts, Ed25519
//! signature verification included, with batch verification (a block the
//! node has not seen), with one verification per transaction for
//! comparison, and with every transaction already decoded and verified
//! (the node's path for transactions its mempool holds).

use agora_proto::v1 as pb;
use agora_validator::crypto::AccountSecretKey;
use agora_validator::ledger::{BlockInfo, KnownTxs, Ledger, tx};
use agora_validator::types::{Address, ChainId};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;

const N: usize = 1000;
#[path = "support/bench_genesis.rs"]
mod bench_genesis;
use bench_genesis::CHAIN;

fn setup() -> (Ledger, Vec<pb::Transaction>, BlockInfo) {
    let keys: Vec<AccountSecretKey> = (0..N)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            seed[8] = 1;
            AccountSecretKey::from_seed(&seed)
        })
        .collect();
    let val = bench_genesis::validator_key();
    let genesis = bench_genesis::genesis(keys.iter().map(|k| Address::of_account(&k.public_key())));
    let ledger = Ledger::from_genesis(&genesis).expect("genesis");
    let chain = ChainId::new(CHAIN).expect("chain");
    let txs = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let to = Address::of_account(&keys[(i + 1) % N].public_key());
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
                let r: [u8; 32] = rng.random();
                (ledger.fork(), r)
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
            || ledger.fork(),
            |mut l| {
                // Decode and verify every signature on its own.
                l.begin_block(1, &info).expect("begin");
                for t in &txs {
                    assert!(l.deliver_tx(t).is_ok());
                }
                black_box(l.end_block().expect("end").app_hash)
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
    // The node's path for a block of transactions its mempool holds: the
    // decoded, verified form is looked up by hash, nothing is decoded again.
    let by_hash: std::collections::HashMap<_, _> = decoded.iter().map(|d| (d.hash, d)).collect();
    // And the hashes its body check computed.
    let hashes: Vec<_> = decoded.iter().map(|d| d.hash).collect();
    g.bench_function("block_1000_transfers_pre_decoded", |b| {
        b.iter_batched(
            || ledger.fork(),
            |mut l| {
                let res = l
                    .apply_block_with_decoded(
                        1,
                        &info,
                        &txs,
                        &[],
                        &[0; 32],
                        KnownTxs {
                            hashes: Some(&hashes),
                            decoded: &|h| by_hash.get(h).copied(),
                        },
                    )
                    .expect("block");
                assert!(res.receipts.iter().all(|x| x.is_ok()));
                black_box(res.end.app_hash)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("block_1000_transfers_execution_only", |b| {
        b.iter_batched(
            || ledger.fork(),
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
