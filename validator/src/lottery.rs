//! The stake-weighted proposer lottery (DESIGN §5).
//!
//! `x` = first 8 bytes (big-endian) of SHA3-256("agora/lottery/v1" ‖ seed_{h−1}
//! ‖ h ‖ r); `target` = (x · total_power) >> 64; the proposer is the first
//! validator in canonical order whose running power sum exceeds `target`, so
//! each validator wins with probability power / total (up to 2^-64 rounding).

use crate::crypto::{Hash, sha3_256_parts};
use crate::types::{Height, Power, Round};
use crate::validator_set::{Validator, ValidatorSet};

/// Domain prefix of the lottery draw.
pub const LOTTERY_PREFIX: &[u8] = b"agora/lottery/v1";

/// The uniform 64-bit draw of (seed, height, round).
pub fn draw(prev_seed: &Hash, height: Height, round: Round) -> u64 {
    let h = sha3_256_parts(&[
        LOTTERY_PREFIX,
        prev_seed,
        &height.to_be_bytes(),
        &round.to_be_bytes(),
    ]);
    let mut x = [0u8; 8];
    x.copy_from_slice(&h[..8]);
    u64::from_be_bytes(x)
}

/// Maps a draw to a position in `[0, total)`.
pub fn target(x: u64, total: Power) -> Power {
    (((x as u128) * (total as u128)) >> 64) as Power
}

/// Index, in the given (canonical) order, of the first entry whose cumulative
/// power exceeds `target`.
pub fn pick_index(powers: impl IntoIterator<Item = Power>, target: Power) -> usize {
    let mut sum: Power = 0;
    let mut last = 0;
    for (i, p) in powers.into_iter().enumerate() {
        sum = sum.saturating_add(p);
        if sum > target {
            return i;
        }
        last = i;
    }
    // Unreachable for target < total; the last validator is the safe answer.
    last
}

/// The proposer of (height, round) for a set, given the seed of height − 1.
pub fn proposer<'a>(
    set: &'a ValidatorSet,
    prev_seed: &Hash,
    height: Height,
    round: Round,
) -> &'a Validator {
    let t = target(draw(prev_seed, height, round), set.total_power());
    &set.validators()[pick_index(set.validators().iter().map(|v| v.power), t)]
}
