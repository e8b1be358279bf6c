//! Unit tests of the ledger rules, one or more per rule of DESIGN §8.

use super::state::Delegation;
use super::*;
use crate::certificate::CommitCertificate;
use crate::consensus::evidence::EvidenceError as CE;
use crate::crypto::{AccountSecretKey, SecretKey};
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::HasAddress;
use crate::types::VoteType;
use pb::tx_body::Kind;

const UNIT: u128 = 1_000_000;
/// The fee every test transaction pays: the default `min_fee`.
const FEE: u128 = params::DEFAULT_MIN_FEE;

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

fn params() -> pb::GenesisParams {
    pb::GenesisParams {
        unbonding_period: 10,
        jail_period: 5,
        ..Default::default()
    }
}

/// Users 1..=3 with 1000 units each; validators 0..n with 10·(i+1) units self-bonded.
fn genesis(n: u8) -> pb::Genesis {
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
            commission_rate_bps: 0,
            commission_max_rate_bps: 0,
            commission_max_change_bps: 0,
        });
    }
    pb::Genesis {
        chain_id: "agora-test".into(),
        genesis_time_ms: 0,
        params: Some(params()),
        accounts,
        validators,
    }
}

fn ledger(n: u8) -> Ledger {
    Ledger::from_genesis(&genesis(n)).expect("valid genesis")
}

fn chain() -> ChainId {
    ChainId::new("agora-test").expect("chain id")
}

fn tx(k: &AccountSecretKey, nonce: u64, kind: Kind) -> pb::Transaction {
    tx::sign(
        k,
        &chain(),
        pb::TxBody {
            chain_id: "agora-test".into(),
            nonce,
            fee: FEE.to_string(),
            kind: Some(kind),
        },
    )
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
fn unjail(v: Address) -> Kind {
    Kind::Unjail(pb::Unjail {
        validator: v.0.to_vec(),
    })
}

/// Executes the next block with these transactions and evidence. No
/// proposer and no certificate: the block's reward and fees go to the
/// community pool, so balances and stake change only by the transactions.
fn block(l: &mut Ledger, txs: &[pb::Transaction], ev: &[pb::Evidence]) -> BlockResult {
    let h = l.height() + 1;
    let r = l
        .apply_block(h, &BlockInfo::default(), txs, ev, &[h as u8; 32])
        .expect("block in order");
    let s = l.supply();
    assert!(s.balances_out(), "supply identity: {s:?}");
    assert_eq!(
        l.total_supply() + l.slashed_total(),
        l.genesis_supply() + s.minted,
        "supply conserved"
    );
    r
}

fn empty_blocks(l: &mut Ledger, n: u64) {
    for _ in 0..n {
        block(l, &[], &[]);
    }
}

fn failed(r: &TxReceipt) -> &TxError {
    match &r.outcome {
        TxOutcome::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}
fn rejected(r: &TxReceipt) -> &TxError {
    match &r.outcome {
        TxOutcome::Rejected(e) => e,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn genesis_funds_self_bonds_and_sets_heights_1_and_2() {
    let l = ledger(3);
    assert_eq!(l.height(), 0);
    assert_eq!(l.genesis_supply(), 3 * 1000 * UNIT + 3 * 100 * UNIT);
    assert_eq!(l.total_supply(), l.genesis_supply());
    assert_eq!(l.account(&addr(&operator(1))).balance, 80 * UNIT);
    let v = l.validator(&addr(&consensus(2))).expect("registered");
    assert_eq!((v.tokens, v.shares, v.power), (30 * UNIT, 30 * UNIT, 30));
    assert!(v.active);
    for h in [1, 2] {
        let s = l.validator_set(h).expect("set known");
        assert_eq!(s.len(), 3);
        assert_eq!(s.total_power(), 60);
    }
    assert!(l.validator_set(3).is_none());
}

#[test]
fn genesis_rejects_bad_entries() {
    let mut g = genesis(2);
    g.validators[1].proof_of_possession = consensus(0).prove_possession().to_bytes().to_vec();
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::Validator { index: 1, .. })
    ));

    let mut g = genesis(2);
    g.validators[0].self_bond = (500 * UNIT).to_string();
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::Validator { index: 0, .. })
    ));

    let mut g = genesis(2);
    g.validators[0].self_bond = "1".into();
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::Validator { index: 0, .. })
    ));

    let mut g = genesis(2);
    let dup = g.accounts[0].clone();
    g.accounts.push(dup);
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::Account { .. })
    ));

    let mut g = genesis(2);
    g.validators.push(g.validators[0].clone());
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::Validator { index: 2, .. })
    ));

    let mut g = genesis(0);
    assert_eq!(
        Ledger::from_genesis(&g),
        Err(GenesisError::NoActiveValidators)
    );
    g.chain_id = "has space".into();
    assert!(matches!(
        Ledger::from_genesis(&g),
        Err(GenesisError::ChainId(_))
    ));
}

