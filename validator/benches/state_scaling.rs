//! Block execution against a small and a large state (issue 13's target:
//! 1,000 transfers with 1 M accounts in the state cost at most 2× the same
//! block with 1 k). Transactions are pre-decoded and their signatures taken
//! as verified, so what is measured is the state machine and the app hash
//! (the Merkle tree update), not cryptography, which does not depend on the
//! state's size. Blocks run one after another on one ledger, each from the
//! same 1,000 senders (next nonce) to recipients spread over the state.
//!
//! `AGORA_BENCH_BIG_STATE` sets the large state's account count (default
//! 1,000,000; building it takes a while and ~1 GB).
//!
//! Measured in the steady state: [`PROVABLE_VERSIONS`] blocks run first.
//! Until the tree's window of versions is full nothing is pruned, so every
//! block's new nodes take fresh pages from the kernel (zeroed on first
//! touch); a running node is past that after its first 128 blocks.
//! Measured from the start, the 1 M-account block varied between 14.5
//! and 23.5 ms within one run (session 45).

use agora_proto::v1 as pb;
use agora_validator::crypto::AccountSecretKey;
use agora_validator::ledger::merkle::PROVABLE_VERSIONS;
use agora_validator::ledger::{BlockInfo, Ledger, tx};
use agora_validator::types::{Address, ChainId};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;
use std::time::Instant;

/// The `agora` binary's allocator: the tree's rewritten nodes are
/// allocated per block, so the allocator is part of what is measured.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SENDERS: usize = 1000;
#[path = "support/bench_genesis.rs"]
mod bench_genesis;
use bench_genesis::CHAIN;

struct Setup {
    ledger: Ledger,
    senders: Vec<AccountSecretKey>,
    /// Every account address (senders first), for recipients.
    addresses: Vec<Address>,
    chain: ChainId,
    height: u64,
    rng: ChaCha20Rng,
}

fn setup(total: usize) -> Setup {
    let senders: Vec<AccountSecretKey> = (0..SENDERS)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            seed[8] = 2;
            AccountSecretKey::from_seed(&seed)
        })
        .collect();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let mut addresses: Vec<Address> = senders
        .iter()
        .map(|k| Address::of_account(&k.public_key()))
        .collect();
    // With the operator's account, `total` accounts in all.
    addresses.extend((SENDERS..total.saturating_sub(1)).map(|_| Address(rng.random())));
    let genesis = bench_genesis::genesis(addresses.iter().copied());
    let t0 = Instant::now();
    let ledger = Ledger::from_genesis(&genesis).expect("genesis");
    eprintln!(
        "{total} accounts: genesis ledger and tree built in {:?}",
        t0.elapsed()
    );
    Setup {
        ledger,
        senders,
        addresses,
        chain: ChainId::new(CHAIN).expect("chain"),
        height: 0,
        rng,
    }
}

impl Setup {
    /// Executes one block of `decoded` transfers; returns its app hash.
    fn run_block(&mut self, info: &BlockInfo, decoded: &[tx::DecodedTx]) -> agora_validator::Hash {
        let h = self.ledger.height() + 1;
        self.ledger.begin_block(h, info).expect("begin");
        for d in decoded {
            assert!(self.ledger.deliver_decoded(d, true).is_ok());
        }
        self.ledger.end_block().expect("end").app_hash
    }

    /// The next block's transfers, decoded (signing is not measured).
    fn next_block(&mut self) -> Vec<tx::DecodedTx> {
        let nonce = self.height;
        self.height += 1;
        let n = self.addresses.len();
        self.senders
            .iter()
            .map(|k| {
                let to = self.addresses[self.rng.random_range(0..n)];
                let t = tx::sign(
                    k,
                    &self.chain,
                    pb::TxBody {
                        chain_id: CHAIN.into(),
                        nonce,
                        fee: "1000".into(),
                        kind: Some(pb::tx_body::Kind::Transfer(pb::Transfer {
                            to: to.0.to_vec(),
                            amount: "12345".into(),
                        })),
                    },
                );
                tx::decode(&self.chain, &t).expect("valid")
            })
            .collect()
    }
}

fn bench(c: &mut Criterion) {
    let big: usize = std::env::var("AGORA_BENCH_BIG_STATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut g = c.benchmark_group("state_scaling");
    g.sample_size(10);
    for total in [SENDERS, big] {
        let mut s = setup(total);
        let info = BlockInfo::default();
        for _ in 0..PROVABLE_VERSIONS {
            let decoded = s.next_block();
            s.run_block(&info, &decoded);
        }
        g.bench_function(format!("block_1000_transfers_{total}_accounts"), |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let decoded = s.next_block();
                    let t0 = Instant::now();
                    black_box(s.run_block(&info, &decoded));
                    spent += t0.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
