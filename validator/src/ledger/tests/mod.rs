//! Unit tests of the ledger rules, one or more per rule of DESIGN §8: the
//! shared fixture, genesis, snapshots and block order here; transactions,
//! staking and slashing in their own files, beside the state tree's.

use super::state::Delegation;
use super::test_keys::*;
use super::*;
use crate::certificate::CommitCertificate;
use crate::consensus::evidence::EvidenceError as CE;
use crate::crypto::{AccountSecretKey, SecretKey};
use crate::signing::{proposal_bytes, vote_bytes};
use crate::types::VoteType;
use pb::tx_body::Kind;

const UNIT: u128 = 1_000_000;
/// The fee every test transaction pays: the default `min_fee`.
const FEE: u128 = params::DEFAULT_MIN_FEE;

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
mod recheck;
mod slashing;
mod snapshot_chunks;
mod staking;
mod state_tree;
mod transfers;
