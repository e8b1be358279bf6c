use super::*;
use agora_proto::v1::{Transfer, TxBody, tx_body};
use agora_validator::ledger::TxError;
use std::cell::RefCell;
use std::collections::HashMap;

/// A fake ledger: senders are identified by the first public-key byte,
/// nonces and "valid" flags come from a table the test mutates.
struct FakeLedger {
    nonces: RefCell<HashMap<u8, u64>>,
    banned: RefCell<HashSet<u8>>,
    checks: RefCell<usize>,
    /// Senders whose transactions read only their own account and
    /// `recipient(who)` (transfers); the others read more (staking).
    transfers: RefCell<HashSet<u8>>,
}

/// The recipient of a fake transfer by `who`.
fn recipient(who: u8) -> Address {
    Address([who ^ 0x80; 20])
}

impl FakeLedger {
    fn new() -> Self {
        Self {
            nonces: RefCell::new(HashMap::new()),
            banned: RefCell::new(HashSet::new()),
            checks: RefCell::new(0),
            transfers: RefCell::new(HashSet::new()),
        }
    }
}

impl TxChecker<()> for FakeLedger {
    fn check(&self, tx: &Transaction, _: &(), _mode: CheckMode) -> Result<Admission, TxError> {
        *self.checks.borrow_mut() += 1;
        let who = tx.public_key[0];
        if self.banned.borrow().contains(&who) {
            return Err(TxError::InsufficientBalance { need: 1, have: 0 });
        }
        let body = tx
            .body
            .as_ref()
            .ok_or_else(|| TxError::Malformed("no body".into()))?;
        Ok(Admission {
            sender: Address([who; 20]),
            nonce: body.nonce,
            account_nonce: self.nonces.borrow().get(&who).copied().unwrap_or(0),
            fee: body.fee.parse().unwrap_or(0),
            reads: self
                .transfers
                .borrow()
                .contains(&who)
                .then(|| [Address([who; 20]), recipient(who)]),
        })
    }
}

fn tx(who: u8, nonce: u64, pad: usize) -> Transaction {
    fee_tx(who, nonce, pad, 1_000)
}

fn fee_tx(who: u8, nonce: u64, pad: usize, fee: u128) -> Transaction {
    Transaction {
        body: Some(TxBody {
            chain_id: "t".into(),
            nonce,
            kind: Some(tx_body::Kind::Transfer(Transfer {
                to: vec![0; pad],
                amount: "1".into(),
            })),
            fee: fee.to_string(),
        }),
        public_key: vec![who; 48],
        signature: vec![0; 96],
    }
}

fn fee_of(t: &Transaction) -> u128 {
    t.body.as_ref().map_or(0, |b| b.fee.parse().unwrap_or(0))
}

#[test]
fn reap_orders_by_fee_per_byte_keeping_each_senders_nonce_order() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig::default());
    m.add(fee_tx(1, 0, 20, 100), (), &l).unwrap();
    m.add(fee_tx(1, 1, 20, 9_000), (), &l).unwrap();
    m.add(fee_tx(2, 0, 20, 5_000), (), &l).unwrap();
    // Same fee, much larger: a lower rate than sender 2's.
    m.add(fee_tx(3, 0, 2_000, 5_000), (), &l).unwrap();
    let order: Vec<(u8, u64)> = m
        .reap(usize::MAX, 10)
        .iter()
        .map(|t| (t.public_key[0], t.body.as_ref().unwrap().nonce))
        .collect();
    // Sender 1's rich nonce 1 must wait for its cheap nonce 0.
    assert_eq!(order, vec![(2, 0), (3, 0), (1, 0), (1, 1)]);
    let fees: Vec<u128> = m.reap(usize::MAX, 2).iter().map(fee_of).collect();
    assert_eq!(fees, vec![5_000, 5_000]);
}

