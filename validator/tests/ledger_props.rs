//! Property tests of the staking ledger over random transaction sequences:
//! supply conservation with exact slash accounting, no underflow or token
//! creation in share arithmetic, unbonding paid exactly at its height, exact
//! slash fractions from bonded and unbonding stake, replay protection, and
//! evidence that slashes once. Every transaction pays the default fee and
//! every block pays its reward to a proposer and the full certificate.

use agora_proto::v1 as pb;
use agora_validator::crypto::{AccountSecretKey, Hash, SecretKey};
use agora_validator::ledger::{
    BlockInfo, EvidenceError, Ledger, TxError, TxOutcome, UnbondingEntry, tx,
};
use agora_validator::signing::vote_bytes;
use agora_validator::types::HasAddress;
use agora_validator::types::{Address, ChainId, Height, VoteType};
use pb::tx_body::Kind;
use proptest::prelude::*;
use std::collections::BTreeSet;

const UNIT: u128 = 1_000_000;
const UNBONDING: u64 = 5;
const BPS: u32 = 500;
const CHAIN: &str = "agora-props";
/// The default `min_fee`, paid by every transaction.
const FEE: u128 = 1_000;

fn sk(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i; 32]).expect("32-byte seed")
}
fn acct(i: u8) -> AccountSecretKey {
    AccountSecretKey::from_seed(&[i; 32])
}
fn addr(k: &impl HasAddress) -> Address {
    k.address()
}
/// Genesis consensus keys 201..=203, then keys 211..=213 for validators created by users.
fn consensus_keys() -> Vec<SecretKey> {
    (201..=203).chain(211..=213).map(sk).collect()
}
/// Signers: users 1..=4 and the genesis operators 101..=103.
fn signer_seeds() -> Vec<u8> {
    (1..=4).chain(101..=103).collect()
}
fn signer(i: usize) -> AccountSecretKey {
    let all = signer_seeds();
    acct(all[i % all.len()])
}
fn everyone() -> Vec<Address> {
    signer_seeds().into_iter().map(|i| addr(&acct(i))).collect()
}

fn genesis() -> pb::Genesis {
    let mut accounts: Vec<pb::GenesisAccount> = (1..=4)
        .map(|i| pb::GenesisAccount {
            address: addr(&acct(i)).0.to_vec(),
            balance: (1000 * UNIT + u128::from(i) * 7).to_string(),
        })
        .collect();
    let mut validators = Vec::new();
    for i in 0..3u8 {
        let op = acct(101 + i);
        let c = sk(201 + i);
        accounts.push(pb::GenesisAccount {
            address: addr(&op).0.to_vec(),
            balance: (100 * UNIT).to_string(),
        });
        validators.push(pb::GenesisValidator {
            operator: addr(&op).0.to_vec(),
            consensus_public_key: c.public_key().to_bytes().to_vec(),
            proof_of_possession: c.prove_possession().to_bytes().to_vec(),
            self_bond: (10 * UNIT * (u128::from(i) + 1) + 3).to_string(),
            commission_rate_bps: 1_000 * u32::from(i),
            commission_max_rate_bps: 5_000,
            commission_max_change_bps: 100,
        });
    }
    pb::Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 0,
        params: Some(pb::GenesisParams {
            unbonding_period: UNBONDING,
            max_validators: 3,
            slash_fraction_double_sign_bps: BPS,
            jail_period: 2,
            ..Default::default()
        }),
        accounts,
        validators,
    }
}

fn chain() -> ChainId {
    ChainId::new(CHAIN).expect("chain id")
}

