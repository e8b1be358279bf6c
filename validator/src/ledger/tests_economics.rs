//! Unit tests of the economics of DESIGN §8 ("Rewards, fees, commission,
//! redelegation, downtime"): fees, block rewards, commission, F1 rewards
//! per share, and the snapshot of all of it. Redelegation and downtime are
//! tested through the public API in `tests/economics.rs`. Commission and
//! F1 are in `tests_economics/delegators.rs`, the snapshot in
//! `tests_economics/snapshot.rs`.

use super::test_keys::*;
use super::*;
use crate::crypto::{AccountSecretKey, SecretKey};
use crate::signing::vote_bytes;
use crate::types::VoteType;
use pb::tx_body::Kind;

mod delegator_counts;
mod delegators;
mod snapshot;

const UNIT: u128 = 1_000_000;
const FEE: u128 = params::DEFAULT_MIN_FEE;
const CHAIN: &str = "agora-econ";

fn val(i: u8) -> Address {
    addr(&consensus(i))
}
fn chain() -> ChainId {
    ChainId::new(CHAIN).expect("chain id")
}

/// Fees and rewards as the defaults, unbonding 10 heights.
fn base() -> pb::GenesisParams {
    pb::GenesisParams {
        unbonding_period: 10,
        jail_period: 5,
        ..Default::default()
    }
}

/// No fee and the given block reward, so every token movement is the rule under test.
fn reward_only(block_reward: u128) -> pb::GenesisParams {
    pb::GenesisParams {
        min_fee: "0".into(),
        block_reward: block_reward.to_string(),
        ..base()
    }
}

/// Users 1..=3 with 1000 units; validators 0..n self-bonding 10·(i+1)
/// units from operators holding 100 units, all with `commission`.
fn genesis(n: u8, params: pb::GenesisParams, commission: (u32, u32, u32)) -> pb::Genesis {
    let mut accounts: Vec<pb::GenesisAccount> = (1..=3)
        .map(|i| pb::GenesisAccount {
            address: addr(&user(i)).0.to_vec(),
            balance: (1000 * UNIT).to_string(),
        })
        .collect();
    let mut validators = Vec::new();
    for i in 0..n {
        accounts.push(pb::GenesisAccount {
            address: addr(&operator(i)).0.to_vec(),
            balance: (100 * UNIT).to_string(),
        });
        validators.push(pb::GenesisValidator {
            operator: addr(&operator(i)).0.to_vec(),
            consensus_public_key: consensus(i).public_key().to_bytes().to_vec(),
            proof_of_possession: consensus(i).prove_possession().to_bytes().to_vec(),
            self_bond: (10 * UNIT * (u128::from(i) + 1)).to_string(),
            commission_rate_bps: commission.0,
            commission_max_rate_bps: commission.1,
            commission_max_change_bps: commission.2,
        });
    }
    pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: Some(params),
        accounts,
        validators,
    }
}

fn ledger(n: u8, params: pb::GenesisParams, commission: (u32, u32, u32)) -> Ledger {
    Ledger::from_genesis(&genesis(n, params, commission)).expect("valid genesis")
}

fn tx_fee(k: &AccountSecretKey, nonce: u64, fee: u128, kind: Kind) -> pb::Transaction {
    tx::sign(
        k,
        &chain(),
        pb::TxBody {
            chain_id: CHAIN.into(),
            nonce,
            fee: fee.to_string(),
            kind: Some(kind),
        },
    )
}

/// A transaction paying the chain's `min_fee`, at the signer's next nonce plus `ahead`.
fn tx_at(l: &Ledger, k: &AccountSecretKey, ahead: u64, kind: Kind) -> pb::Transaction {
    let nonce = l.account(&addr(k)).nonce + ahead;
    tx_fee(k, nonce, l.params().min_fee, kind)
}

