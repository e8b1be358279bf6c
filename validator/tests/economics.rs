//! Redelegation and downtime (DESIGN §8, "Rewards, fees, commission,
//! redelegation, downtime") through the ledger's public API, each rule at
//! its boundaries.

use agora_proto::v1 as pb;
use agora_validator::crypto::{AccountSecretKey, Hash, SecretKey};
use agora_validator::ledger::{
    BlockInfo, BlockResult, JailReason, Ledger, SlashReason, TxError, TxOutcome, TxReceipt, tx,
};
use agora_validator::signing::vote_bytes;
use agora_validator::types::HasAddress;
use agora_validator::types::{Address, ChainId, Height, VoteType};
use pb::tx_body::Kind;

const UNIT: u128 = 1_000_000;
const CHAIN: &str = "agora-econ";
const UNBONDING: u64 = 10;

fn sk(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
}
fn acct(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[i; 32])
}
fn user(i: u8) -> AccountSecretKey {
    acct(i)
}
fn operator(i: u8) -> AccountSecretKey {
    acct(100 + i)
}
fn consensus(i: u8) -> SecretKey {
    sk(200 + i)
}
fn addr(k: &impl HasAddress) -> Address {
    k.address()
}
fn val(i: u8) -> Address {
    addr(&consensus(i))
}
fn chain() -> ChainId {
    ChainId::new(CHAIN).expect("chain id")
}

/// No fee and no block reward unless `params` say otherwise: balances and
/// stake move only by the rule under test.
fn params() -> pb::GenesisParams {
    pb::GenesisParams {
        unbonding_period: UNBONDING,
        jail_period: 5,
        min_fee: "0".into(),
        block_reward: "0".into(),
        ..Default::default()
    }
}

/// Users 1..=3 with 1000 units; validators 0..3 self-bonding 10, 20, 30 units.
fn ledger(params: pb::GenesisParams) -> Ledger {
    let mut accounts: Vec<pb::GenesisAccount> = (1..=3)
        .map(|i| pb::GenesisAccount {
            address: addr(&user(i)).0.to_vec(),
            balance: (1000 * UNIT).to_string(),
        })
        .collect();
    let mut validators = Vec::new();
    for i in 0..3u8 {
        accounts.push(pb::GenesisAccount {
            address: addr(&operator(i)).0.to_vec(),
            balance: (100 * UNIT).to_string(),
        });
        validators.push(pb::GenesisValidator {
            operator: addr(&operator(i)).0.to_vec(),
            consensus_public_key: consensus(i).public_key().to_bytes().to_vec(),
            proof_of_possession: consensus(i).prove_possession().to_bytes().to_vec(),
            self_bond: (10 * UNIT * (u128::from(i) + 1)).to_string(),
            commission_rate_bps: 0,
            commission_max_rate_bps: 0,
            commission_max_change_bps: 0,
        });
    }
    Ledger::from_genesis(&pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: Some(params),
        accounts,
        validators,
    })
    .expect("valid genesis")
}

/// A zero-fee transaction at the signer's next nonce plus `ahead`.
fn tx_at(l: &Ledger, k: &AccountSecretKey, ahead: u64, kind: Kind) -> pb::Transaction {
    let body = pb::TxBody {
        chain_id: CHAIN.into(),
        nonce: l.account(&addr(k)).nonce + ahead,
        fee: "0".into(),
        kind: Some(kind),
    };
    tx::sign(k, &chain(), body)
}

fn bond(v: Address, amount: u128) -> Kind {
    Kind::Bond(pb::Bond {
        validator: v.0.to_vec(),
        amount: amount.to_string(),
    })
}
fn redelegate(src: Address, dst: Address, shares: u128) -> Kind {
    Kind::Redelegate(pb::Redelegate {
        src_validator: src.0.to_vec(),
        dst_validator: dst.0.to_vec(),
        shares: shares.to_string(),
    })
}
fn unjail(v: Address) -> Kind {
    Kind::Unjail(pb::Unjail {
        validator: v.0.to_vec(),
    })
}