fn sign_body(k: &AccountSecretKey, chain_id: &str, nonce: u64, kind: Kind) -> pb::Transaction {
    tx::sign(
        k,
        &chain(),
        pb::TxBody {
            chain_id: chain_id.into(),
            nonce,
            fee: FEE.to_string(),
            kind: Some(kind),
        },
    )
}

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u128,
    },
    Bond {
        who: usize,
        val: usize,
        amount: u128,
    },
    /// Unbond about `num/16` of the delegation (plus `num` shares, to hit rounding).
    Unbond {
        who: usize,
        val: usize,
        num: u128,
    },
    CreateValidator {
        who: usize,
        key: usize,
        bond: u128,
    },
    Unjail {
        who: usize,
        val: usize,
    },
    Evidence {
        val: usize,
        back: u64,
    },
    Replay,
    WrongNonce {
        who: usize,
        ahead: bool,
    },
    WrongChain {
        who: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..7usize, 0..7usize, 0..300 * UNIT)
            .prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        3 => (0..7usize, 0..3usize, 0..200 * UNIT)
            .prop_map(|(who, val, amount)| Op::Bond { who, val, amount }),
        1 => (0..7usize, 0..6usize, 0..200 * UNIT)
            .prop_map(|(who, val, amount)| Op::Bond { who, val, amount }),
        4 => (0..7usize, 0..3usize, 0..=17u128)
            .prop_map(|(who, val, num)| Op::Unbond { who, val, num }),
        1 => (0..7usize, 0..6usize, 0..=17u128)
            .prop_map(|(who, val, num)| Op::Unbond { who, val, num }),
        1 => (0..4usize, 3..6usize, 0..60 * UNIT)
            .prop_map(|(who, key, bond)| Op::CreateValidator { who, key, bond }),
        1 => (0..7usize, 0..6usize).prop_map(|(who, val)| Op::Unjail { who, val }),
        // Mostly recent infractions by genesis validators, so slashes meet unbonding entries.
        2 => (0..3usize, 1..=3u64).prop_map(|(val, back)| Op::Evidence { val, back }),
        1 => (0..6usize, 1..=UNBONDING + 1).prop_map(|(val, back)| Op::Evidence { val, back }),
        1 => Just(Op::Replay),
        1 => (0..7usize, any::<bool>()).prop_map(|(who, ahead)| Op::WrongNonce { who, ahead }),
        1 => (0..7usize).prop_map(|who| Op::WrongChain { who }),
    ]
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
                vote_a: Some(vote([0x11; 32])),
                vote_b: Some(vote([0x22; 32])),
            },
        )),
    }
}

fn all_entries(l: &Ledger) -> Vec<UnbondingEntry> {
    everyone()
        .iter()
        .flat_map(|d| l.unbonding(d, None, 1000))
        .collect()
}

fn entry_key(e: &UnbondingEntry) -> (Address, Address, u64) {
    (e.delegator, e.validator, e.id)
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Invariants that must hold between blocks.
fn check_invariants(l: &Ledger) -> Result<(), TestCaseError> {
    let supply = l.supply();
    prop_assert!(supply.balances_out(), "supply identity: {:?}", supply);
    prop_assert_eq!(
        l.total_supply() + l.slashed_total(),
        l.genesis_supply() + supply.minted
    );
    let events: u128 = l
        .slash_events(None, None, 1000)
        .iter()
        .map(|e| e.amount)
        .sum();
    prop_assert_eq!(
        events,
        l.slashed_total(),
        "every burnt token is in an event"
    );
    for v in l.validators(None, 1000) {
        let mut shares = 0u128;
        let mut value = 0u128;
        for d in everyone() {
            if let Some(del) = l.delegation(&d, &v.address) {
                prop_assert!(del.shares > 0);
                shares += del.shares;
                value += del.tokens;
            }
        }
        prop_assert_eq!(shares, v.shares, "delegated shares add up");
        prop_assert!(
            value <= v.tokens,
            "shares never claim more tokens than exist"
        );
    }
    for e in all_entries(l) {
        prop_assert!(e.balance <= e.initial_balance);
        prop_assert!(e.completion_height > l.height());
    }
    // The snapshot re-validates every invariant and is canonical.
    let back = Ledger::decode(&l.encode()).map_err(fail)?;
    prop_assert_eq!(back.app_hash(), l.app_hash());
    Ok(())
}

/// The transaction of an op, and whether it should pass authentication.
fn build_tx(
    l: &Ledger,
    op: &Op,
    last_ok: &Option<pb::Transaction>,
) -> Option<(pb::Transaction, bool)> {
    let nonce = |k: &AccountSecretKey| l.account(&addr(k)).nonce;
    let vals = consensus_keys();
    let people = everyone();
    Some(match op {
        Op::Transfer { from, to, amount } => {
            let k = signer(*from);
            let to = people[to % people.len()];
            let kind = Kind::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: amount.to_string(),
            });
            (sign_body(&k, CHAIN, nonce(&k), kind), true)
        }
        Op::Bond { who, val, amount } => {
            let k = signer(*who);
            let kind = Kind::Bond(pb::Bond {
                validator: addr(&vals[*val]).0.to_vec(),
                amount: amount.to_string(),
            });
            (sign_body(&k, CHAIN, nonce(&k), kind), true)
        }
        Op::Unbond { who, val, num } => {
            let k = signer(*who);
            let v = addr(&vals[*val]);
            let held = l.delegation(&addr(&k), &v).map(|d| d.shares).unwrap_or(1);
            let kind = Kind::Unbond(pb::Unbond {
                validator: v.0.to_vec(),
                shares: (held / 16 * num + num).to_string(),
            });
            (sign_body(&k, CHAIN, nonce(&k), kind), true)
        }
        Op::CreateValidator { who, key, bond } => {
            let k = signer(*who);
            let c = &vals[*key];
            let kind = Kind::CreateValidator(pb::CreateValidator {
                consensus_public_key: c.public_key().to_bytes().to_vec(),
                proof_of_possession: c.prove_possession().to_bytes().to_vec(),
                self_bond: bond.to_string(),
                commission_rate_bps: 700,
                commission_max_rate_bps: 2_000,
                commission_max_change_bps: 50,
            });
            (sign_body(&k, CHAIN, nonce(&k), kind), true)
        }
        Op::Unjail { who, val } => {
            let k = signer(*who);
            let kind = Kind::Unjail(pb::Unjail {
                validator: addr(&vals[*val]).0.to_vec(),
            });
            (sign_body(&k, CHAIN, nonce(&k), kind), true)
        }
        Op::Replay => (last_ok.clone()?, false),
        Op::WrongNonce { who, ahead } => {
            let k = signer(*who);
            let n = nonce(&k);
            let n = if *ahead { n + 1 } else { n.checked_sub(1)? };
            let kind = Kind::Transfer(pb::Transfer {
                to: addr(&k).0.to_vec(),
                amount: "1".into(),
            });
            (sign_body(&k, CHAIN, n, kind), false)
        }
        Op::WrongChain { who } => {
            let k = signer(*who);
            let kind = Kind::Transfer(pb::Transfer {
                to: addr(&k).0.to_vec(),
                amount: "1".into(),
            });
            (sign_body(&k, "other-chain", nonce(&k), kind), false)
        }
        Op::Evidence { .. } => return None,
    })
}

