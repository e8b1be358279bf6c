//! Fee per byte: the order in which the mempool fills blocks and, when it is
//! full, which transaction it gives up first.
//!
//! Rates are compared exactly by cross-multiplication (`fee_a · size_b` vs
//! `fee_b · size_a` in u128; sizes are at most a few KiB, so only fees above
//! 2^110 base units could saturate, far beyond any supply). Equal rates are
//! broken by arrival order, so the earlier transaction goes first and is
//! evicted last.

use std::cmp::Ordering;

use agora_proto::v1::Transaction;
use agora_validator::ledger::amount::parse_amount;

/// A transaction's fee per encoded byte, with its arrival sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRate {
    /// Fee in base units.
    pub fee: u128,
    /// Encoded size in bytes (at least 1).
    pub size: usize,
    /// Arrival order in the mempool (lower is earlier).
    pub seq: u64,
}

impl FeeRate {
    /// The rate a transaction offers, read from its body without any other
    /// check (an unparsable fee counts as zero: the ledger refuses it anyway).
    pub fn of_tx(tx: &Transaction, size: usize, seq: u64) -> Self {
        let fee = tx
            .body
            .as_ref()
            .and_then(|b| parse_amount(&b.fee).ok())
            .unwrap_or(0);
        Self { fee, size, seq }
    }

    /// Compares fee per byte only.
    pub fn cmp_rate(&self, other: &Self) -> Ordering {
        let a = self.fee.saturating_mul(other.size.max(1) as u128);
        let b = other.fee.saturating_mul(self.size.max(1) as u128);
        a.cmp(&b)
    }
}

impl Ord for FeeRate {
    /// Higher rate is greater; at equal rates the earlier arrival is greater
    /// (a max-heap pops it first).
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_rate(other).then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_fee_per_byte_then_arrival() {
        let r = |fee, size, seq| FeeRate { fee, size, seq };
        // 10 per 100 bytes beats 15 per 200 bytes.
        assert!(r(10, 100, 5) > r(15, 200, 1));
        // Equal rate (1/10): the earlier one is greater.
        assert!(r(10, 100, 1) > r(20, 200, 2));
        assert_eq!(r(10, 100, 1).cmp_rate(&r(20, 200, 2)), Ordering::Equal);
        // Huge fees saturate instead of wrapping.
        assert!(r(u128::MAX, 1, 9) > r(u128::MAX / 2, 1000, 1));
    }
}
