//! Property test of reward rounding (DESIGN §8: "rounding never creates
//! tokens"): no delegator is ever paid more than its pro-rata share of what
//! its validator's delegators were credited, nor less than that share minus
//! one token per settlement. The reference is computed here, independently
//! of the ledger's reward code.

mod common;

use agora_validator::ledger::{BlockInfo, Ledger};
use common::*;
use pb::tx_body::Kind;
use proptest::prelude::*;

// ---- (b) no delegator is paid more than its pro-rata share ----

#[derive(Debug, Clone)]
enum DelegatorOp {
    Nothing,
    Bond(u128),
    Withdraw,
}

fn delegator_op() -> impl Strategy<Value = DelegatorOp> {
    prop_oneof![
        2 => Just(DelegatorOp::Nothing),
        1 => (1..50 * UNIT).prop_map(DelegatorOp::Bond),
        2 => Just(DelegatorOp::Withdraw),
    ]
}

#[derive(Debug, Clone)]
struct RewardBlock {
    /// One op for each of the operator (0) and users 1..=3.
    ops: [DelegatorOp; 4],
    /// The fee a non-delegator pays this block.
    fee: u128,
    /// Whether the validator proposes and signs (else the pool has no recipient).
    paid: bool,
}

fn reward_block() -> impl Strategy<Value = RewardBlock> {
    (
        [
            delegator_op(),
            delegator_op(),
            delegator_op(),
            delegator_op(),
        ],
        0..2_000_000u128,
        prop_oneof![4 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(ops, fee, paid)| RewardBlock { ops, fee, paid })
}

/// What the validator's delegators are credited from a block's pool when
/// this one validator both proposes and signs: the proposer bonus and the
/// signers' part are two credits, and commission is taken from each
/// (rounded down each time), so the delegators' part can exceed
/// `pool − floor(pool · rate)` by one token. Block 1 carries no certificate:
/// the proposer takes the whole pool in one credit.
fn delegators_part(pool: u128, rate: u32, bonus_bps: u32, first_block: bool) -> u128 {
    let after_commission = |c: u128| c - c * u128::from(rate) / 10_000;
    if first_block {
        return after_commission(pool);
    }
    let bonus = pool * u128::from(bonus_bps) / 10_000;
    after_commission(bonus) + after_commission(pool - bonus)
}

fn run_pro_rata(
    reward: u128,
    rate: u32,
    initial: [u128; 3],
    blocks: Vec<RewardBlock>,
) -> Result<(), TestCaseError> {
    let g = genesis(
        pb::GenesisParams {
            min_fee: "0".into(),
            block_reward: reward.to_string(),
            ..Default::default()
        },
        (rate, 10_000, 0),
        1,
    );
    let mut l = Ledger::from_genesis(&g).map_err(fail)?;
    let v = val(0);
    let who: Vec<AccountSecretKey> = [101u8, 1, 2, 3].into_iter().map(acct).collect();
    let payer = acct(4);
    let (mut upper, mut lower, mut paid) = ([0u128; 4], [0u128; 4], [0u128; 4]);
    let mut credited = 0u128;
    let n = blocks.len();
    let last = RewardBlock {
        ops: std::array::from_fn(|_| DelegatorOp::Withdraw),
        fee: 0,
        paid: false,
    };
    let first_bonds = initial.map(DelegatorOp::Bond);
    for (b, blk) in blocks.into_iter().chain([last]).enumerate() {
        let h = l.height() + 1;
        let i = if blk.paid {
            info(&l, Some(v), 0)
        } else {
            BlockInfo::default()
        };
        l.begin_block(h, &i).map_err(fail)?;
        let ops: Vec<DelegatorOp> = if b == 0 {
            std::iter::once(blk.ops[0].clone())
                .chain(first_bonds.clone())
                .collect()
        } else {
            blk.ops.to_vec()
        };
        for (d, op) in ops.iter().enumerate() {
            let (kind, amount) = match op {
                DelegatorOp::Nothing => continue,
                DelegatorOp::Bond(a) => (
                    Kind::Bond(pb::Bond {
                        validator: v.0.to_vec(),
                        amount: a.to_string(),
                    }),
                    *a,
                ),
                DelegatorOp::Withdraw => (
                    Kind::WithdrawRewards(pb::WithdrawRewards {
                        validator: v.0.to_vec(),
                    }),
                    0,
                ),
            };
            let a = addr(&who[d]);
            let before = l.account(&a).balance;
            let r = l.deliver_tx(&sign(&who[d], l.account(&a).nonce, 0, kind));
            if r.is_ok() {
                paid[d] += l.account(&a).balance + amount - before;
            } else {
                prop_assert_eq!(l.account(&a).balance, before);
            }
        }
        let self_transfer = Kind::Transfer(pb::Transfer {
            to: addr(&payer).0.to_vec(),
            amount: "1".into(),
        });
        let t = sign(
            &payer,
            l.account(&addr(&payer)).nonce,
            blk.fee,
            self_transfer,
        );
        prop_assert!(l.deliver_tx(&t).is_ok());
        l.end_block().map_err(fail)?;
        // The reference: what block b gave this validator's delegators, and
        // each delegator's exact share of it by its shares after the block.
        if !blk.paid {
            continue;
        }
        let bonus_bps = l.params().proposer_bonus_bps;
        let part = delegators_part(reward + blk.fee, rate, bonus_bps, h == 1);
        credited += part;
        let total = l.validator(&v).ok_or_else(|| fail("validator"))?.shares;
        for (d, k) in who.iter().enumerate() {
            let s = l.delegation(&addr(k), &v).map_or(0, |x| x.shares);
            lower[d] += part * s / total;
            upper[d] += (part * s).div_ceil(total);
        }
    }
    for d in 0..4 {
        prop_assert!(
            paid[d] <= upper[d],
            "delegator {} paid {} > {}",
            d,
            paid[d],
            upper[d]
        );
        prop_assert!(
            paid[d] + n as u128 + 1 >= lower[d],
            "delegator {} paid {} < {} - {}",
            d,
            paid[d],
            lower[d],
            n + 1
        );
    }
    prop_assert!(paid.iter().sum::<u128>() <= credited);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_delegator_is_paid_more_than_its_pro_rata_share(
        reward in prop_oneof![Just(0u128), 0..10_000_000u128],
        rate in prop_oneof![Just(0u32), Just(10_000u32), 0..=10_000u32],
        initial in [1..500 * UNIT, 1..500 * UNIT, 1..500 * UNIT],
        blocks in prop::collection::vec(reward_block(), 1..16),
    ) {
        run_pro_rata(reward, rate, initial, blocks)?;
    }
}