#[test]
fn full_pool_evicts_the_cheapest_tail_for_a_better_fee_and_refuses_a_worse_one() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig {
        max_txs: 3,
        max_bytes: 1_000_000,
        max_tx_bytes: 1_000,
    });
    let cheap_head = m.add(fee_tx(1, 0, 20, 10), (), &l).unwrap();
    let cheap_tail = m.add(fee_tx(1, 1, 20, 50), (), &l).unwrap();
    let mid = m.add(fee_tx(2, 0, 20, 2_000), (), &l).unwrap();
    // Paying less per byte than every evictable tail: refused before any check.
    let checks = *l.checks.borrow();
    assert!(matches!(
        m.precheck(&fee_tx(3, 0, 20, 20)),
        Err(MempoolError::Full { .. })
    ));
    assert!(matches!(
        m.add(fee_tx(3, 0, 20, 20), (), &l),
        Err(MempoolError::Full { .. })
    ));
    assert_eq!(*l.checks.borrow(), checks, "refused before the checker");
    // Paying more: evicts sender 1's tail (nonce 1), never its head,
    // which would leave a gap.
    m.add(fee_tx(3, 0, 20, 3_000), (), &l).unwrap();
    assert!(m.contains(&cheap_head) && m.contains(&mid));
    assert!(!m.contains(&cheap_tail));
    assert_eq!(m.take_evicted(), vec![cheap_tail]);
    assert!(m.take_evicted().is_empty());
    assert_eq!(m.len(), 3);
    // A sender never evicts its own queue to make room.
    assert!(matches!(
        m.add(fee_tx(3, 1, 20, 1), (), &l),
        Err(MempoolError::Full { .. })
    ));
}

#[test]
fn dedup_nonce_rules_and_limits() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig {
        max_txs: 3,
        max_bytes: 1_000_000,
        max_tx_bytes: 1_000,
    });
    m.add(tx(1, 0, 20), (), &l).unwrap();
    assert_eq!(m.add(tx(1, 0, 20), (), &l), Err(MempoolError::Duplicate));
    assert_eq!(
        m.add(tx(1, 0, 21), (), &l),
        Err(MempoolError::NonceTaken { got: 0, next: 1 })
    );
    assert_eq!(
        m.add(tx(1, 2, 20), (), &l),
        Err(MempoolError::NonceGap {
            got: 2,
            expected: 1
        })
    );
    l.nonces.borrow_mut().insert(2, 5);
    assert_eq!(
        m.add(tx(2, 4, 20), (), &l),
        Err(MempoolError::NonceTooLow { got: 4, next: 5 })
    );
    m.add(tx(2, 5, 20), (), &l).unwrap();
    m.add(tx(1, 1, 20), (), &l).unwrap();
    // Full, and the newcomer pays less per byte than anything pending.
    assert!(matches!(
        m.add(fee_tx(3, 0, 20, 1), (), &l),
        Err(MempoolError::Full { .. })
    ));
    assert!(matches!(
        m.add(tx(3, 0, 2_000), (), &l),
        Err(MempoolError::TooLarge { .. })
    ));
    assert_eq!(m.len(), 3);
    let total: usize = [tx(1, 0, 20), tx(2, 5, 20), tx(1, 1, 20)]
        .iter()
        .map(|t| t.encoded_len())
        .sum();
    assert_eq!(m.bytes(), total);
}

#[test]
fn byte_limit_and_cheap_checks_first() {
    let l = FakeLedger::new();
    let one = tx(1, 0, 100).encoded_len();
    let mut m = Mempool::<()>::new(MempoolConfig {
        max_txs: 100,
        max_bytes: one * 2 + 10, // nonce 1 encodes 2 bytes longer than nonce 0
        max_tx_bytes: 10_000,
    });
    m.add(tx(1, 0, 100), (), &l).unwrap();
    m.add(tx(1, 1, 100), (), &l).unwrap();
    let before = *l.checks.borrow();
    assert!(matches!(
        m.add(fee_tx(2, 0, 100, 1), (), &l),
        Err(MempoolError::Full { .. })
    ));
    assert_eq!(m.add(tx(1, 0, 100), (), &l), Err(MempoolError::Duplicate));
    assert_eq!(
        *l.checks.borrow(),
        before,
        "the checker is not run for rejects it cannot change"
    );
}