#[test]
fn transfer_moves_tokens_and_nonces_stop_replay() {
    let mut l = ledger(1);
    let (a, b) = (user(1), user(2));
    let t = tx(&a, 0, transfer(addr(&b), 5 * UNIT));
    let r = block(&mut l, std::slice::from_ref(&t), &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    assert_eq!(
        l.account(&addr(&a)),
        Account {
            balance: 995 * UNIT - FEE,
            nonce: 1
        }
    );
    assert_eq!(l.account(&addr(&b)).balance, 1005 * UNIT);

    // The same transaction again: rejected, nothing changes.
    let before = l.state_digest();
    l.begin_block(l.height() + 1, &BlockInfo::default())
        .expect("begin");
    let r = l.deliver_tx(&t);
    assert_eq!(
        rejected(&r),
        &TxError::WrongNonce {
            expected: 1,
            got: 0
        }
    );
    assert_eq!(l.state_digest(), before);
    l.end_block().expect("end");

    // Wrong chain id.
    let other = tx::sign(
        &a,
        &chain(),
        pb::TxBody {
            chain_id: "other-chain".into(),
            nonce: 1,
            fee: FEE.to_string(),
            kind: Some(transfer(addr(&b), 1)),
        },
    );
    let r = block(&mut l, &[other], &[]);
    assert!(matches!(
        rejected(&r.receipts[0]),
        TxError::WrongChainId { .. }
    ));

    // Unknown account.
    let r = block(&mut l, &[tx(&acct(50), 0, transfer(addr(&b), 1))], &[]);
    assert!(matches!(
        rejected(&r.receipts[0]),
        TxError::UnknownAccount(_)
    ));
}

#[test]
fn failed_transaction_consumes_nonce_only() {
    let mut l = ledger(1);
    let a = user(1);
    let r = block(
        &mut l,
        &[tx(&a, 0, transfer(addr(&user(2)), 2000 * UNIT))],
        &[],
    );
    assert_eq!(
        failed(&r.receipts[0]),
        &TxError::InsufficientBalance {
            need: 2000 * UNIT,
            have: 1000 * UNIT - FEE
        }
    );
    // The failed transaction paid its fee and consumed its nonce.
    assert_eq!(
        l.account(&addr(&a)),
        Account {
            balance: 1000 * UNIT - FEE,
            nonce: 1
        }
    );
    let r = block(&mut l, &[tx(&a, 1, transfer(addr(&user(2)), 0))], &[]);
    assert_eq!(failed(&r.receipts[0]), &TxError::ZeroAmount);
}

#[test]
fn bad_signature_is_rejected_in_blocks_and_mempool() {
    let mut l = ledger(1);
    let mut t = tx(&user(1), 0, transfer(addr(&user(2)), 1));
    t.signature = user(1).sign(b"something else").to_bytes().to_vec();
    assert_eq!(l.check_tx(&t), Err(TxError::BadSignature));
    let r = block(&mut l, &[t], &[]);
    assert_eq!(rejected(&r.receipts[0]), &TxError::BadSignature);
    assert_eq!(l.account(&addr(&user(1))).nonce, 0);
}

#[test]
fn check_tx_admits_future_nonces_and_checks_rules_for_the_next() {
    let l = ledger(1);
    let a = user(1);
    let ok = l
        .check_tx(&tx(&a, 0, transfer(addr(&user(2)), UNIT)))
        .expect("admissible");
    assert_eq!((ok.nonce, ok.next_nonce), (0, 0));
    assert!(
        l.check_tx(&tx(&a, 5, transfer(addr(&user(2)), UNIT)))
            .is_ok()
    );
    assert_eq!(
        l.check_tx(&tx(&a, MAX_NONCE_GAP + 1, transfer(addr(&user(2)), UNIT))),
        Err(TxError::WrongNonce {
            expected: 0,
            got: MAX_NONCE_GAP + 1
        })
    );
    assert_eq!(
        l.check_tx(&tx(&a, 0, transfer(addr(&user(2)), 5000 * UNIT))),
        Err(TxError::InsufficientBalance {
            need: 5000 * UNIT,
            have: 1000 * UNIT - FEE
        })
    );
    assert_eq!(
        l.check_tx(&tx(&a, 0, bond(Address([7; 20]), UNIT))),
        Err(TxError::UnknownValidator(Address([7; 20])))
    );
}

/// The re-check after a commit takes the decoded transaction and checks
/// the state alone: it cannot decode or verify (it never sees the bytes),
/// while the nonce a commit consumed and the balance a commit spent still
/// count.
#[test]
fn recheck_decoded_skips_decoding_and_signature_but_not_the_state() {
    let mut l = ledger(1);
    let a = user(1);
    let mut forged = tx(&a, 0, transfer(addr(&user(2)), UNIT));
    forged.signature = a.sign(b"something else").to_bytes().to_vec();
    assert_eq!(l.check_tx(&forged), Err(TxError::BadSignature));
    let forged_d = tx::decode(&chain(), &forged).expect("decodes");
    assert!(l.recheck_decoded(&forged_d).is_ok());
    let first = tx(&a, 0, transfer(addr(&user(2)), UNIT));
    let first_d = tx::decode(&chain(), &first).expect("decodes");
    block(&mut l, std::slice::from_ref(&first), &[]);
    assert_eq!(
        l.recheck_decoded(&first_d),
        Err(TxError::WrongNonce {
            expected: 1,
            got: 0
        })
    );
    let big =
        tx::decode(&chain(), &tx(&a, 1, transfer(addr(&user(2)), 1000 * UNIT))).expect("decodes");
    assert_eq!(
        l.recheck_decoded(&big),
        Err(TxError::InsufficientBalance {
            need: 1000 * UNIT,
            have: 999 * UNIT - 2 * FEE
        })
    );
}

/// Transactions the host already decoded and verified (its mempool) are
/// neither decoded nor verified again and end in the same state as a plain
/// apply; the others are still decoded and verified.
#[test]
fn pre_decoded_transactions_give_the_same_state_and_others_are_still_checked() {
    let (mut plain, mut trusting) = (ledger(1), ledger(1));
    let a = user(1);
    let good = tx(&a, 0, transfer(addr(&user(2)), UNIT));
    let good2 = tx(&a, 1, transfer(addr(&user(3)), UNIT));
    let mut forged = tx(&a, 2, transfer(addr(&user(2)), UNIT));
    forged.signature = a.sign(b"something else").to_bytes().to_vec();
    let txs = [good.clone(), good2, forged];
    let known = tx::decode(&chain(), &good).expect("decodes");
    let info = BlockInfo::default();
    let r1 = plain
        .apply_block(1, &info, &txs, &[], &[1; 32])
        .expect("block 1");
    let asked = std::cell::Cell::new(0);
    let hashes = crate::block::tx_hashes(&txs);
    let r2 = trusting
        .apply_block_with_decoded(
            1,
            &info,
            &txs,
            &[],
            &[2; 32],
            KnownTxs {
                hashes: Some(&hashes),
                decoded: &|h| {
                    asked.set(asked.get() + 1);
                    (*h == known.hash).then_some(&known)
                },
            },
        )
        .expect("block 1");
    assert_eq!(asked.get(), 3);
    assert_eq!(plain.app_hash(), trusting.app_hash());
    assert_eq!(r1.receipts, r2.receipts);
    assert!(r2.receipts[1].is_ok());
    assert_eq!(rejected(&r2.receipts[2]), &TxError::BadSignature);
    assert_eq!(trusting.account(&addr(&user(1))).nonce, 2);
}

fn create_validator(c: &SecretKey, pop_of: &SecretKey, self_bond: u128) -> Kind {
    Kind::CreateValidator(pb::CreateValidator {
        consensus_public_key: c.public_key().to_bytes().to_vec(),
        proof_of_possession: pop_of.prove_possession().to_bytes().to_vec(),
        self_bond: self_bond.to_string(),
        commission_rate_bps: 0,
        commission_max_rate_bps: 0,
        commission_max_change_bps: 0,
    })
}

#[test]
fn create_validator_checks_pop_and_min_self_bond_and_joins_at_h_plus_2() {
    let mut l = ledger(1);
    let a = user(1);
    let c = consensus(9);
    let r = block(
        &mut l,
        &[tx(&a, 0, create_validator(&c, &consensus(8), 50 * UNIT))],
        &[],
    );
    assert_eq!(failed(&r.receipts[0]), &TxError::BadProofOfPossession);
    let r = block(
        &mut l,
        &[tx(&a, 1, create_validator(&c, &c, UNIT - 1))],
        &[],
    );
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::SelfBondTooSmall { .. }
    ));
    let r = block(
        &mut l,
        &[tx(&a, 2, create_validator(&c, &c, 50 * UNIT))],
        &[],
    );
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    let h = l.height();
    assert!(
        l.validator_set(h + 1)
            .expect("known")
            .get(&addr(&c))
            .is_none()
    );
    assert_eq!(
        l.validator_set(h + 2)
            .expect("known")
            .get(&addr(&c))
            .map(|v| v.power),
        Some(50)
    );
    // Three transactions paid their fees, two failed.
    assert_eq!(l.account(&addr(&a)).balance, 950 * UNIT - 3 * FEE);
    assert_eq!(
        l.delegation(&addr(&a), &addr(&c)).map(|d| d.tokens),
        Some(50 * UNIT)
    );
    let r = block(
        &mut l,
        &[tx(&a, 3, create_validator(&c, &c, 50 * UNIT))],
        &[],
    );
    assert_eq!(failed(&r.receipts[0]), &TxError::ValidatorExists(addr(&c)));
}

