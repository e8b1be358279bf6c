//! A validator that catches up by block sync starts each synced height only
//! to apply the certified block it holds: it makes no proposal there (the
//! height is decided), unless that block is refused.

use super::*;

/// The heights of `records` whose block validator `j` proposed.
fn proposed_by(records: &[CommitRecord], j: u8) -> Vec<Height> {
    let me = Address::of(&key(j).public_key());
    records
        .iter()
        .filter(|r| r.block.header.as_ref().expect("header").proposer_address == me.0)
        .map(|r| r.height)
        .collect()
}

/// What a validator signed and sent: its proposals and signing states.
fn signed(actions: &[Action<usize>]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::BroadcastProposal(p) => Some(format!("proposal at {}", p.height)),
            Action::PersistSigningState(s) => Some(format!("signing state at {}", s.height)),
            Action::BroadcastVote(v) => Some(format!("vote at {}", v.height)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_syncing_validator_signs_nothing_at_the_heights_it_applies() {
    let (records, _) = make_chain(4, 8);
    // Negative control of the premise: each validator proposed blocks of
    // this chain, so each is the round-0 proposer of heights it syncs, and
    // would propose there if the request were not held back (as before:
    // one signing state, one proposal and a cut synced run per such height).
    for j in 0..4 {
        assert!(
            !proposed_by(&records, j).is_empty(),
            "validator {j} proposes"
        );
        let mut v = asked_by(Some(key(j)), response(&records, None));
        let actions = apply_all_synced(&mut v);
        assert!(penalties(&actions).is_empty(), "{actions:?}");
        assert_eq!(v.tip_height(), 8);
        assert_eq!(v.tip().block_hash, records[7].block_hash);
        assert_eq!(signed(&actions), Vec::<String>::new(), "validator {j}");
    }
}

#[test]
fn a_proposal_held_back_is_made_when_the_synced_block_is_refused() {
    let (records, _) = make_chain(4, 8);
    // Validator j is the proposer of a height h > 1; the block of h that
    // peer 0 serves has a foreign certificate, so the height stays open.
    let (j, h) = (0..4)
        .find_map(|j| {
            proposed_by(&records, j)
                .into_iter()
                .find(|h| *h > 1)
                .map(|h| (j, h))
        })
        .expect("a proposer of a height above 1");
    let mut v = asked_by(Some(key(j)), response(&records, Some(h)));
    let actions = apply_all_synced(&mut v);
    assert_eq!(v.tip_height(), h - 1, "the blocks before it are applied");
    assert!(
        penalties(&actions).iter().any(|(p, _)| *p == 0),
        "the server is charged: {actions:?}"
    );
    assert_eq!(
        signed(&actions),
        [
            format!("signing state at {h}"),
            format!("proposal at {h}"),
            format!("signing state at {h}"),
            format!("vote at {h}"),
        ],
        "only at the open height: its proposal, then our prevote for it"
    );
}