#[test]
fn reap_respects_bytes_count_and_sender_order() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig::default());
    m.add(tx(1, 0, 10), (), &l).unwrap();
    m.add(tx(2, 0, 10), (), &l).unwrap();
    m.add(tx(1, 1, 500), (), &l).unwrap(); // big
    m.add(tx(1, 2, 10), (), &l).unwrap(); // must not be reaped without nonce 1
    m.add(tx(3, 0, 10), (), &l).unwrap();
    let small = block_cost(tx(1, 0, 10).encoded_len());
    let got = m.reap(small * 3, 100);
    let ids: Vec<(u8, u64)> = got
        .iter()
        .map(|t| (t.public_key[0], t.body.as_ref().unwrap().nonce))
        .collect();
    assert_eq!(ids, vec![(1, 0), (2, 0), (3, 0)]);
    let total: usize = got.iter().map(|t| block_cost(t.encoded_len())).sum();
    assert!(total <= small * 3);
    assert_eq!(m.reap(usize::MAX, 2).len(), 2);
    let all = m.reap(usize::MAX, usize::MAX);
    assert_eq!(all.len(), 5);
    // Encoded as a block's txs, the cost is exact.
    let b = agora_proto::v1::Block {
        txs: all.clone(),
        ..Default::default()
    };
    let cost: usize = all.iter().map(|t| block_cost(t.encoded_len())).sum();
    assert_eq!(b.encoded_len(), cost);
}

#[test]
fn update_removes_included_and_invalidated() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig::default());
    let a0 = m.add(tx(1, 0, 10), (), &l).unwrap();
    let a1 = m.add(tx(1, 1, 10), (), &l).unwrap();
    let a2 = m.add(tx(1, 2, 10), (), &l).unwrap();
    let b0 = m.add(tx(2, 0, 10), (), &l).unwrap();
    let b1 = m.add(tx(2, 1, 10), (), &l).unwrap();
    let c0 = m.add(tx(3, 0, 10), (), &l).unwrap();
    // Block includes a0; sender 1 now at nonce 1. Sender 2 went broke.
    l.nonces.borrow_mut().insert(1, 1);
    l.banned.borrow_mut().insert(2);
    let dropped = m.update(&[a0], Changed::Everything, &l);
    let mut dropped_hashes: Vec<Hash> = dropped.iter().map(|(h, _)| *h).collect();
    dropped_hashes.sort();
    let mut want = vec![b0, b1];
    want.sort();
    assert_eq!(dropped_hashes, want);
    assert!(dropped.iter().all(|(_, r)| r.contains("balance")));
    assert!(!m.contains(&a0));
    assert!(m.contains(&a1) && m.contains(&a2) && m.contains(&c0));
    // Sender 3's nonce 0 got used elsewhere (another node's block): dropped.
    l.nonces.borrow_mut().insert(3, 1);
    let dropped = m.update(&[], Changed::Everything, &l);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].0, c0);
    assert_eq!(m.len(), 2);
    assert_eq!(m.bytes(), 2 * tx(1, 1, 10).encoded_len());
    // Then a new tx from sender 1 continues after the pending ones.
    m.add(tx(1, 3, 10), (), &l).unwrap();
}