#[test]
fn bond_buys_shares_at_the_current_exchange_rate_rounding_down() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    // Make the rate 3 tokens per 2 shares.
    if let Some(rec) = l.state.validators.get_mut(&v) {
        rec.tokens = 15 * UNIT;
        rec.shares = 10 * UNIT;
    }
    l.state.genesis_supply += 5 * UNIT;
    l.state.delegations.insert(
        (addr(&operator(0)), v),
        Delegation {
            shares: 10 * UNIT,
            reward_entry: 0,
        },
    );
    let r = block(&mut l, &[tx(&user(1), 0, bond(v, 7))], &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    // 7 · 2/3 = 4.67 → 4 shares.
    assert_eq!(l.delegation(&addr(&user(1)), &v).map(|d| d.shares), Some(4));
    // 4 shares are worth 6 tokens: the lost token stays with the validator.
    assert_eq!(l.delegation(&addr(&user(1)), &v).map(|d| d.tokens), Some(6));
    let r = block(&mut l, &[tx(&user(2), 0, bond(v, 1))], &[]);
    assert_eq!(failed(&r.receipts[0]), &TxError::BondTooSmall { amount: 1 });
}

#[test]
fn unbond_pays_out_exactly_at_completion_height() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    let u = user(1);
    block(&mut l, &[tx(&u, 0, bond(v, 40 * UNIT))], &[]);
    let r = block(&mut l, &[tx(&u, 1, unbond(v, 15 * UNIT))], &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    let h = l.height();
    let entries = l.unbonding(&addr(&u), None, 0);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].completion_height, h + 10);
    assert_eq!(entries[0].balance, 15 * UNIT);
    assert_eq!(
        l.delegation(&addr(&u), &v).map(|d| d.shares),
        Some(25 * UNIT)
    );
    assert_eq!(l.validator_set(h + 2).map(|s| s.total_power()), Some(35));
    empty_blocks(&mut l, 9);
    assert_eq!(
        l.account(&addr(&u)).balance,
        960 * UNIT - 2 * FEE,
        "not before"
    );
    let r = block(&mut l, &[], &[]);
    assert_eq!(r.end.matured.len(), 1);
    assert_eq!(l.height(), h + 10);
    assert_eq!(
        l.account(&addr(&u)).balance,
        975 * UNIT - 2 * FEE,
        "exactly at completion"
    );
    assert!(l.unbonding(&addr(&u), None, 0).is_empty());
}