/// The next block: `proposer`, and the certificate of the previous height
/// signed by every member of its set except `absent`.
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

fn block_with(
    l: &mut Ledger,
    info: &BlockInfo,
    txs: &[pb::Transaction],
    ev: &[pb::Evidence],
) -> BlockResult {
    let h = l.height() + 1;
    let r = l
        .apply_block(h, info, txs, ev, &[h as u8; 32])
        .expect("block");
    let s = l.supply();
    assert!(s.balances_out(), "supply identity after block {h}: {s:?}");
    r
}

/// A block without proposer or certificate.
fn block(l: &mut Ledger, txs: &[pb::Transaction]) -> BlockResult {
    block_with(l, &BlockInfo::default(), txs, &[])
}

fn failed(r: &TxReceipt) -> &TxError {
    match &r.outcome {
        TxOutcome::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn tokens(l: &Ledger, v: Address) -> u128 {
    l.validator(&v).expect("validator").tokens
}
fn delegated(l: &Ledger, d: &AccountSecretKey, v: Address) -> (u128, u128) {
    l.delegation(&addr(d), &v)
        .map_or((0, 0), |x| (x.shares, x.tokens))
}

// ---- redelegation ----

/// User 1 bonds 100 units to v0 in block 1.
fn bonded() -> Ledger {
    let mut l = ledger(params());
    let t = tx_at(&l, &user(1), 0, bond(val(0), 100 * UNIT));
    assert!(block(&mut l, &[t]).receipts[0].is_ok());
    l
}

#[test]
fn redelegation_moves_shares_at_once() {
    let mut l = bonded();
    let u = user(1);
    let bal = l.account(&addr(&u)).balance;
    let t = tx_at(&l, &u, 0, redelegate(val(0), val(1), 40 * UNIT));
    let r = block(&mut l, &[t]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    let (src, dst) = (val(0), val(1));
    assert_eq!(
        r.receipts[0].log,
        format!(
            "ok: moved {} from {src} to {dst} for {} shares, slashable for {src}'s \
             earlier faults until height {}",
            40 * UNIT,
            40 * UNIT,
            2 + UNBONDING
        )
    );
    assert_eq!(tokens(&l, val(0)), 70 * UNIT);
    assert_eq!(tokens(&l, val(1)), 60 * UNIT);
    assert_eq!(delegated(&l, &u, val(0)), (60 * UNIT, 60 * UNIT));
    assert_eq!(delegated(&l, &u, val(1)), (40 * UNIT, 40 * UNIT));
    assert_eq!(
        l.account(&addr(&u)).balance,
        bal,
        "no tokens pass the account"
    );
    let e = l.redelegations(&addr(&u), None, 0);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].src, e[0].dst), (val(0), val(1)));
    assert_eq!(
        (e[0].creation_height, e[0].completion_height),
        (2, 2 + UNBONDING)
    );
    assert_eq!(
        (e[0].initial_balance, e[0].shares_dst),
        (40 * UNIT, 40 * UNIT)
    );
    // Power moves with the next set update (h + 2).
    let power = |h: Height, v: Address| l.validator_set(h).and_then(|s| s.get(&v)).map(|x| x.power);
    assert_eq!((power(4, val(0)), power(4, val(1))), (Some(70), Some(60)));
    assert_eq!((power(3, val(0)), power(3, val(1))), (Some(110), Some(20)));
}

#[test]
fn redelegation_to_the_same_validator_is_refused() {
    let mut l = bonded();
    let t = tx_at(&l, &user(1), 0, redelegate(val(0), val(0), UNIT));
    let r = block(&mut l, &[t]);
    assert_eq!(failed(&r.receipts[0]), &TxError::SameValidator(val(0)));
    assert_eq!(tokens(&l, val(0)), 110 * UNIT);
    assert!(l.redelegations(&addr(&user(1)), None, 0).is_empty());
}