/// The published next nonces follow every change of a sender's queue:
/// admission, eviction by a better-paying newcomer, inclusion in a block
/// and a drop by the re-check; only the senders changed are reported.
#[test]
fn next_nonces_follow_admission_eviction_inclusion_and_drops() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig {
        max_txs: 4,
        max_bytes: 1_000_000,
        max_tx_bytes: 1_000,
    });
    let sorted = |mut v: Vec<(Address, Option<u64>)>| {
        v.sort();
        v
    };
    let (one, two, three) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
    let a0 = m.add(fee_tx(1, 0, 20, 5_000), (), &l).unwrap();
    m.add(fee_tx(1, 1, 20, 5_000), (), &l).unwrap();
    m.add(fee_tx(2, 0, 20, 10), (), &l).unwrap();
    assert_eq!(m.next_nonce(&one), Some(2));
    assert_eq!(m.next_nonce(&three), None);
    assert_eq!(
        sorted(m.take_next_nonces()),
        vec![(one, Some(2)), (two, Some(1))]
    );
    assert!(m.take_next_nonces().is_empty(), "drained");
    // Sender 2's only transaction is evicted: its entry is withdrawn.
    m.add(fee_tx(3, 0, 20, 5_000), (), &l).unwrap();
    m.add(fee_tx(3, 1, 20, 5_000), (), &l).unwrap();
    assert_eq!(m.next_nonce(&two), None);
    assert_eq!(
        sorted(m.take_next_nonces()),
        vec![(two, None), (three, Some(2))]
    );
    // A block includes sender 1's nonce 0 and sender 3 goes broke.
    l.nonces.borrow_mut().insert(1, 1);
    l.banned.borrow_mut().insert(3);
    m.update(&[a0], Changed::Everything, &l);
    assert_eq!(
        sorted(m.take_next_nonces()),
        vec![(one, Some(2)), (three, None)]
    );
}

/// After a commit only senders whose inputs changed are re-checked: one
/// with a transaction included, one whose transfer reads a changed
/// account, and any whose transactions read more than accounts. A sender
/// whose inputs did not change keeps its verdicts; the negative control
/// re-checks everything and drops the sender the fake ledger turned
/// invalid behind the scope's back, showing the scope is what kept it.
#[test]
fn update_rechecks_only_senders_whose_inputs_changed() {
    let l = FakeLedger::new();
    l.transfers.borrow_mut().extend([1, 2, 3]);
    let mut m = Mempool::<()>::new(MempoolConfig::default());
    let a0 = m.add(tx(1, 0, 10), (), &l).unwrap();
    let a1 = m.add(tx(1, 1, 10), (), &l).unwrap();
    let b0 = m.add(tx(2, 0, 10), (), &l).unwrap();
    let c0 = m.add(tx(3, 0, 10), (), &l).unwrap();
    let d0 = m.add(tx(4, 0, 10), (), &l).unwrap();
    let e0 = m.add(tx(5, 0, 10), (), &l).unwrap();
    l.transfers.borrow_mut().insert(5);
    // Sender 5 was admitted as reading more (staking): stays re-checked.
    *l.checks.borrow_mut() = 0;
    // The block included a0 and changed sender 2's recipient; sender 3
    // turned invalid in the fake without any change the scope sees.
    l.nonces.borrow_mut().insert(1, 1);
    l.banned.borrow_mut().insert(3);
    let changed: HashSet<Address> = [Address([1; 20]), recipient(2)].into();
    let dropped = m.update(&[a0], Changed::Accounts(&changed), &l);
    assert!(dropped.is_empty(), "{dropped:?}");
    // a1 (sender 1 had one included), b0 (its recipient changed), d0 and e0
    // (read more than accounts); not c0.
    assert_eq!(*l.checks.borrow(), 4);
    assert!(!m.contains(&a0));
    assert!([a1, b0, c0, d0, e0].iter().all(|h| m.contains(h)));
    let dropped = m.update(&[], Changed::Everything, &l);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].0, c0);
}