#[test]
fn at_most_seven_unbonding_entries_per_pair() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    let u = user(1);
    block(&mut l, &[tx(&u, 0, bond(v, 40 * UNIT))], &[]);
    let txs: Vec<_> = (1..=8).map(|n| tx(&u, n, unbond(v, UNIT))).collect();
    let r = block(&mut l, &txs, &[]);
    assert!(r.receipts[..7].iter().all(TxReceipt::is_ok));
    assert_eq!(
        failed(&r.receipts[7]),
        &TxError::TooManyUnbondingEntries { max: 7 }
    );
    assert_eq!(l.unbonding(&addr(&u), None, 0).len(), 7);
    // Pagination walks them in order.
    let first = l.unbonding(&addr(&u), None, 3);
    let rest = l.unbonding(&addr(&u), first.last().map(|e| (e.validator, e.id)), 10);
    assert_eq!(first.len() + rest.len(), 7);
    assert!(first.last().map(|e| e.id) < rest.first().map(|e| e.id));
}

#[test]
fn unbonding_more_shares_than_held_or_without_delegation_fails() {
    let mut l = ledger(1);
    let v = addr(&consensus(0));
    let r = block(&mut l, &[tx(&user(1), 0, unbond(v, 1))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::NoDelegation { .. }
    ));
    let r = block(&mut l, &[tx(&operator(0), 0, unbond(v, 11 * UNIT))], &[]);
    assert_eq!(
        failed(&r.receipts[0]),
        &TxError::InsufficientShares {
            need: 11 * UNIT,
            have: 10 * UNIT
        }
    );
}

