//! A full mempool's admission decisions: a cheap newcomer refused as
//! `Full` before its signature check, and a richer one that evicts the
//! cheapest tail. Both must stay cheap with many senders: a flood of
//! newcomers into a full pool is what a spammer sends.

use agora_node::mempool::{Admission, CheckMode, Mempool, MempoolConfig, TxChecker};
use agora_proto::v1::{Transaction, Transfer, TxBody, tx_body};
use agora_validator::Address;
use agora_validator::ledger::TxError;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Senders are named by the first four key bytes; every nonce is next.
struct Fresh;

impl TxChecker<()> for Fresh {
    fn check(&self, tx: &Transaction, _: &(), _: CheckMode) -> Result<Admission, TxError> {
        let mut a = [0u8; 20];
        a[..4].copy_from_slice(&tx.public_key[..4]);
        let malformed = |why: &str| TxError::Malformed(why.into());
        let body = tx.body.as_ref().ok_or_else(|| malformed("no body"))?;
        Ok(Admission {
            sender: Address(a),
            nonce: body.nonce,
            account_nonce: body.nonce,
            fee: body.fee.parse().map_err(|_| malformed("fee"))?,
            reads: None,
        })
    }
}

fn tx(sender: u32, fee: u128) -> Transaction {
    let mut key = vec![0u8; 32];
    key[..4].copy_from_slice(&sender.to_be_bytes());
    Transaction {
        body: Some(TxBody {
            chain_id: "bench".into(),
            nonce: 0,
            kind: Some(tx_body::Kind::Transfer(Transfer {
                to: vec![1; 20],
                amount: "1".into(),
            })),
            fee: fee.to_string(),
        }),
        public_key: key,
        signature: vec![0; 64],
    }
}

/// A pool at its default limit of 10,000 transactions, one per sender.
fn full_pool() -> Mempool<()> {
    let cfg = MempoolConfig::default();
    let mut m = Mempool::new(cfg);
    for s in 0..cfg.max_txs as u32 {
        m.add(tx(s, 1_000 + u128::from(s)), (), &Fresh).unwrap();
    }
    m
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mempool");
    let pool = full_pool();
    let cheap = tx(u32::MAX, 1);
    g.bench_function("full_pool_refuses_a_cheap_newcomer", |b| {
        b.iter(|| assert!(pool.precheck(&cheap).is_err()));
    });
    let mut pool = full_pool();
    let mut next = 1_000_000u32;
    g.bench_function("full_pool_evicts_for_a_richer_newcomer", |b| {
        b.iter_batched(
            || {
                next += 1;
                tx(next, 1_000_000 + u128::from(next))
            },
            |rich| {
                pool.add(rich, (), &Fresh).unwrap();
                pool.take_evicted();
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
