//! Transactions: transfers, nonces, fees, signatures, and the decoded
//! forms the mempool and blocks hand over.

use super::*;

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
