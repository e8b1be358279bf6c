//! The cache of checked bodies (`body_hashes.rs`) holds what the body check
//! computed for the blocks the core took, so that validating and applying
//! the height's block do not hash its transactions again. A body is checked
//! before the proposal's signature (a relay that swapped it is at fault, not
//! the proposer), so anyone can get a body checked: proposals nobody signed
//! must not crowd the blocks the core holds out of the cache.

use super::carried_commit::at_height_two;
use super::*;
use crate::block::header_hash;

/// The genuine proposal with its header's time moved by `i` ms: its body
/// still matches its header (the check passes), its signature does not.
fn unsigned_copy(genuine: &pb::Proposal, i: u64) -> pb::Proposal {
    let mut p = genuine.clone();
    let header = p
        .block
        .as_mut()
        .and_then(|b| b.header.as_mut())
        .expect("header");
    header.time_ms += i;
    p
}

/// Checked that it fails: with the cache's first rule (keep the first
/// `MAX_BODIES` bodies checked at the height, whoever sent them) the genuine
/// block's body was not remembered after eight forgeries, so its
/// transactions were hashed twice more (at validation and at commit).
#[test]
fn unsigned_proposals_do_not_crowd_the_genuine_body_out() {
    let (records, msgs) = make_chain(4, 3);
    let (mut e, genuine, _) = at_height_two(&records, &msgs);
    let attacker = 9;
    for i in 1..=16 {
        let actions = e
            .on_proposal(attacker, unsigned_copy(&genuine, i), NOW, &NoMempool)
            .expect("engine");
        assert_eq!(
            penalties(&actions).len(),
            1,
            "each forgery is charged to its sender"
        );
    }
    let block = genuine.block.as_ref().expect("block");
    let hash = header_hash(block.header.as_ref().expect("header"));
    let actions = e
        .on_proposal(0, genuine.clone(), NOW, &NoMempool)
        .expect("engine");
    assert!(penalties(&actions).is_empty());
    assert!(
        e.remembers_body(&hash),
        "the body of the block the core took is remembered"
    );
}
