//! Token amounts: strict parsing of the decimal strings that carry them on
//! the wire, and 256-bit-intermediate `a · b / d` for the share exchange rate.

/// Largest number of decimal digits a u128 can have (`u128::MAX` has 39).
pub const MAX_AMOUNT_DIGITS: usize = 39;

/// Why an amount string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The string is empty.
    #[error("amount is empty")]
    Empty,
    /// The string is longer than any u128.
    #[error("amount has {0} characters, at most 39 decimal digits are allowed")]
    TooLong(usize),
    /// A character is not an ASCII digit (no signs, spaces, separators or exponents).
    #[error("amount {0:?} must contain only decimal digits")]
    NotDigits(String),
    /// Leading zeros would give one amount several encodings.
    #[error("amount {0:?} has leading zeros")]
    LeadingZero(String),
    /// The value does not fit in 128 bits.
    #[error("amount {0:?} does not fit in 128 bits")]
    Overflow(String),
}

/// Parses a u128 amount from its canonical decimal string: 1 to 39 ASCII
/// digits, no sign, no leading zeros (except "0" itself). The length is
/// checked before anything else, so hostile input costs nothing.
pub fn parse_amount(s: &str) -> Result<u128, AmountError> {
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    if s.len() > MAX_AMOUNT_DIGITS {
        return Err(AmountError::TooLong(s.len()));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotDigits(s.to_string()));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(AmountError::LeadingZero(s.to_string()));
    }
    let mut v: u128 = 0;
    for b in s.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .ok_or_else(|| AmountError::Overflow(s.to_string()))?;
    }
    Ok(v)
}

/// Full 256-bit product of two u128 values as (high, low) halves.
fn wide_mul(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a_hi, a_lo) = (a >> 64, a & MASK);
    let (b_hi, b_lo) = (b >> 64, b & MASK);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    // Middle column: carries collected explicitly, every partial fits in u128.
    let mid = (ll >> 64) + (lh & MASK) + (hl & MASK);
    let lo = (ll & MASK) | (mid << 64);
    let hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);
    (hi, lo)
}

/// `floor(a · b / d)` computed without intermediate overflow; `None` when
/// `d == 0` or the quotient does not fit in u128. Rounding down is what keeps
/// the share arithmetic from ever creating tokens.
pub fn mul_div_floor(a: u128, b: u128, d: u128) -> Option<u128> {
    if d == 0 {
        return None;
    }
    if let Some(p) = a.checked_mul(b) {
        return Some(p / d);
    }
    let (hi, lo) = wide_mul(a, b);
    if hi >= d {
        return None;
    }
    // Schoolbook binary long division of (hi, lo) by d; the remainder stays below d.
    let mut r = hi;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = r >> 127;
        r = (r << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || r >= d {
            r = r.wrapping_sub(d);
            q |= 1;
        }
    }
    Some(q)
}

/// `floor(amount · bps / 10_000)`: a fraction given in basis points.
pub fn fraction_bps(amount: u128, bps: u32) -> u128 {
    // bps ≤ 10_000 is enforced by the parameters, so the quotient fits.
    mul_div_floor(amount, u128::from(bps), 10_000).unwrap_or(amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_accepts_canonical_and_rejects_everything_else() {
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount("1234"), Ok(1234));
        assert_eq!(parse_amount(&u128::MAX.to_string()), Ok(u128::MAX));
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        assert!(matches!(
            parse_amount("01"),
            Err(AmountError::LeadingZero(_))
        ));
        assert!(matches!(parse_amount("-1"), Err(AmountError::NotDigits(_))));
        assert!(matches!(parse_amount("+1"), Err(AmountError::NotDigits(_))));
        assert!(matches!(parse_amount(" 1"), Err(AmountError::NotDigits(_))));
        assert!(matches!(
            parse_amount("1e5"),
            Err(AmountError::NotDigits(_))
        ));
        assert!(matches!(
            parse_amount("340282366920938463463374607431768211456"),
            Err(AmountError::Overflow(_))
        ));
        assert!(matches!(
            parse_amount(&"9".repeat(40)),
            Err(AmountError::TooLong(40))
        ));
    }

    #[test]
    fn mul_div_edges() {
        assert_eq!(mul_div_floor(1, 1, 0), None);
        assert_eq!(
            mul_div_floor(u128::MAX, u128::MAX, u128::MAX),
            Some(u128::MAX)
        );
        assert_eq!(mul_div_floor(u128::MAX, 2, 1), None);
        assert_eq!(mul_div_floor(u128::MAX, 3, 4), Some(u128::MAX / 4 * 3 + 2));
        assert_eq!(fraction_bps(1_000_000, 500), 50_000);
        assert_eq!(fraction_bps(19, 500), 0);
    }

    proptest! {
        #[test]
        fn mul_div_matches_split_computation(a in any::<u64>(), b in any::<u128>(), d in 1u128..) {
            // a·b/d with a < 2^64: check against q·d + r decomposition.
            let got = mul_div_floor(u128::from(a), b, d);
            if let Some(q) = got {
                // q·d ≤ a·b < (q+1)·d, checked in 256 bits.
                let (ph, pl) = wide_mul(u128::from(a), b);
                let (qh, ql) = wide_mul(q, d);
                prop_assert!((qh, ql) <= (ph, pl));
                let (q1l, c) = ql.overflowing_add(d);
                let q1h = qh + u128::from(c);
                prop_assert!((q1h, q1l) > (ph, pl));
            } else {
                let (ph, _) = wide_mul(u128::from(a), b);
                prop_assert!(ph >= d);
            }
        }

        #[test]
        fn parse_roundtrips(v in any::<u128>()) {
            prop_assert_eq!(parse_amount(&v.to_string()), Ok(v));
        }
    }
}