/// Applies one evidence op and checks the exact slash amounts against a
/// model computed from the state before.
fn evidence(
    l: &mut Ledger,
    val: usize,
    back: u64,
    applied: &mut Vec<pb::Evidence>,
) -> Result<(), TestCaseError> {
    let current = l.height() + 1;
    let Some(h) = current.checked_sub(back).filter(|h| *h >= 1) else {
        return Ok(());
    };
    let k = &consensus_keys()[val];
    let v = addr(k);
    let ev = duplicate_vote(k, h);
    let before_hash = l.state_digest();
    let before_entries = all_entries(l);
    let before_tokens = l.validator(&v).map(|x| x.tokens);
    let power = l.validator_set(h).and_then(|s| s.get(&v)).map(|x| x.power);
    let tombstoned = l.validator(&v).is_some_and(|x| x.tombstoned);
    let supply = l.total_supply();
    let res = l.apply_evidence(&ev);
    match (power, back >= UNBONDING, tombstoned) {
        (_, true, _) => {
            prop_assert!(
                matches!(res, Err(EvidenceError::TooOld { .. })),
                "{:?}",
                res
            );
        }
        (None, false, _) => {
            prop_assert!(
                matches!(res, Err(EvidenceError::NotAValidator { .. })),
                "{:?}",
                res
            );
        }
        (Some(_), false, true) => {
            prop_assert_eq!(res, Err(EvidenceError::AlreadyTombstoned(v)));
        }
        (Some(power), false, false) => {
            let events = res.map_err(fail)?;
            prop_assert_eq!(events.len(), 1);
            let e = &events[0];
            let target = u128::from(power) * UNIT * u128::from(BPS) / 10_000;
            let after = all_entries(l);
            let mut from_unbonding = 0u128;
            for b in &before_entries {
                let a = after
                    .iter()
                    .find(|a| entry_key(a) == entry_key(b))
                    .ok_or_else(|| fail("entry vanished"))?;
                let cut = if b.validator == v && b.creation_height + 1 >= h {
                    (b.initial_balance * u128::from(BPS) / 10_000).min(b.balance)
                } else {
                    0
                };
                prop_assert_eq!(
                    a.balance,
                    b.balance - cut,
                    "entry loses exactly its fraction"
                );
                from_unbonding += cut;
            }
            let tokens = before_tokens.ok_or_else(|| fail("validator missing"))?;
            let from_bonded = target.saturating_sub(from_unbonding).min(tokens);
            // No redelegations in this harness (see economics_props.rs).
            prop_assert_eq!(e.from_redelegations, 0);
            prop_assert_eq!(e.from_unbonding, from_unbonding);
            prop_assert_eq!(e.from_bonded, from_bonded);
            prop_assert_eq!(e.amount, from_bonded + from_unbonding);
            prop_assert_eq!(
                l.validator(&v).map(|x| x.tokens),
                Some(tokens - from_bonded)
            );
            prop_assert_eq!(l.total_supply(), supply - e.amount);
            let view = l.validator(&v).ok_or_else(|| fail("validator missing"))?;
            prop_assert!(view.jailed && view.tombstoned);
            applied.push(ev);
            return Ok(());
        }
    }
    prop_assert_eq!(
        l.state_digest(),
        before_hash,
        "rejected evidence changes nothing"
    );
    Ok(())
}