/// A peer's copy is dropped unhashed when a pending transaction has its
/// account key and nonce (the same transaction, or one admission would
/// refuse as `NonceTaken`), and no longer once that one left the pool.
#[test]
fn holds_nonce_names_pending_key_and_nonce_pairs() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig::default());
    let ed = |who: u8, nonce: u64, amount: &str| {
        let mut t = tx(who, nonce, 10);
        t.public_key = vec![who; 32];
        if let Some(tx_body::Kind::Transfer(x)) = t.body.as_mut().and_then(|b| b.kind.as_mut()) {
            x.amount = amount.into();
        }
        t
    };
    let a0 = m.add(ed(1, 0, "1"), (), &l).unwrap();
    m.add(ed(1, 1, "1"), (), &l).unwrap();
    assert!(m.holds_nonce(&ed(1, 0, "1")), "the same transaction");
    assert!(m.holds_nonce(&ed(1, 0, "2")), "another with its nonce");
    assert_eq!(
        m.add(ed(1, 0, "2"), (), &l),
        Err(MempoolError::NonceTaken { got: 0, next: 2 }),
        "which admission refuses"
    );
    assert!(!m.holds_nonce(&ed(1, 2, "1")) && !m.holds_nonce(&ed(2, 0, "1")));
    l.nonces.borrow_mut().insert(1, 1);
    m.update(&[a0], Changed::Everything, &l);
    assert!(!m.holds_nonce(&ed(1, 0, "1")) && m.holds_nonce(&ed(1, 1, "1")));
    // A key that is not 32 bytes is never indexed.
    m.add(tx(3, 0, 10), (), &l).unwrap();
    assert!(!m.holds_nonce(&tx(3, 0, 10)));
}

/// Decode once: the pool keeps what the host decoded each transaction
/// to, hands exactly that to the checker at admission and at every
/// re-check, and gives it back by hash for block execution.
#[test]
fn keeps_the_decoded_form_and_rechecks_with_it() {
    let decodes = RefCell::new(0usize);
    // The host's decoding: a stand-in for DecodedTx (sender, nonce).
    let decode = |t: &Transaction| {
        *decodes.borrow_mut() += 1;
        (t.public_key[0], t.body.as_ref().unwrap().nonce)
    };
    let account_nonce = RefCell::new(0u64);
    let rechecks = RefCell::new(0usize);
    let checker = |_tx: &Transaction, d: &(u8, u64), mode: CheckMode| {
        if mode == CheckMode::Recheck {
            *rechecks.borrow_mut() += 1;
        }
        Ok(Admission {
            sender: Address([d.0; 20]),
            nonce: d.1,
            account_nonce: *account_nonce.borrow(),
            fee: 1_000,
            reads: None,
        })
    };
    let mut m = Mempool::new(MempoolConfig::default());
    let txs: Vec<Transaction> = (0..3).map(|n| tx(1, n, 10)).collect();
    let hashes: Vec<Hash> = txs
        .iter()
        .map(|t| m.add(t.clone(), decode(t), &checker).unwrap())
        .collect();
    assert_eq!(*decodes.borrow(), 3);
    assert_eq!(m.decoded(&hashes[1]), Some(&(1, 1)));
    *account_nonce.borrow_mut() = 1;
    assert!(
        m.update(&hashes[..1], Changed::Everything, &checker)
            .is_empty()
    );
    m.update(&[], Changed::Everything, &checker);
    assert_eq!(*rechecks.borrow(), 4, "two re-checks of the two left");
    assert_eq!(*decodes.borrow(), 3, "re-checks never decode");
    assert_eq!(m.decoded(&hashes[0]), None);
    assert_eq!(m.decoded(&hashes[2]), Some(&(1, 2)));
}

/// The cheapest tail found by scanning every sender (the index's reference).
fn cheapest_tail_by_scan<D>(m: &Mempool<D>, except: Option<Address>) -> Option<(u64, FeeRate)> {
    m.by_sender
        .iter()
        .filter(|(s, _)| Some(**s) != except)
        .filter_map(|(_, nonces)| nonces.last_key_value().map(|(_, seq)| *seq))
        .filter_map(|seq| m.by_seq.get(&seq).map(|e| (seq, e.rate(seq))))
        .min_by(|a, b| a.1.cmp(&b.1))
}