#[test]
fn operator_below_min_self_bond_is_jailed_and_can_unjail_after_the_period() {
    let mut l = ledger(2);
    let v = addr(&consensus(0));
    let op = operator(0);
    // Self-bond 10 units; leave 0.5 units.
    let r = block(&mut l, &[tx(&op, 0, unbond(v, 9 * UNIT + UNIT / 2))], &[]);
    assert!(r.receipts[0].is_ok());
    let h = l.height();
    let view = l.validator(&v).expect("exists");
    assert!(view.jailed && !view.tombstoned);
    assert_eq!(view.jailed_until, h + 5);
    assert!(l.validator_set(h + 2).expect("set").get(&v).is_none());
    let r = block(&mut l, &[tx(&user(1), 0, unjail(v))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::NotOperator { .. }
    ));
    let r = block(&mut l, &[tx(&op, 1, unjail(v))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::StillJailed { .. }
    ));
    empty_blocks(&mut l, 3);
    let r = block(&mut l, &[tx(&op, 2, unjail(v))], &[]);
    assert!(matches!(
        failed(&r.receipts[0]),
        TxError::SelfBondTooSmall { .. }
    ));
    let r = block(
        &mut l,
        &[tx(&op, 3, bond(v, UNIT)), tx(&op, 4, unjail(v))],
        &[],
    );
    assert!(r.receipts.iter().all(TxReceipt::is_ok), "{:?}", r.receipts);
    assert!(!l.validator(&v).expect("exists").jailed);
    assert!(
        l.validator_set(l.height() + 2)
            .expect("set")
            .get(&v)
            .is_some()
    );
    let r = block(&mut l, &[tx(&op, 5, unjail(v))], &[]);
    assert_eq!(failed(&r.receipts[0]), &TxError::NotJailed(v));
}

#[test]
fn active_set_is_top_max_validators_with_ties_by_address() {
    let mut g = genesis(4);
    g.params = Some(pb::GenesisParams {
        max_validators: 2,
        ..params()
    });
    // Validators 1 and 2 tie at 20 units; 3 has 40; 0 has 10.
    g.validators[2].self_bond = (20 * UNIT).to_string();
    let l = Ledger::from_genesis(&g).expect("genesis");
    let set = l.validator_set(1).expect("set");
    let tied = [addr(&consensus(1)), addr(&consensus(2))];
    let winner_of_tie = *tied.iter().min().expect("two");
    let mut expect = vec![addr(&consensus(3)), winner_of_tie];
    expect.sort();
    let got: Vec<Address> = set.validators().iter().map(|v| v.address).collect();
    assert_eq!(got, expect);
    assert!(
        !l.validator(tied.iter().max().expect("two"))
            .expect("exists")
            .active
    );
}

// ---- evidence ----

fn signed_vote(k: &SecretKey, h: Height, round: u32, hash: Hash) -> pb::Vote {
    pb::Vote {
        vote_type: VoteType::Prevote as i32,
        height: h,
        round,
        block_hash: hash.to_vec(),
        validator_address: addr(k).0.to_vec(),
        signature: k
            .sign(&vote_bytes(&chain(), VoteType::Prevote, h, round, &hash))
            .to_bytes()
            .to_vec(),
    }
}

fn duplicate_vote(k: &SecretKey, h: Height) -> pb::Evidence {
    pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(signed_vote(k, h, 0, [1; 32])),
                vote_b: Some(signed_vote(k, h, 0, [2; 32])),
            },
        )),
    }
}

