//! Genesis parameters of staking and slashing (DESIGN §8), with their defaults.

use super::amount::{AmountError, parse_amount};
use crate::types::Height;
use agora_proto::v1 as pb;

/// Why genesis parameters were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// An amount field is not a canonical decimal u128.
    #[error("genesis parameter {field}: {source}")]
    Amount {
        /// Name of the field.
        field: &'static str,
        /// What is wrong with it.
        source: AmountError,
    },
    /// A value is outside the range the ledger supports.
    #[error("genesis parameter {field} = {value} is out of range ({range})")]
    OutOfRange {
        /// Name of the field.
        field: &'static str,
        /// The value given.
        value: String,
        /// The allowed range, for the operator.
        range: &'static str,
    },
}

/// Staking and slashing parameters, fixed at genesis.
///
/// Protobuf has no field presence for scalars, so a zero or empty field in
/// the genesis file means "use the default"; a chain that wants a zero jail
/// period or zero slashing cannot express it (neither is a sensible setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Base units per unit of voting power.
    pub power_reduction: u128,
    /// Heights between an unbond and its payout; also the evidence window.
    pub unbonding_period: Height,
    /// Size of the active validator set.
    pub max_validators: u32,
    /// Least self-bond a validator's operator must keep.
    pub min_self_bond: u128,
    /// Fraction of the power at the infraction height slashed for double signing, in basis points.
    pub slash_fraction_double_sign_bps: u32,
    /// Most unbonding entries one delegator may have pending with one validator.
    pub max_unbonding_entries: u32,
    /// Heights a validator stays jailed after its self-bond fell below the minimum.
    pub jail_period: Height,
}

/// Default base units per unit of power.
pub const DEFAULT_POWER_REDUCTION: u128 = 1_000_000;
/// Default unbonding period (a testnet value).
pub const DEFAULT_UNBONDING_PERIOD: Height = 100;
/// Default active set size.
pub const DEFAULT_MAX_VALIDATORS: u32 = 100;
/// Default minimum self-bond: one unit of voting power.
pub const DEFAULT_MIN_SELF_BOND: u128 = 1_000_000;
/// Default double-sign slash: 5%.
pub const DEFAULT_SLASH_BPS: u32 = 500;
/// Default cap of unbonding entries per delegator–validator pair.
pub const DEFAULT_MAX_UNBONDING_ENTRIES: u32 = 7;
/// Default jail period.
pub const DEFAULT_JAIL_PERIOD: Height = 10;

impl Default for Params {
    fn default() -> Self {
        Self {
            power_reduction: DEFAULT_POWER_REDUCTION,
            unbonding_period: DEFAULT_UNBONDING_PERIOD,
            max_validators: DEFAULT_MAX_VALIDATORS,
            min_self_bond: DEFAULT_MIN_SELF_BOND,
            slash_fraction_double_sign_bps: DEFAULT_SLASH_BPS,
            max_unbonding_entries: DEFAULT_MAX_UNBONDING_ENTRIES,
            jail_period: DEFAULT_JAIL_PERIOD,
        }
    }
}

fn amount_or(field: &'static str, s: &str, default: u128) -> Result<u128, ParamsError> {
    if s.is_empty() {
        return Ok(default);
    }
    parse_amount(s).map_err(|source| ParamsError::Amount { field, source })
}

fn or_default<T: PartialEq + Default>(v: T, default: T) -> T {
    if v == T::default() { default } else { v }
}

