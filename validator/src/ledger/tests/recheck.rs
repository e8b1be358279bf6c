//! The mempool's scoped re-check (`ledger::recheck`): a pending transfer
//! whose signer's and recipient's accounts a block left alone keeps its
//! verdict, and every other kind is re-checked.

use super::*;
use crate::ledger::recheck::{accounts_read, changed_accounts, nonce_already_used};
use crate::ledger::tx::TxKind;

#[test]
fn a_transfer_whose_accounts_a_block_left_alone_keeps_its_verdict() {
    let mut l = ledger(2);
    let keys: Vec<AccountSecretKey> = (1..=3).map(user).chain((0..2).map(operator)).collect();
    // Pending: every account sends to every account, at its next nonce and
    // the one after, amounts from tiny to more than any balance.
    let mut pending = Vec::new();
    for from in &keys {
        for to in &keys {
            for nonce in [0, 1] {
                for amount in [1, 99 * UNIT, 999 * UNIT, 1_999 * UNIT] {
                    let t = tx(from, nonce, transfer(addr(to), amount));
                    pending.push(tx::decode(&chain(), &t).expect("decodes"));
                }
            }
        }
    }
    let staking =
        tx::decode(&chain(), &tx(&keys[2], 0, bond(addr(&operator(0)), UNIT))).expect("decodes");
    assert_eq!(
        accounts_read(&staking),
        None,
        "a bond reads more than accounts"
    );
    let verdicts = |l: &Ledger| -> Vec<String> {
        pending
            .iter()
            .map(|d| format!("{:?}", l.recheck_decoded(d)))
            .collect()
    };
    let before = verdicts(&l);
    // User 1 sends nearly everything to user 2.
    let r = block(
        &mut l,
        &[tx(&keys[0], 0, transfer(addr(&keys[1]), 990 * UNIT))],
        &[],
    );
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    let changed = changed_accounts(&r.end.state_changes);
    assert!(changed.contains(&addr(&keys[0])) && changed.contains(&addr(&keys[1])));
    assert!(!changed.contains(&addr(&keys[2])));
    let after = verdicts(&l);
    let (mut kept, mut moved) = (0, 0);
    for ((d, was), now) in pending.iter().zip(&before).zip(&after) {
        assert!(matches!(d.kind, TxKind::Transfer { .. }));
        let read = accounts_read(d).expect("a transfer reads two accounts");
        if read.iter().any(|a| changed.contains(a)) {
            moved += usize::from(was != now);
        } else {
            assert_eq!(was, now, "verdict on {:?} changed", d.kind);
            kept += 1;
        }
    }
    // Negative control: the block did change verdicts (so a rule that
    // re-checked nothing would keep wrong ones), only among the transfers
    // this rule re-checks.
    assert!(moved > 0 && kept > 0, "moved {moved}, kept {kept}");
}

#[test]
fn a_used_nonce_is_known_without_a_signature_check_and_stays_used() {
    let mut l = ledger(2);
    let (a, b) = (user(1), user(2));
    let first = tx(&a, 0, transfer(addr(&b), UNIT));
    assert!(!nonce_already_used(&l, &first), "nothing was committed yet");
    let r = block(&mut l, std::slice::from_ref(&first), &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    // The committed transaction, and another body at its nonce whose
    // signature is garbage: both used, and the full check agrees.
    let mut forged = tx(&a, 0, transfer(addr(&b), 7 * UNIT));
    forged.signature = vec![0; 64];
    for t in [&first, &forged] {
        assert!(nonce_already_used(&l, t));
        let d = tx::decode(&chain(), t).expect("decodes");
        assert!(
            matches!(
                l.recheck_decoded(&d),
                Err(TxError::WrongNonce {
                    expected: 1,
                    got: 0
                })
            ),
            "{:?}",
            l.recheck_decoded(&d)
        );
    }
    // Negative controls: the signer's next nonce, and another account's
    // first one, are not used; neither is a malformed key or a missing body.
    let next = tx(&a, 1, transfer(addr(&b), UNIT));
    assert!(!nonce_already_used(&l, &next));
    assert!(!nonce_already_used(
        &l,
        &tx(&b, 0, transfer(addr(&a), UNIT))
    ));
    let mut short_key = first.clone();
    short_key.public_key.truncate(31);
    assert!(!nonce_already_used(&l, &short_key));
    let mut no_body = first.clone();
    no_body.body = None;
    assert!(!nonce_already_used(&l, &no_body));
    // Nonces only grow: still used after the next block, which uses 1 too.
    let r = block(&mut l, std::slice::from_ref(&next), &[]);
    assert!(r.receipts[0].is_ok(), "{}", r.receipts[0].log);
    assert!(nonce_already_used(&l, &first) && nonce_already_used(&l, &next));
}
