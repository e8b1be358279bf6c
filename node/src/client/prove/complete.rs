//! Whether a proven list is the whole list. Every page of a list comes
//! with the proof of the leaf that counts it, of the page's height: the
//! delegator's account leaf (its delegations, unbonding entries,
//! redelegations) or the chain-wide leaf (slash events, numbered 0 to the
//! count - 1). Shown that many distinct items, all proven at that one
//! height, the client has them all; shown fewer, it has caught the node
//! leaving some out.

use std::collections::BTreeSet;

use agora_proto::v1 as pb;
use agora_validator::ledger::merkle::leaves;
use prost::Message;
use serde_json::{Value, json};

use super::{Item, ProveQueryError};
use crate::client::pages::MAX_PAGES;
use crate::client::query::QueryKind;

/// Whether every item and counting leaf was proven at one height.
pub(super) fn one_height<'a>(mut proven: impl Iterator<Item = &'a Item>) -> bool {
    let first = proven.next().map(|i| i.proof.height);
    proven.all(|i| Some(i.proof.height) == first)
}

/// The count the proven counting leaf gives for `q`'s list (its proof
/// verified already). An absent account holds nothing.
fn counted(q: &QueryKind, counter: &Item) -> Result<u64, ProveQueryError> {
    let p = &counter.proof;
    let unusable = |e: prost::DecodeError| {
        ProveQueryError::Answer(format!("the proven {}: {e}", counter.what))
    };
    if let QueryKind::Slashes(_) = q {
        if !p.present {
            return Err(ProveQueryError::Answer(
                "the chain-wide leaf is proven absent".into(),
            ));
        }
        return Ok(pb::StateGlobals::decode(&p.value[..])
            .map_err(unusable)?
            .slash_events);
    }
    if !p.present {
        return Ok(0);
    }
    let a = pb::AccountLeaf::decode(&p.value[..]).map_err(unusable)?;
    match q {
        QueryKind::Delegations(_) => Ok(a.delegations),
        QueryKind::Unbonding(_) => Ok(a.unbonding_entries),
        QueryKind::Redelegations(_) => Ok(a.redelegations),
        _ => Err(ProveQueryError::Answer(format!(
            "{} counts no list of this query",
            counter.what
        ))),
    }
}

/// Whether `listed` (every page's items) is the whole list `counters` (one
/// counting leaf per page) count, all proofs verified already: `null` when
/// it cannot be told (pages of different heights, pages not followed), an
/// error when the node left an item out, `true` otherwise. `None` for a
/// query that is not a list.
pub(super) fn check(
    q: &QueryKind,
    listed: &[Item],
    counters: &[Item],
    more: bool,
) -> Result<Option<Value>, ProveQueryError> {
    let Some(counter) = counters.first() else {
        return Ok(None);
    };
    if more {
        let why = format!("the list has more than the {MAX_PAGES} pages followed");
        return Ok(Some(json!({"complete": null, "why": why})));
    }
    if !one_height(listed.iter().chain(counters)) {
        let why = "the pages were proven at different heights (blocks committed between them)";
        return Ok(Some(json!({"complete": null, "why": why})));
    }
    let height = counter.proof.height;
    let count = counted(q, counter)?;
    let keys: BTreeSet<&[u8]> = listed.iter().map(|i| i.key.as_slice()).collect();
    let missing = match q {
        QueryKind::Slashes(_) => (0..count)
            .map(leaves::slash_event_key)
            .filter(|k| !keys.contains(k.as_slice()))
            .count() as u64,
        _ => count.saturating_sub(keys.len() as u64),
    };
    if missing > 0 {
        return Err(ProveQueryError::Incomplete {
            height,
            missing,
            count,
            counter: counter.what.clone(),
        });
    }
    Ok(Some(
        json!({"complete": true, "count": count, "height": height}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_validator::Address;

    fn item(what: &str, key: Vec<u8>, height: u64, value: Option<Vec<u8>>) -> Item {
        Item {
            what: what.into(),
            key,
            proof: pb::StateProof {
                height,
                present: value.is_some(),
                value: value.unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    fn account(delegations: u64, height: u64) -> Item {
        let leaf = pb::AccountLeaf {
            balance: "1".into(),
            nonce: 1,
            delegations,
            ..Default::default()
        };
        let key = leaves::account_key(&Address([1; 20]));
        item("account", key, height, Some(leaf.encode_to_vec()))
    }

    fn delegation(v: u8, height: u64) -> Item {
        let key = leaves::delegation_key(&Address([1; 20]), &Address([v; 20]));
        item("delegation", key, height, Some(vec![]))
    }

    fn slash(id: u64) -> Item {
        item("slash", leaves::slash_event_key(id), 7, Some(vec![]))
    }

    fn globals(slash_events: u64) -> Item {
        let g = pb::StateGlobals {
            slash_events,
            ..Default::default()
        };
        item("globals", leaves::globals_key(), 7, Some(g.encode_to_vec()))
    }

    #[test]
    fn a_list_is_complete_only_with_as_many_distinct_items_as_counted_at_one_height() {
        let q = QueryKind::Delegations(Address([1; 20]));
        let two = [delegation(2, 5), delegation(3, 5)];
        let counters = [account(2, 5), account(2, 5)];
        let ok = check(&q, &two, &counters, false).unwrap().unwrap();
        assert_eq!(ok, json!({"complete": true, "count": 2, "height": 5}));

        // One left out, or one listed twice in its place: caught.
        let short = check(&q, &two[..1], &counters, false).unwrap_err();
        assert!(
            matches!(
                short,
                ProveQueryError::Incomplete {
                    missing: 1,
                    count: 2,
                    height: 5,
                    ..
                }
            ),
            "{short}"
        );
        let padded = [delegation(2, 5), delegation(2, 5)];
        assert!(matches!(
            check(&q, &padded, &counters, false),
            Err(ProveQueryError::Incomplete { missing: 1, .. })
        ));

        // Pages of two heights, or pages left unfollowed: not shown either way.
        let moved = [delegation(2, 5), delegation(3, 6)];
        let unknown = check(&q, &moved, &counters, false).unwrap().unwrap();
        assert_eq!(unknown["complete"], Value::Null);
        let unknown = check(&q, &two, &counters, true).unwrap().unwrap();
        assert_eq!(unknown["complete"], Value::Null);

        // An absent account holds nothing; not a list: nothing to say.
        let nobody = [item("account", vec![1], 5, None)];
        let empty = check(&q, &[], &nobody, false).unwrap().unwrap();
        assert_eq!(empty["count"], 0);
        assert_eq!(check(&QueryKind::Supply, &two, &[], false).unwrap(), None);
    }

    #[test]
    fn slash_events_are_complete_when_every_id_below_the_count_is_shown() {
        let q = QueryKind::Slashes(None);
        let all = [slash(0), slash(1), slash(2)];
        let ok = check(&q, &all, &[globals(3)], false).unwrap().unwrap();
        assert_eq!(ok["complete"], true);
        // Three items, but id 1 replaced by one past the count.
        let gap = [slash(0), slash(2), slash(3)];
        assert!(matches!(
            check(&q, &gap, &[globals(3)], false),
            Err(ProveQueryError::Incomplete {
                missing: 1,
                count: 3,
                ..
            })
        ));
    }
}