impl Params {
    /// Reads the parameters of a genesis file (`None` gives the defaults) and
    /// checks their ranges.
    pub fn from_proto(p: Option<&pb::GenesisParams>) -> Result<Self, ParamsError> {
        let Some(p) = p else {
            return Ok(Self::default());
        };
        let params = Self {
            power_reduction: amount_or(
                "power_reduction",
                &p.power_reduction,
                DEFAULT_POWER_REDUCTION,
            )?,
            unbonding_period: or_default(p.unbonding_period, DEFAULT_UNBONDING_PERIOD),
            max_validators: or_default(p.max_validators, DEFAULT_MAX_VALIDATORS),
            min_self_bond: amount_or("min_self_bond", &p.min_self_bond, DEFAULT_MIN_SELF_BOND)?,
            slash_fraction_double_sign_bps: or_default(
                p.slash_fraction_double_sign_bps,
                DEFAULT_SLASH_BPS,
            ),
            max_unbonding_entries: or_default(
                p.max_unbonding_entries,
                DEFAULT_MAX_UNBONDING_ENTRIES,
            ),
            jail_period: or_default(p.jail_period, DEFAULT_JAIL_PERIOD),
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks ranges; also used after decoding a snapshot.
    pub fn validate(&self) -> Result<(), ParamsError> {
        fn range<T: PartialOrd + ToString>(
            field: &'static str,
            v: T,
            lo: T,
            hi: T,
            text: &'static str,
        ) -> Result<(), ParamsError> {
            if v < lo || v > hi {
                return Err(ParamsError::OutOfRange {
                    field,
                    value: v.to_string(),
                    range: text,
                });
            }
            Ok(())
        }
        range(
            "power_reduction",
            self.power_reduction,
            1,
            u128::MAX,
            "at least 1",
        )?;
        // The evidence window keeps one validator set per height in memory.
        range(
            "unbonding_period",
            self.unbonding_period,
            2,
            1_000_000,
            "2..=1000000",
        )?;
        range(
            "max_validators",
            self.max_validators,
            1,
            10_000,
            "1..=10000",
        )?;
        range(
            "min_self_bond",
            self.min_self_bond,
            1,
            u128::MAX,
            "at least 1",
        )?;
        range(
            "slash_fraction_double_sign_bps",
            self.slash_fraction_double_sign_bps,
            1,
            10_000,
            "1..=10000",
        )?;
        range(
            "max_unbonding_entries",
            self.max_unbonding_entries,
            1,
            100,
            "1..=100",
        )?;
        range("jail_period", self.jail_period, 1, 1 << 40, "1..=2^40")?;
        Ok(())
    }

    /// The protobuf form (as a genesis file would carry it).
    pub fn to_proto(&self) -> pb::GenesisParams {
        pb::GenesisParams {
            power_reduction: self.power_reduction.to_string(),
            unbonding_period: self.unbonding_period,
            max_validators: self.max_validators,
            min_self_bond: self.min_self_bond.to_string(),
            slash_fraction_double_sign_bps: self.slash_fraction_double_sign_bps,
            max_unbonding_entries: self.max_unbonding_entries,
            jail_period: self.jail_period,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design() {
        let p = Params::from_proto(Some(&pb::GenesisParams::default())).expect("defaults");
        assert_eq!(p, Params::default());
        assert_eq!(p.power_reduction, 1_000_000);
        assert_eq!(p.unbonding_period, 100);
        assert_eq!(p.max_validators, 100);
        assert_eq!(p.slash_fraction_double_sign_bps, 500);
        assert_eq!(p.max_unbonding_entries, 7);
        assert_eq!(Params::from_proto(None), Ok(Params::default()));
    }

    #[test]
    fn roundtrip_and_rejections() {
        let p = Params {
            unbonding_period: 5,
            ..Params::default()
        };
        assert_eq!(Params::from_proto(Some(&p.to_proto())), Ok(p));
        let bad = pb::GenesisParams {
            slash_fraction_double_sign_bps: 10_001,
            ..Default::default()
        };
        assert!(matches!(
            Params::from_proto(Some(&bad)),
            Err(ParamsError::OutOfRange {
                field: "slash_fraction_double_sign_bps",
                ..
            })
        ));
        let bad = pb::GenesisParams {
            power_reduction: "1_000".into(),
            ..Default::default()
        };
        assert!(matches!(
            Params::from_proto(Some(&bad)),
            Err(ParamsError::Amount {
                field: "power_reduction",
                ..
            })
        ));
    }
}