/// Block `h`'s information: proposed by the first member of its set, and
/// carrying a certificate signed by every member of the set of `h − 1`.
fn full_certificate(l: &Ledger, h: Height) -> BlockInfo {
    let proposer = l
        .validator_set(h)
        .and_then(|s| s.validators().first().map(|v| v.address));
    let signers = (h > 1)
        .then(|| {
            l.validator_set(h - 1)
                .map(|s| vec![0xff; s.len().div_ceil(8)])
        })
        .flatten();
    BlockInfo {
        proposer,
        last_commit_signers: signers,
    }
}

/// Runs blocks of ops, checking every property after each step; returns the
/// number of unbonding payouts and slashes seen.
fn run(blocks: Vec<Vec<Op>>) -> Result<(usize, usize), TestCaseError> {
    let mut l = Ledger::from_genesis(&genesis()).map_err(fail)?;
    let mut last_ok: Option<pb::Transaction> = None;
    let mut applied: Vec<pb::Evidence> = Vec::new();
    let mut payouts = 0;
    for ops in blocks {
        let h = l.height() + 1;
        let due: BTreeSet<_> = all_entries(&l)
            .iter()
            .filter(|e| e.completion_height == h)
            .map(entry_key)
            .collect();
        l.begin_block(h, &full_certificate(&l, h)).map_err(fail)?;
        // Evidence applied in an earlier block is refused and slashes nothing.
        if let Some(old) = applied.last() {
            let slashed = l.slashed_total();
            prop_assert!(l.apply_evidence(old).is_err());
            prop_assert_eq!(l.slashed_total(), slashed);
        }
        for op in &ops {
            if let Op::Evidence { val, back } = op {
                evidence(&mut l, *val, *back, &mut applied)?;
                continue;
            }
            let Some((t, authentic)) = build_tx(&l, op, &last_ok) else {
                continue;
            };
            let before = l.state_digest();
            let r = l.deliver_tx(&t);
            match &r.outcome {
                TxOutcome::Ok => {
                    prop_assert!(
                        authentic,
                        "a replayed or mis-addressed tx executed: {:?}",
                        op
                    );
                    last_ok = Some(t);
                }
                TxOutcome::Failed(_) => prop_assert!(authentic, "{:?}", op),
                TxOutcome::Rejected(TxError::CannotPayFee { fee, have }) => {
                    prop_assert_eq!(*fee, FEE);
                    prop_assert!(*have < FEE, "an account that can pay was refused");
                    prop_assert_eq!(l.state_digest(), before, "a rejected tx changes nothing");
                }
                TxOutcome::Rejected(e) => {
                    prop_assert!(!authentic, "unexpected rejection: {}", e);
                    prop_assert!(
                        matches!(e, TxError::WrongNonce { .. } | TxError::WrongChainId { .. }),
                        "{}",
                        e
                    );
                    prop_assert_eq!(l.state_digest(), before, "a rejected tx changes nothing");
                }
            }
        }
        let end = l.end_block().map_err(fail)?;
        // Unbonding pays out exactly at its completion height: not before, not after.
        let paid: BTreeSet<_> = end.matured.iter().map(entry_key).collect();
        prop_assert_eq!(&paid, &due);
        payouts += paid.len();
        prop_assert_eq!(end.app_hash, l.app_hash());
        prop_assert_eq!(Some(&end.next_validator_set), l.validator_set(h + 2));
        check_invariants(&l)?;
    }
    Ok((payouts, applied.len()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_blocks_keep_every_ledger_invariant(
        blocks in prop::collection::vec(prop::collection::vec(op(), 0..5), 1..20)
    ) {
        run(blocks)?;
    }
}

/// A fixed sequence that exercises the paths a random one may miss: an
/// unbonding entry slashed, then maturing; a repeated slash; a replay.
#[test]
fn scripted_sequence_hits_unbonding_and_slashing() {
    let mut blocks = vec![
        vec![Op::Bond {
            who: 0,
            val: 1,
            amount: 100 * UNIT,
        }],
        vec![Op::Unbond {
            who: 0,
            val: 1,
            num: 4,
        }],
        vec![],
        vec![Op::Evidence { val: 1, back: 1 }],
        vec![Op::Evidence { val: 1, back: 2 }, Op::Replay],
    ];
    blocks.extend((0..UNBONDING).map(|_| vec![]));
    let (payouts, slashes) = run(blocks).expect("scripted run");
    assert_eq!(payouts, 1);
    assert_eq!(slashes, 1);
}