#[test]
fn at_most_seven_redelegation_entries_per_triple() {
    let mut l = bonded();
    let u = user(1);
    let mut txs: Vec<_> = (0..8)
        .map(|n| tx_at(&l, &u, n, redelegate(val(0), val(1), UNIT)))
        .collect();
    // Another destination is another triple.
    txs.push(tx_at(&l, &u, 8, redelegate(val(0), val(2), UNIT)));
    let r = block(&mut l, &txs);
    assert!(r.receipts[..7].iter().all(TxReceipt::is_ok));
    assert_eq!(
        failed(&r.receipts[7]),
        &TxError::TooManyRedelegationEntries { max: 7 }
    );
    assert!(r.receipts[8].is_ok(), "{}", r.receipts[8].log);
    assert_eq!(
        delegated(&l, &u, val(1)).0,
        7 * UNIT,
        "the 8th moved nothing"
    );
    assert_eq!(l.redelegations(&addr(&u), None, 0).len(), 8);
}

#[test]
fn stake_redelegated_into_b_cannot_leave_b_until_the_entry_completes() {
    let mut l = bonded();
    let u = user(1);
    let t = tx_at(&l, &u, 0, redelegate(val(0), val(1), 40 * UNIT));
    assert!(block(&mut l, &[t]).receipts[0].is_ok()); // block 2, completes at 12
    let onward = |l: &Ledger| tx_at(l, &u, 0, redelegate(val(1), val(2), 10 * UNIT));
    let t = onward(&l);
    let r = block(&mut l, &[t]);
    assert_eq!(
        failed(&r.receipts[0]),
        &TxError::RedelegationInProgress { validator: val(1) }
    );
    while l.height() < 11 {
        block(&mut l, &[]);
    }
    // Block 12, the completion height: still pending while it executes.
    let t = onward(&l);
    let r = block(&mut l, &[t]);
    assert_eq!(
        failed(&r.receipts[0]),
        &TxError::RedelegationInProgress { validator: val(1) }
    );
    assert!(l.redelegations(&addr(&u), None, 0).is_empty(), "completed");
    let t = onward(&l);
    let r = block(&mut l, &[t]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    assert_eq!(delegated(&l, &u, val(2)).1, 10 * UNIT);
}

fn duplicate_vote(k: &SecretKey, h: Height) -> pb::Evidence {
    let vote = |hash: Hash| pb::Vote {
        vote_type: VoteType::Precommit as i32,
        height: h,
        round: 0,
        block_hash: hash.to_vec(),
        validator_address: addr(k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain(), VoteType::Precommit, h, 0, &hash))
            .to_bytes()
            .to_vec(),
    };
    pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(vote([1; 32])),
                vote_b: Some(vote([2; 32])),
            },
        )),
    }
}

