//! Downtime (DESIGN §8): a validator whose precommits are missing from more
//! than (1 − `min_signed_per_window`) of the last `signed_blocks_window`
//! certificates is jailed for `downtime_jail_heights`, not tombstoned, and
//! loses `slash_fraction_downtime` of its bonded tokens.
//!
//! Block h carries the certificate of h−1, a bitmap over the set of h−1;
//! at the start of block h every member of that set gets one more position
//! in its window: missed or signed. The window is a ring of bits, so the
//! count of misses among the last `window` certificates is kept exactly in
//! O(1) per validator and block.
//!
//! The slash takes `floor(tokens · bps / 10_000)` from the validator's
//! bonded tokens only; its shares do not change, so every delegator loses
//! the same fraction of its stake. (Unbonding entries are not touched:
//! unlike double signing, downtime harms liveness, not safety, and stake
//! that left before the jail did not cause it.) The window restarts empty
//! when the validator is jailed, so after `Unjail` it has a full window to
//! prove itself again.

use super::amount::fraction_bps;
use super::state::{JailReason, SigningInfo, SlashEvent, SlashReason, State};
use crate::types::{Address, Height};
use crate::validator_set::ValidatorSet;

/// Addresses (with power) of the validators whose bits are set in a
/// certificate bitmap over `set`; bits beyond the set are ignored (the
/// certificate was verified before the block reached the ledger).
pub fn signers_of(set: &ValidatorSet, bitmap: &[u8]) -> Vec<(Address, u64)> {
    set.validators()
        .iter()
        .enumerate()
        .filter(|(i, _)| bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1))
        .map(|(_, v)| (v.address, v.power))
        .collect()
}

/// Records one certificate of height `certified` (carried by block
/// `current`) in every member's window, and jails and slashes those that
/// missed too many. Returns the slash events.
pub fn record_certificate(
    state: &mut State,
    set: &ValidatorSet,
    bitmap: &[u8],
    certified: Height,
    current: Height,
) -> Vec<SlashEvent> {
    let window = state.params.signed_blocks_window;
    let max_missed = state.params.max_missed_per_window();
    let mut events = Vec::new();
    for (i, member) in set.validators().iter().enumerate() {
        let address = member.address;
        if state.validators.get(&address).is_none_or(|v| v.jailed) {
            continue;
        }
        let signed = bitmap.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
        let info = state
            .signing
            .entry(address)
            .or_insert_with(|| SigningInfo::new(window));
        record(info, window, !signed);
        if info.missed > max_missed {
            state.signing.remove(&address);
            if let Some(e) = jail_for_downtime(state, address, certified, current) {
                events.push(e);
            }
        }
    }
    events
}

/// Pushes one position into a window ring.
fn record(info: &mut SigningInfo, window: u64, missed: bool) {
    debug_assert!(window > 0 && info.bits.len() as u64 * 8 >= window);
    let pos = info.counted % window;
    let (byte, bit) = ((pos / 8) as usize, pos % 8);
    let was_missed = info.bits[byte] >> bit & 1 == 1;
    if info.counted >= window && was_missed {
        info.missed -= 1;
    }
    if missed {
        info.bits[byte] |= 1 << bit;
        info.missed += 1;
    } else {
        info.bits[byte] &= !(1 << bit);
    }
    info.counted += 1;
    debug_assert!(info.missed <= window.min(info.counted));
}

fn jail_for_downtime(
    state: &mut State,
    address: Address,
    infraction_height: Height,
    current: Height,
) -> Option<SlashEvent> {
    let bps = state.params.slash_fraction_downtime_bps;
    let jail = state.params.downtime_jail_heights;
    let v = state.validators.get_mut(&address)?;
    let amount = fraction_bps(v.tokens, bps);
    v.tokens -= amount;
    v.jailed = true;
    v.jail_reason = JailReason::Downtime;
    v.jailed_until = current.saturating_add(jail);
    state.slashed_total = state.slashed_total.saturating_add(amount);
    let event = SlashEvent {
        id: state.slash_events.len() as u64,
        validator: address,
        infraction_height,
        slash_height: current,
        amount,
        from_bonded: amount,
        from_unbonding: 0,
        from_redelegations: 0,
        fraction_bps: bps,
        evidence_hash: [0; 32],
        tombstoned: false,
        reason: SlashReason::Downtime,
    };
    state.slash_events.push(event.clone());
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_counts_the_last_window_exactly() {
        let window = 5;
        let mut info = SigningInfo::new(window);
        let pattern = [
            true, true, false, true, false, false, false, true, true, true,
        ];
        for (n, &m) in pattern.iter().enumerate() {
            record(&mut info, window, m);
            let from = (n + 1).saturating_sub(window as usize);
            let expect = pattern[from..=n].iter().filter(|&&x| x).count() as u64;
            assert_eq!(info.missed, expect, "after {} certificates", n + 1);
        }
    }
}
