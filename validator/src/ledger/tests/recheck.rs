//! The mempool's scoped re-check (`ledger::recheck`): a pending transfer
//! whose signer's and recipient's accounts a block left alone keeps its
//! verdict, and every other kind is re-checked.

use super::*;
use crate::ledger::recheck::{accounts_read, changed_accounts};
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