#[test]
fn double_sign_slash_reaches_redelegations_from_h_minus_1_only() {
    let mut l = ledger(params());
    let (u1, u2, u3) = (user(1), user(2), user(3));
    let txs: Vec<_> = [&u1, &u2, &u3]
        .iter()
        .map(|u| tx_at(&l, u, 0, bond(val(0), 100 * UNIT)))
        .collect();
    block(&mut l, &txs); // h1
    let t = tx_at(&l, &u1, 0, redelegate(val(0), val(1), 20 * UNIT));
    block(&mut l, &[t]); // h2: before 4 − 1, not counted
    let t = tx_at(&l, &u2, 0, redelegate(val(0), val(1), 30 * UNIT));
    block(&mut l, &[t]); // h3 = 4 − 1: counted
    block(&mut l, &[]); // h4
    let t = tx_at(&l, &u3, 0, redelegate(val(0), val(1), 10 * UNIT));
    block(&mut l, &[t]); // h5: counted
    assert_eq!(tokens(&l, val(1)), 80 * UNIT);
    let power_at_4 = l
        .validator_set(4)
        .and_then(|s| s.get(&val(0)))
        .map(|x| u128::from(x.power))
        .expect("in set");
    assert_eq!(power_at_4, 290);
    let before_v0 = tokens(&l, val(0));
    let r = block_with(
        &mut l,
        &BlockInfo::default(),
        &[],
        &[duplicate_vote(&consensus(0), 4)],
    );
    let ev = &r.evidence[0].as_ref().expect("valid evidence")[0];
    let target = power_at_4 * UNIT * 500 / 10_000;
    // floor(30 units · 5%) + floor(10 units · 5%) from the delegations in v1.
    assert_eq!(ev.from_redelegations, 3 * UNIT / 2 + UNIT / 2);
    assert_eq!(ev.from_unbonding, 0);
    assert_eq!(ev.from_bonded, target - 2 * UNIT);
    assert_eq!(ev.amount, target);
    assert_eq!(tokens(&l, val(0)), before_v0 - ev.from_bonded);
    assert_eq!(tokens(&l, val(1)), 78 * UNIT);
    assert_eq!(
        delegated(&l, &u1, val(1)).1,
        20 * UNIT,
        "created at 2: untouched"
    );
    assert_eq!(delegated(&l, &u2, val(1)).1, 30 * UNIT - 3 * UNIT / 2);
    assert_eq!(delegated(&l, &u3, val(1)).1, 10 * UNIT - UNIT / 2);
    assert_eq!(
        delegated(&l, &operator(1), val(1)).1,
        20 * UNIT,
        "others keep theirs"
    );
    let shares_dst = |u: &AccountSecretKey| l.redelegations(&addr(u), None, 0)[0].shares_dst;
    assert_eq!(shares_dst(&u1), 20 * UNIT);
    assert_eq!(shares_dst(&u2), 30 * UNIT - 3 * UNIT / 2);
    assert_eq!(l.slashed_total(), target);
}

// ---- downtime ----

const WINDOW_PARAMS: (u64, u32, u64, u32) = (4, 5_000, 5, 1_000);

/// Window 4 at 50% (at most 2 misses), jail 5 heights, slash 10%, block
/// reward one unit. User 1 bonds 10 units + 7 to v1 in block 1.
fn downtime_ledger() -> Ledger {
    let (window, min_signed, jail, bps) = WINDOW_PARAMS;
    let mut l = ledger(pb::GenesisParams {
        signed_blocks_window: window,
        min_signed_per_window_bps: min_signed,
        downtime_jail_heights: jail,
        slash_fraction_downtime_bps: bps,
        block_reward: UNIT.to_string(),
        ..params()
    });
    let t = tx_at(&l, &user(1), 0, bond(val(1), 10 * UNIT + 7));
    let i = info(&l, Some(val(0)), &[]);
    assert!(block_with(&mut l, &i, &[t], &[]).receipts[0].is_ok());
    l
}

fn step(l: &mut Ledger, absent: &[Address], txs: &[pb::Transaction]) -> BlockResult {
    let i = info(l, Some(val(0)), absent);
    block_with(l, &i, txs, &[])
}