#[test]
fn duplicate_vote_slashes_five_percent_jails_and_tombstones_once() {
    let mut l = ledger(3);
    let c = consensus(1);
    let v = addr(&c);
    empty_blocks(&mut l, 3);
    let ev = duplicate_vote(&c, 2);
    let r = block(&mut l, &[], std::slice::from_ref(&ev));
    let events = r.evidence[0].as_ref().expect("valid evidence");
    assert_eq!(events.len(), 1);
    // 20 units of power at height 2 → 1 unit slashed.
    assert_eq!(events[0].amount, UNIT);
    assert_eq!(events[0].from_bonded, UNIT);
    assert_eq!(events[0].fraction_bps, 500);
    let view = l.validator(&v).expect("exists");
    assert_eq!(view.tokens, 19 * UNIT);
    assert!(view.jailed && view.tombstoned);
    assert!(
        l.validator_set(l.height() + 2)
            .expect("set")
            .get(&v)
            .is_none()
    );
    assert_eq!(l.slashed_total(), UNIT);
    assert_eq!(l.slash_events(Some(&v), None, 0), events.clone());
    // The operator's delegation lost 5%.
    assert_eq!(
        l.delegation(&addr(&operator(1)), &v).map(|d| d.tokens),
        Some(19 * UNIT)
    );
    // Again: rejected, nothing more slashed.
    let r = block(&mut l, &[], &[ev]);
    assert_eq!(r.evidence[0], Err(EvidenceError::AlreadyTombstoned(v)));
    assert_eq!(l.slashed_total(), UNIT);
    // Tombstoned validators cannot be unjailed or bonded to.
    let r = block(
        &mut l,
        &[
            tx(&operator(1), 0, unjail(v)),
            tx(&user(1), 0, bond(v, UNIT)),
        ],
        &[],
    );
    assert_eq!(failed(&r.receipts[0]), &TxError::Tombstoned(v));
    assert_eq!(failed(&r.receipts[1]), &TxError::Tombstoned(v));
}

#[test]
fn slash_reaches_unbonding_entries_from_h_minus_1_only() {
    let mut l = ledger(2);
    let c = consensus(1);
    let v = addr(&c);
    let (u1, u2, u3) = (user(1), user(2), user(3));
    block(
        &mut l,
        &[
            tx(&u1, 0, bond(v, 100 * UNIT)),
            tx(&u2, 0, bond(v, 100 * UNIT)),
            tx(&u3, 0, bond(v, 100 * UNIT)),
        ],
        &[],
    ); // h1
    block(&mut l, &[tx(&u1, 1, unbond(v, 40 * UNIT))], &[]); // h2: too early for an infraction at 4
    block(&mut l, &[tx(&u2, 1, unbond(v, 40 * UNIT))], &[]); // h3 = 4 − 1: counted
    block(&mut l, &[], &[]); // h4
    block(&mut l, &[tx(&u3, 1, unbond(v, 60 * UNIT))], &[]); // h5: counted
    let power_at_4 = l
        .validator_set(4)
        .and_then(|s| s.get(&v))
        .map(|x| x.power)
        .expect("in set");
    let tokens_before = l.validator(&v).expect("v").tokens;
    let r = block(&mut l, &[], &[duplicate_vote(&c, 4)]);
    let ev = &r.evidence[0].as_ref().expect("valid")[0];
    let target = u128::from(power_at_4) * UNIT * 5 / 100;
    assert_eq!(ev.amount, target);
    assert_eq!(ev.from_unbonding, 2 * UNIT + 3 * UNIT);
    assert_eq!(ev.from_bonded, target - 5 * UNIT);
    assert_eq!(
        l.validator(&v).expect("v").tokens,
        tokens_before - ev.from_bonded
    );
    let bal = |u: &AccountSecretKey| l.unbonding(&addr(u), None, 0)[0].balance;
    assert_eq!(bal(&u1), 40 * UNIT);
    assert_eq!(bal(&u2), 38 * UNIT);
    assert_eq!(bal(&u3), 57 * UNIT);
}