fn transfer(to: Address, amount: u128) -> Kind {
    Kind::Transfer(pb::Transfer {
        to: to.0.to_vec(),
        amount: amount.to_string(),
    })
}
fn bond(v: Address, amount: u128) -> Kind {
    Kind::Bond(pb::Bond {
        validator: v.0.to_vec(),
        amount: amount.to_string(),
    })
}
fn unbond(v: Address, shares: u128) -> Kind {
    Kind::Unbond(pb::Unbond {
        validator: v.0.to_vec(),
        shares: shares.to_string(),
    })
}
fn withdraw(v: Address) -> Kind {
    Kind::WithdrawRewards(pb::WithdrawRewards {
        validator: v.0.to_vec(),
    })
}
fn edit(v: Address, rate_bps: u32) -> Kind {
    Kind::EditValidator(pb::EditValidator {
        validator: v.0.to_vec(),
        commission_rate_bps: rate_bps,
    })
}
fn create(c: &SecretKey, self_bond: u128, (rate, max, change): (u32, u32, u32)) -> Kind {
    Kind::CreateValidator(pb::CreateValidator {
        consensus_public_key: c.public_key().to_bytes().to_vec(),
        proof_of_possession: c.prove_possession().to_bytes().to_vec(),
        self_bond: self_bond.to_string(),
        commission_rate_bps: rate,
        commission_max_rate_bps: max,
        commission_max_change_bps: change,
    })
}