#[test]
fn downtime_jails_slashes_and_unjails_at_its_boundaries() {
    let mut l = downtime_ledger();
    let v = val(1);
    // Block 4 carries the certificate of 3 (powers 10, 30, 30, total 70).
    step(&mut l, &[v], &[]); // 2: missed 1
    step(&mut l, &[v], &[]); // 3: missed 2
    let before = l.validator(&v).expect("v").outstanding_rewards;
    step(&mut l, &[], &[]); // 4: signed; exactly 2 of 4 missed
    let share_before = l.validator(&v).expect("v").outstanding_rewards - before;
    assert_eq!(share_before, 950_000 * 30 / 70);
    let view = l.validator(&v).expect("v");
    assert!(!view.jailed, "exactly max_missed misses does not jail");
    assert_eq!((view.missed_blocks, view.window_counted), (2, 3));

    let pre_tokens = tokens(&l, v);
    assert_eq!(pre_tokens, 30 * UNIT + 7);
    let (op_sh, _) = delegated(&l, &operator(1), v);
    let (u_sh, _) = delegated(&l, &user(1), v);
    let r = step(&mut l, &[v], &[]); // 5: a third miss in the window
    let slash = pre_tokens * 1_000 / 10_000;
    assert_eq!(slash, 3 * UNIT, "floor of 3000000.7");
    assert_eq!(r.end.downtime.len(), 1);
    let e = &r.end.downtime[0];
    assert_eq!(
        (e.validator, e.reason, e.tombstoned),
        (v, SlashReason::Downtime, false)
    );
    assert_eq!(
        (e.amount, e.from_bonded, e.fraction_bps),
        (slash, slash, 1_000)
    );
    assert_eq!((e.infraction_height, e.slash_height), (4, 5));
    assert_eq!(l.slash_events(Some(&v), None, 0), vec![e.clone()]);
    let view = l.validator(&v).expect("v");
    assert!(view.jailed && !view.tombstoned);
    assert_eq!(view.jail_reason, JailReason::Downtime);
    assert_eq!((view.tokens, view.jailed_until), (pre_tokens - slash, 10));
    // Delegators lose in proportion to their shares.
    let after = pre_tokens - slash;
    assert_eq!(delegated(&l, &operator(1), v).1, op_sh * after / pre_tokens);
    assert_eq!(delegated(&l, &user(1), v).1, u_sh * after / pre_tokens);
    // It leaves the active set with the set computed now (for h + 2).
    assert!(l.validator_set(6).and_then(|s| s.get(&v)).is_some());
    assert!(l.validator_set(7).and_then(|s| s.get(&v)).is_none());
    assert_eq!(l.slashed_total(), slash);

    while l.height() < 8 {
        step(&mut l, &[], &[]);
    }
    let t = tx_at(&l, &operator(1), 0, unjail(v));
    let r = step(&mut l, &[], &[t]); // 9
    assert_eq!(
        failed(&r.receipts[0]),
        &TxError::StillJailed { until: 10, now: 9 }
    );
    let t = tx_at(&l, &operator(1), 0, unjail(v));
    let r = step(&mut l, &[], &[t]); // 10
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    assert!(!l.validator(&v).expect("v").jailed);
    let power = l.validator_set(12).and_then(|s| s.get(&v)).map(|x| x.power);
    assert_eq!(power, Some(27));
    // After the slash its reward share falls with its power: 27 of 67.
    step(&mut l, &[], &[]); // 11
    let before = l.validator(&v).expect("v").outstanding_rewards;
    step(&mut l, &[], &[]); // 12 carries the certificate of 11 (v absent from that set)
    assert_eq!(l.validator(&v).expect("v").outstanding_rewards, before);
    step(&mut l, &[], &[]); // 13 carries the certificate of 12
    let share_after = l.validator(&v).expect("v").outstanding_rewards - before;
    assert_eq!(share_after, 950_000 * 27 / 67);
    assert!(share_after < share_before);
}

#[test]
fn a_sliding_window_forgets_old_misses() {
    let mut l = downtime_ledger();
    let v = val(1);
    // Misses at certificates 1, 2, then signed 3, 4, then misses 5, 6:
    // the window of the last 4 never holds more than 2 misses.
    for absent in [true, true, false, false, true, true, false] {
        let a = if absent { vec![v] } else { vec![] };
        let r = step(&mut l, &a, &[]);
        assert!(r.end.downtime.is_empty(), "at {}", l.height());
    }
    assert!(!l.validator(&v).expect("v").jailed);
    assert_eq!(l.slashed_total(), 0);
    // Certificate 8 missed: certificates 5, 6 and 8 of the window 5..=8.
    let r = step(&mut l, &[v], &[]);
    assert_eq!(r.end.downtime.len(), 1);
}