#[test]
fn evidence_window_and_validity_checks() {
    let mut l = ledger(2);
    let c = consensus(0);
    empty_blocks(&mut l, 12);
    // unbonding_period 10: at block 13, infractions at heights ≥ 4 are accepted.
    l.begin_block(13, &BlockInfo::default()).expect("begin");
    assert!(matches!(
        l.check_evidence(&duplicate_vote(&c, 3)),
        Err(EvidenceError::TooOld { .. })
    ));
    assert!(l.check_evidence(&duplicate_vote(&c, 4)).is_ok());
    assert!(matches!(
        l.check_evidence(&duplicate_vote(&c, 13)),
        Err(EvidenceError::FromTheFuture { .. })
    ));
    // Not a validator at that height.
    assert!(matches!(
        l.check_evidence(&duplicate_vote(&sk(1), 5)),
        Err(EvidenceError::NotAValidator { .. })
    ));
    // Halves swapped: not canonical.
    let mut ev = duplicate_vote(&c, 5);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = ev.kind.as_mut() {
        std::mem::swap(&mut d.vote_a, &mut d.vote_b);
    }
    assert_eq!(
        l.check_evidence(&ev),
        Err(EvidenceError::Invalid(CE::NotCanonical))
    );
    // Same block twice: no conflict.
    let same = pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(signed_vote(&c, 5, 0, [1; 32])),
                vote_b: Some(signed_vote(&c, 5, 0, [1; 32])),
            },
        )),
    };
    assert_eq!(
        l.check_evidence(&same),
        Err(EvidenceError::Invalid(CE::NotConflicting))
    );
    // A forged half.
    let mut forged = duplicate_vote(&c, 5);
    if let Some(pb::evidence::Kind::DuplicateVote(d)) = forged.kind.as_mut()
        && let Some(b) = d.vote_b.as_mut()
    {
        b.signature = consensus(1).sign(b"x").to_bytes().to_vec();
    }
    assert_eq!(
        l.check_evidence(&forged),
        Err(EvidenceError::Invalid(CE::BadSignature('b')))
    );
    // Different rounds do not conflict.
    let rounds = pb::Evidence {
        kind: Some(pb::evidence::Kind::DuplicateVote(
            pb::DuplicateVoteEvidence {
                vote_a: Some(signed_vote(&c, 5, 0, [1; 32])),
                vote_b: Some(signed_vote(&c, 5, 1, [2; 32])),
            },
        )),
    };
    assert!(matches!(
        l.check_evidence(&rounds),
        Err(EvidenceError::Invalid(CE::Mismatch(_)))
    ));
    assert!(matches!(
        l.check_evidence(&pb::Evidence { kind: None }),
        Err(EvidenceError::Malformed(_))
    ));
    l.end_block().expect("end");
}

fn signed_proposal(k: &SecretKey, h: Height, pol: i32, hash: Hash) -> pb::SignedProposal {
    pb::SignedProposal {
        height: h,
        round: 1,
        pol_round: pol,
        block_hash: hash.to_vec(),
        proposer_address: addr(k).0.to_vec(),
        signature: k
            .sign(&proposal_bytes(&chain(), h, 1, pol, &hash))
            .to_bytes()
            .to_vec(),
    }
}

#[test]
fn conflicting_proposals_slash_the_proposer() {
    let mut l = ledger(2);
    let c = consensus(0);
    empty_blocks(&mut l, 2);
    let ev = pb::Evidence {
        kind: Some(pb::evidence::Kind::ConflictingProposals(
            pb::ConflictingProposalsEvidence {
                proposal_a: Some(signed_proposal(&c, 2, -1, [3; 32])),
                proposal_b: Some(signed_proposal(&c, 2, -1, [4; 32])),
            },
        )),
    };
    let r = block(&mut l, &[], &[ev]);
    let events = r.evidence[0].as_ref().expect("valid");
    assert_eq!(events[0].validator, addr(&c));
    assert_eq!(events[0].amount, 10 * UNIT / 20);
    assert!(l.validator(&addr(&c)).expect("v").tombstoned);
}

/// Precommit certificates of height 2 signed by the given members (by
/// index into `consensus(0..4)`), in `round`.
fn certificate_of(l: &Ledger, hash: Hash, round: u32, who: &[u8]) -> pb::CommitCertificate {
    let h = 2;
    let set = l.validator_set(h).expect("set").clone();
    let pre: Vec<(usize, crate::crypto::Signature)> = who
        .iter()
        .map(|i| {
            let k = consensus(*i);
            let idx = set.index_of(&addr(&k)).expect("member");
            (
                idx,
                k.sign(&vote_bytes(&chain(), VoteType::Precommit, h, round, &hash)),
            )
        })
        .collect();
    CommitCertificate::from_precommits(&set, h, round, hash, &pre)
        .expect("cert")
        .to_proto()
}

fn conflicting_certificates(a: pb::CommitCertificate, b: pb::CommitCertificate) -> pb::Evidence {
    pb::Evidence {
        kind: Some(pb::evidence::Kind::ConflictingCertificates(
            pb::ConflictingCertificatesEvidence {
                cert_a: Some(a),
                cert_b: Some(b),
            },
        )),
    }
}