/// The next block's information: `proposer`, and (from height 2) the
/// certificate of the previous height signed by every member of its set
/// except `absent`.
fn info(l: &Ledger, proposer: Option<Address>, absent: &[Address]) -> BlockInfo {
    let h = l.height() + 1;
    let bitmap = (h > 1).then(|| {
        let set = l.validator_set(h - 1).expect("set of h-1 kept");
        let mut bits = vec![0u8; set.len().div_ceil(8)];
        for (i, v) in set.validators().iter().enumerate() {
            if !absent.contains(&v.address) {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        bits
    });
    BlockInfo {
        proposer,
        last_commit_signers: bitmap,
    }
}

/// Executes the next block and checks the supply identity.
fn run(l: &mut Ledger, info: &BlockInfo, txs: &[pb::Transaction]) -> BlockResult {
    let h = l.height() + 1;
    let r = l
        .apply_block(h, info, txs, &[], &[h as u8; 32])
        .expect("block");
    let s = l.supply();
    assert!(s.balances_out(), "supply identity after block {h}: {s:?}");
    assert_eq!(
        l.total_supply() + l.slashed_total(),
        l.genesis_supply() + s.minted
    );
    r
}

/// [`run`] with [`info`].
fn step(
    l: &mut Ledger,
    proposer: Option<Address>,
    absent: &[Address],
    txs: &[pb::Transaction],
) -> BlockResult {
    let i = info(l, proposer, absent);
    run(l, &i, txs)
}

fn outstanding(l: &Ledger, v: Address) -> u128 {
    l.validator(&v).expect("validator").outstanding_rewards
}

fn outcome_err(r: &TxReceipt) -> (&'static str, &TxError) {
    match &r.outcome {
        TxOutcome::Failed(e) => ("failed", e),
        TxOutcome::Rejected(e) => ("rejected", e),
        TxOutcome::Ok => panic!("expected an error, got ok"),
    }
}

// ---- fees ----

#[test]
fn fee_below_min_is_refused_with_the_minimum_and_changes_nothing() {
    let mut l = ledger(1, base(), (0, 0, 0));
    let u = user(1);
    let low = tx_fee(&u, 0, FEE - 1, transfer(addr(&user(2)), 5));
    let err = l.check_tx(&low).expect_err("fee too low");
    assert_eq!(
        err,
        TxError::FeeTooLow {
            min: FEE,
            got: FEE - 1
        }
    );
    assert!(err.to_string().contains(&FEE.to_string()), "{err}");
    assert!(err.is_rejection());
    // Exactly the minimum is admitted.
    let exact = tx_fee(&u, 0, FEE, transfer(addr(&user(2)), 5));
    assert_eq!(l.check_tx(&exact).map(|c| c.fee), Ok(FEE));

    l.begin_block(1, &BlockInfo::default()).expect("begin");
    let before = (l.state_digest(), l.account(&addr(&u)));
    let r = l.deliver_tx(&low);
    assert_eq!(outcome_err(&r), ("rejected", &err));
    assert_eq!((l.state_digest(), l.account(&addr(&u))), before);
    let r = l.deliver_tx(&exact);
    assert!(r.is_ok(), "{}", r.log);
    let end = l.end_block().expect("end");
    assert_eq!(end.fees, FEE, "only the included transaction paid");
    assert_eq!(
        l.account(&addr(&u)),
        Account {
            balance: 1000 * UNIT - 5 - FEE,
            nonce: 1
        }
    );
}

#[test]
fn failing_transaction_pays_its_fee_and_consumes_its_nonce() {
    let mut l = ledger(1, base(), (0, 0, 0));
    let u = user(1);
    let unknown = Address([7; 20]);
    let r = run(
        &mut l,
        &BlockInfo::default(),
        &[tx_fee(&u, 0, 3 * FEE, bond(unknown, UNIT))],
    );
    assert_eq!(
        outcome_err(&r.receipts[0]),
        ("failed", &TxError::UnknownValidator(unknown))
    );
    assert_eq!(r.end.fees, 3 * FEE);
    assert_eq!(
        l.account(&addr(&u)),
        Account {
            balance: 1000 * UNIT - 3 * FEE,
            nonce: 1
        }
    );
}

#[test]
fn account_that_cannot_pay_the_fee_is_rejected_without_consuming_its_nonce() {
    let mut l = ledger(1, base(), (0, 0, 0));
    let (poor, rich) = (acct(50), acct(51));
    let txs = [
        tx_at(&l, &user(1), 0, transfer(addr(&poor), FEE - 1)),
        tx_at(&l, &user(1), 1, transfer(addr(&rich), FEE)),
    ];
    run(&mut l, &BlockInfo::default(), &txs);
    let t = tx_fee(&poor, 0, FEE, transfer(addr(&user(2)), 1));
    let want = TxError::CannotPayFee {
        fee: FEE,
        have: FEE - 1,
    };
    assert_eq!(l.check_tx(&t), Err(want.clone()));
    let r = run(&mut l, &BlockInfo::default(), &[t]);
    assert_eq!(outcome_err(&r.receipts[0]), ("rejected", &want));
    assert_eq!(r.end.fees, 0);
    assert_eq!(
        l.account(&addr(&poor)),
        Account {
            balance: FEE - 1,
            nonce: 0
        }
    );
    // Exactly the fee: included, pays it, and its transfer then fails.
    let r = run(
        &mut l,
        &BlockInfo::default(),
        &[tx_fee(&rich, 0, FEE, transfer(addr(&user(2)), 1))],
    );
    assert_eq!(
        outcome_err(&r.receipts[0]),
        ("failed", &TxError::InsufficientBalance { need: 1, have: 0 })
    );
    assert_eq!(
        l.account(&addr(&rich)),
        Account {
            balance: 0,
            nonce: 1
        }
    );
}

#[test]
fn fees_go_to_the_rewards_pool_not_destroyed() {
    let mut l = ledger(2, reward_only(0), (0, 0, 0));
    let fees = [FEE, FEE + 5, 7];
    let txs: Vec<_> = fees
        .iter()
        .enumerate()
        .map(|(i, f)| tx_fee(&user(1), i as u64, *f, transfer(addr(&user(2)), 1)))
        .collect();
    // min_fee is 0 here, so 7 is enough. Block 1: no certificate, all to the proposer.
    let r = step(&mut l, Some(val(1)), &[], &txs);
    let total: u128 = fees.iter().sum();
    assert_eq!(r.end.fees, total);
    assert_eq!(outstanding(&l, val(1)), total);
    assert_eq!(outstanding(&l, val(0)), 0);
    assert_eq!(l.rewards(&addr(&operator(1)), &val(1)), Some(total));
    assert_eq!(l.supply().minted, 0);
    assert_eq!(l.total_supply(), l.genesis_supply(), "nothing destroyed");
    assert_eq!(l.supply().community_pool, 0);
}

// ---- block rewards ----

const R: u128 = 1_000_003;

#[test]
fn block_1_gives_the_whole_pool_to_the_proposer() {
    let mut l = ledger(3, reward_only(R), (0, 0, 0));
    // A bitmap at height 1 would certify height 0: ignored.
    let odd = BlockInfo {
        proposer: Some(val(2)),
        last_commit_signers: Some(vec![0xff]),
    };
    run(&mut l, &odd, &[]);
    assert_eq!(outstanding(&l, val(2)), R);
    assert_eq!(outstanding(&l, val(0)) + outstanding(&l, val(1)), 0);
    assert_eq!(l.supply().community_pool, 0);
    assert_eq!(l.supply().minted, R);
}

#[test]
fn proposer_bonus_and_signers_pro_rata_with_remainder_to_the_community_pool() {
    let mut l = ledger(3, reward_only(R), (0, 0, 0));
    step(&mut l, Some(val(0)), &[], &[]);
    let before: Vec<u128> = (0..3).map(|i| outstanding(&l, val(i))).collect();
    let pool_before = l.supply().community_pool;
    // Block 2: proposer v1, powers 10/20/30 all signed.
    // bonus = floor(1000003·500/10000) = 50000; rest 950003 split 10:20:30.
    let r = step(&mut l, Some(val(1)), &[], &[]);
    let got: Vec<u128> = (0..3u8)
        .map(|i| outstanding(&l, val(i)) - before[usize::from(i)])
        .collect();
    assert_eq!(got, vec![158_333, 316_667 + 50_000, 475_001]);
    assert_eq!(l.supply().community_pool - pool_before, 2);
    assert_eq!(got.iter().sum::<u128>() + 2, R);
    // The block reports the same credits, the proposer's bonus last.
    assert_eq!(r.end.rewards.last(), Some(&(val(1), 50_000)));
    for i in 0..3u8 {
        let reported: u128 = r
            .end
            .rewards
            .iter()
            .filter(|(a, _)| *a == val(i))
            .map(|(_, x)| x)
            .sum();
        assert_eq!(reported, got[usize::from(i)]);
    }
}

#[test]
fn validator_missing_from_the_certificate_gets_nothing() {
    let mut l = ledger(3, reward_only(R), (0, 0, 0));
    step(&mut l, Some(val(2)), &[], &[]);
    let before: Vec<u128> = (0..3).map(|i| outstanding(&l, val(i))).collect();
    let pool_before = l.supply().community_pool;
    // v1 absent; v0 proposes: it gets the bonus and its share; v1 nothing.
    // rest 950003 split 10:30 → 237500 (.75), 712502 (.25): remainder 1.
    step(&mut l, Some(val(0)), &[val(1)], &[]);
    let got: Vec<u128> = (0..3u8)
        .map(|i| outstanding(&l, val(i)) - before[usize::from(i)])
        .collect();
    assert_eq!(got, vec![50_000 + 237_500, 0, 712_502]);
    assert_eq!(l.supply().community_pool - pool_before, 1);
    // A proposer absent from the certificate still gets exactly its bonus.
    let before: Vec<u128> = (0..3).map(|i| outstanding(&l, val(i))).collect();
    step(&mut l, Some(val(0)), &[val(0)], &[]);
    let got: Vec<u128> = (0..3u8)
        .map(|i| outstanding(&l, val(i)) - before[usize::from(i)])
        .collect();
    // rest split 20:30 → 380001 (.2), 570001 (.8).
    assert_eq!(got, vec![50_000, 380_001, 570_001]);
}

#[test]
fn zero_block_reward_mints_nothing_and_the_default_mints_one_unit() {
    let mut free = Ledger::from_genesis(&genesis(2, reward_only(0), (0, 0, 0))).expect("g");
    let mut paid = ledger(2, base(), (0, 0, 0));
    for _ in 0..3 {
        step(&mut free, Some(val(0)), &[], &[]);
        step(&mut paid, Some(val(0)), &[], &[]);
    }
    assert_eq!(free.supply().minted, 0);
    assert_eq!(free.total_supply(), free.genesis_supply());
    assert_eq!(outstanding(&free, val(0)) + outstanding(&free, val(1)), 0);
    assert_eq!(paid.supply().minted, 3 * params::DEFAULT_BLOCK_REWARD);
    // Without proposer or certificate the pool has no recipient.
    let pool = paid.supply().community_pool;
    run(&mut paid, &BlockInfo::default(), &[]);
    assert_eq!(
        paid.supply().community_pool - pool,
        params::DEFAULT_BLOCK_REWARD
    );
}