/// The victims found by re-scanning every sender after each pick.
fn victims_by_scan<D>(
    m: &Mempool<D>,
    size: usize,
    rate: FeeRate,
    sender: Address,
) -> Option<Vec<u64>> {
    let mut victims = Vec::new();
    let (mut txs, mut bytes) = (m.len(), m.bytes);
    let mut skip: HashSet<u64> = HashSet::new();
    while txs >= m.cfg.max_txs || bytes + size > m.cfg.max_bytes {
        let pick = m
            .by_sender
            .iter()
            .filter(|(s, _)| **s != sender)
            .filter_map(|(_, n)| n.values().rev().find(|s| !skip.contains(s)).copied())
            .filter_map(|seq| m.by_seq.get(&seq).map(|e| (seq, e.rate(seq))))
            .min_by(|a, b| a.1.cmp(&b.1));
        let (seq, _) = pick.filter(|(_, r)| r.cmp_rate(&rate).is_lt())?;
        skip.insert(seq);
        txs -= 1;
        bytes -= m.by_seq[&seq].size;
        victims.push(seq);
    }
    Some(victims)
}

/// Random admissions into a small full pool, commits and re-check drops:
/// after every step the index names the tail a scan of every sender
/// names, and the victims it picks for a newcomer are the scan's.
#[test]
fn the_tail_index_agrees_with_a_scan_of_every_sender() {
    let l = FakeLedger::new();
    let mut m = Mempool::<()>::new(MempoolConfig {
        max_txs: 24,
        max_bytes: 6_000,
        max_tx_bytes: 1_000,
    });
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x1234_5678);
    let mut rnd = move |n: u64| rand::Rng::random_range(&mut rng, 0..n);
    let (mut evictions, mut refusals) = (0, 0);
    for step in 0..3_000 {
        match rnd(10) {
            0 => {
                // A commit includes some senders' first transactions.
                let firsts: Vec<Hash> = m
                    .by_sender
                    .values()
                    .filter_map(|n| n.values().next())
                    .filter(|_| rnd(2) == 0)
                    .map(|seq| m.by_seq[seq].hash)
                    .collect();
                for h in &firsts {
                    let e = &m.by_seq[&m.by_hash[h]];
                    l.nonces
                        .borrow_mut()
                        .insert(e.tx.public_key[0], e.nonce + 1);
                }
                m.update(&firsts, Changed::Everything, &l);
            }
            1 => {
                // A sender goes broke: its whole queue is dropped.
                let who = rnd(12) as u8;
                l.banned.borrow_mut().insert(who);
                m.update(&[], Changed::Everything, &l);
                l.banned.borrow_mut().remove(&who);
            }
            _ => {
                let who = rnd(12) as u8;
                let account = l.nonces.borrow().get(&who).copied().unwrap_or(0);
                let pending = m
                    .by_sender
                    .get(&Address([who; 20]))
                    .and_then(|n| n.last_key_value())
                    .map(|(n, _)| n + 1);
                let nonce = pending.unwrap_or(account).max(account);
                let t = fee_tx(
                    who,
                    nonce,
                    rnd(200) as usize,
                    1 + u128::from(rnd(5_000) as u32),
                );
                let size = t.encoded_len();
                let rate = FeeRate::of_tx(&t, size, m.next_seq);
                let expected = (!m.has_room(size))
                    .then(|| victims_by_scan(&m, size, rate, Address([who; 20])));
                let found =
                    (!m.has_room(size)).then(|| m.victims(size, rate, Address([who; 20])).ok());
                assert_eq!(found, expected, "victims at step {step}");
                match m.add(t, (), &l) {
                    Ok(_) if expected.as_ref().is_some_and(|v| v.is_some()) => evictions += 1,
                    Err(MempoolError::Full { .. }) => refusals += 1,
                    _ => {}
                }
                m.take_evicted();
            }
        }
        assert_eq!(m.tails.len(), m.by_sender.len(), "one tail per sender");
        for except in [None, Some(Address([3; 20]))] {
            assert_eq!(
                m.cheapest_tail(except),
                cheapest_tail_by_scan(&m, except),
                "cheapest tail at step {step}"
            );
        }
    }
    assert!(
        evictions > 50 && refusals > 50,
        "{evictions} evictions, {refusals} refusals"
    );
}