#[test]
fn conflicting_certificates_slash_every_double_signer() {
    let mut l = ledger(4);
    empty_blocks(&mut l, 3);
    // Powers 10, 20, 30, 40 (total 100): {1,2,3} = 90 and {0,2,3} = 80 are quorums.
    let ev = conflicting_certificates(
        certificate_of(&l, [5; 32], 0, &[1, 2, 3]),
        certificate_of(&l, [6; 32], 0, &[0, 2, 3]),
    );
    let r = block(&mut l, &[], &[ev]);
    let events = r.evidence[0].as_ref().expect("valid");
    let mut slashed: Vec<Address> = events.iter().map(|e| e.validator).collect();
    let mut expect = vec![addr(&consensus(2)), addr(&consensus(3))];
    slashed.sort();
    expect.sort();
    assert_eq!(slashed, expect);
    assert!(!l.validator(&addr(&consensus(0))).expect("v").tombstoned);
    assert!(!l.validator(&addr(&consensus(1))).expect("v").tombstoned);
    assert_eq!(l.slashed_total(), (30 + 40) * UNIT / 20);
}

#[test]
fn certificates_of_different_rounds_are_not_evidence() {
    // An honest validator may precommit A in round 0 and, after a polka in
    // round 1, B: two valid certificates of different rounds prove nothing.
    let mut l = ledger(4);
    empty_blocks(&mut l, 3);
    let ev = conflicting_certificates(
        certificate_of(&l, [5; 32], 0, &[1, 2, 3]),
        certificate_of(&l, [6; 32], 1, &[0, 2, 3]),
    );
    let err = l.check_evidence(&ev).expect_err("different rounds");
    assert!(err.to_string().contains("round"), "{err}");
    let r = block(&mut l, &[], &[ev]);
    assert!(r.evidence[0].is_err());
    assert_eq!(l.slashed_total(), 0);
    assert!(!l.validator(&addr(&consensus(2))).expect("v").tombstoned);
}

// ---- snapshot ----

fn busy_ledger() -> Ledger {
    let mut l = ledger(3);
    let v = addr(&consensus(1));
    block(
        &mut l,
        &[
            tx(&user(1), 0, bond(v, 50 * UNIT)),
            tx(&user(2), 0, transfer(addr(&user(3)), 7)),
        ],
        &[],
    );
    block(&mut l, &[tx(&user(1), 1, unbond(v, 20 * UNIT))], &[]);
    block(&mut l, &[], &[duplicate_vote(&consensus(2), 2)]);
    l
}

#[test]
fn snapshot_roundtrips_with_the_same_app_hash() {
    let l = busy_ledger();
    let bytes = l.encode();
    let back = Ledger::decode(&bytes).expect("decodes");
    assert_eq!(back, l);
    assert_eq!(back.app_hash(), l.app_hash());
    assert_eq!(back.encode(), bytes);
    // Different states hash differently.
    let mut l2 = l.clone();
    block(&mut l2, &[], &[]);
    assert_ne!(l2.app_hash(), l.app_hash());
}

#[test]
fn snapshot_decode_rejects_damage_without_panicking() {
    let bytes = busy_ledger().encode();
    for cut in 0..bytes.len() {
        assert!(Ledger::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Ledger::decode(&long), Err(SnapshotError::Trailing(1)));
    // Flip each byte in turn: decoding must never panic, and whenever it
    // succeeds the state must differ (the encoding is canonical).
    let original = Ledger::decode(&bytes).expect("valid");
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        if let Ok(l) = Ledger::decode(&b) {
            assert_ne!(l, original);
            assert!(l.supply().balances_out());
        }
    }
}

#[test]
fn blocks_must_come_in_order() {
    let mut l = ledger(1);
    assert_eq!(
        l.begin_block(2, &BlockInfo::default()),
        Err(BlockError::WrongHeight {
            expected: 1,
            got: 2
        })
    );
    assert_eq!(l.end_block().map(|_| ()), Err(BlockError::NoBlock));
    l.begin_block(1, &BlockInfo::default()).expect("begin");
    assert_eq!(
        l.begin_block(1, &BlockInfo::default()),
        Err(BlockError::InProgress(1))
    );
    let end = l.end_block().expect("end");
    assert_eq!(end.app_hash, l.app_hash());
    assert_eq!(Some(&end.next_validator_set), l.validator_set(3));
}

mod leaves_store;
mod snapshot_chunks;
mod state_tree;
