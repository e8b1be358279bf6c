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
    /// Least fee a transaction must pay.
    pub min_fee: u128,
    /// Tokens minted by every block.
    pub block_reward: u128,
    /// Share of a block's rewards paid to its proposer, in basis points.
    pub proposer_bonus_bps: u32,
    /// Heights between two commission changes of one validator.
    pub commission_epoch: Height,
    /// Certificates over which missed precommits are counted.
    pub signed_blocks_window: u64,
    /// Least fraction of the window a validator must sign, in basis points.
    pub min_signed_per_window_bps: u32,
    /// Heights a validator jailed for downtime stays jailed.
    pub downtime_jail_heights: Height,
    /// Fraction of bonded tokens slashed for downtime, in basis points.
    pub slash_fraction_downtime_bps: u32,
    /// Most redelegation entries per (delegator, source, destination).
    pub max_redelegation_entries: u32,
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
/// Default least fee per transaction.
pub const DEFAULT_MIN_FEE: u128 = 1_000;
/// Default tokens minted per block: one unit of voting power.
pub const DEFAULT_BLOCK_REWARD: u128 = 1_000_000;
/// Default proposer bonus: 5%.
pub const DEFAULT_PROPOSER_BONUS_BPS: u32 = 500;
/// Default heights between commission changes.
pub const DEFAULT_COMMISSION_EPOCH: Height = 100;
/// Default signing window.
pub const DEFAULT_SIGNED_BLOCKS_WINDOW: u64 = 100;
/// Default least signed fraction of the window: 50%.
pub const DEFAULT_MIN_SIGNED_PER_WINDOW_BPS: u32 = 5_000;
/// Default downtime jail.
pub const DEFAULT_DOWNTIME_JAIL_HEIGHTS: Height = 600;
/// Default downtime slash: 0.01%.
pub const DEFAULT_SLASH_DOWNTIME_BPS: u32 = 1;
/// Default cap of redelegation entries per (delegator, source, destination).
pub const DEFAULT_MAX_REDELEGATION_ENTRIES: u32 = 7;

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
            min_fee: DEFAULT_MIN_FEE,
            block_reward: DEFAULT_BLOCK_REWARD,
            proposer_bonus_bps: DEFAULT_PROPOSER_BONUS_BPS,
            commission_epoch: DEFAULT_COMMISSION_EPOCH,
            signed_blocks_window: DEFAULT_SIGNED_BLOCKS_WINDOW,
            min_signed_per_window_bps: DEFAULT_MIN_SIGNED_PER_WINDOW_BPS,
            downtime_jail_heights: DEFAULT_DOWNTIME_JAIL_HEIGHTS,
            slash_fraction_downtime_bps: DEFAULT_SLASH_DOWNTIME_BPS,
            max_redelegation_entries: DEFAULT_MAX_REDELEGATION_ENTRIES,
        }
    }
}

impl Params {
    /// Most precommits a validator may miss in one window without being
    /// jailed: `window − ceil(window · min_signed / 10_000)`; missing more
    /// than this means it signed less than `min_signed_per_window`.
    pub fn max_missed_per_window(&self) -> u64 {
        let w = u128::from(self.signed_blocks_window);
        let need = (w * u128::from(self.min_signed_per_window_bps)).div_ceil(10_000);
        // need ≤ w, both fit in u64.
        u64::try_from(w - need.min(w)).unwrap_or(0)
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
            min_fee: amount_or("min_fee", &p.min_fee, DEFAULT_MIN_FEE)?,
            block_reward: amount_or("block_reward", &p.block_reward, DEFAULT_BLOCK_REWARD)?,
            proposer_bonus_bps: or_default(p.proposer_bonus_bps, DEFAULT_PROPOSER_BONUS_BPS),
            commission_epoch: or_default(p.commission_epoch, DEFAULT_COMMISSION_EPOCH),
            signed_blocks_window: or_default(p.signed_blocks_window, DEFAULT_SIGNED_BLOCKS_WINDOW),
            min_signed_per_window_bps: or_default(
                p.min_signed_per_window_bps,
                DEFAULT_MIN_SIGNED_PER_WINDOW_BPS,
            ),
            downtime_jail_heights: or_default(
                p.downtime_jail_heights,
                DEFAULT_DOWNTIME_JAIL_HEIGHTS,
            ),
            slash_fraction_downtime_bps: or_default(
                p.slash_fraction_downtime_bps,
                DEFAULT_SLASH_DOWNTIME_BPS,
            ),
            max_redelegation_entries: or_default(
                p.max_redelegation_entries,
                DEFAULT_MAX_REDELEGATION_ENTRIES,
            ),
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks ranges; also used after decoding a snapshot. The first
    /// failing field (in [`Params::ranges`]' order) is reported.
    pub fn validate(&self) -> Result<(), ParamsError> {
        for (field, value, (lo, hi, range)) in self.ranges() {
            if value < lo || value > hi {
                return Err(ParamsError::OutOfRange {
                    field,
                    value: value.to_string(),
                    range,
                });
            }
        }
        Ok(())
    }

    /// Every field with its value and its allowed range: (field, value,
    /// (lowest, highest, the range as the operator reads it)).
    fn ranges(&self) -> [(&'static str, u128, (u128, u128, &'static str)); 15] {
        const MAX: u128 = u128::MAX;
        const BPS: (u128, u128, &str) = (1, 10_000, "1..=10000");
        const HEIGHTS: (u128, u128, &str) = (1, 1 << 40, "1..=2^40");
        let p = self;
        [
            ("power_reduction", p.power_reduction, (1, MAX, "at least 1")),
            // The evidence window keeps one validator set per height in memory.
            (
                "unbonding_period",
                p.unbonding_period.into(),
                (2, 1_000_000, "2..=1000000"),
            ),
            (
                "max_validators",
                p.max_validators.into(),
                (1, 10_000, "1..=10000"),
            ),
            ("min_self_bond", p.min_self_bond, (1, MAX, "at least 1")),
            (
                "slash_fraction_double_sign_bps",
                p.slash_fraction_double_sign_bps.into(),
                BPS,
            ),
            (
                "max_unbonding_entries",
                p.max_unbonding_entries.into(),
                (1, 100, "1..=100"),
            ),
            ("jail_period", p.jail_period.into(), HEIGHTS),
            // Bounds every block's mint so a u128 supply never overflows in 2^64 blocks.
            ("block_reward", p.block_reward, (0, 1 << 60, "0..=2^60")),
            ("proposer_bonus_bps", p.proposer_bonus_bps.into(), BPS),
            ("commission_epoch", p.commission_epoch.into(), HEIGHTS),
            // Each validator keeps one bit per height of the window.
            (
                "signed_blocks_window",
                p.signed_blocks_window.into(),
                (1, 100_000, "1..=100000"),
            ),
            (
                "min_signed_per_window_bps",
                p.min_signed_per_window_bps.into(),
                BPS,
            ),
            (
                "downtime_jail_heights",
                p.downtime_jail_heights.into(),
                HEIGHTS,
            ),
            (
                "slash_fraction_downtime_bps",
                p.slash_fraction_downtime_bps.into(),
                BPS,
            ),
            (
                "max_redelegation_entries",
                p.max_redelegation_entries.into(),
                (1, 100, "1..=100"),
            ),
        ]
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
            min_fee: self.min_fee.to_string(),
            block_reward: self.block_reward.to_string(),
            proposer_bonus_bps: self.proposer_bonus_bps,
            commission_epoch: self.commission_epoch,
            signed_blocks_window: self.signed_blocks_window,
            min_signed_per_window_bps: self.min_signed_per_window_bps,
            downtime_jail_heights: self.downtime_jail_heights,
            slash_fraction_downtime_bps: self.slash_fraction_downtime_bps,
            max_redelegation_entries: self.max_redelegation_entries,
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
        assert_eq!(p.proposer_bonus_bps, 500);
        assert_eq!(p.signed_blocks_window, 100);
        assert_eq!(p.min_signed_per_window_bps, 5_000);
        assert_eq!(p.downtime_jail_heights, 600);
        assert_eq!(p.slash_fraction_downtime_bps, 1);
        assert_eq!(p.max_redelegation_entries, 7);
        assert_eq!(p.max_missed_per_window(), 50);
        assert_eq!(Params::from_proto(None), Ok(Params::default()));
        // Amount parameters have presence: "0" is zero, not the default.
        let free = pb::GenesisParams {
            min_fee: "0".into(),
            block_reward: "0".into(),
            ..Default::default()
        };
        let p = Params::from_proto(Some(&free)).expect("zero fee and reward");
        assert_eq!((p.min_fee, p.block_reward), (0, 0));
    }

    #[test]
    fn max_missed_rounds_toward_jailing_less() {
        let p = |window, bps| Params {
            signed_blocks_window: window,
            min_signed_per_window_bps: bps,
            ..Params::default()
        };
        // Must sign ceil(window · fraction): 3 of 5 at 50%, so 2 may be missed.
        assert_eq!(p(5, 5_000).max_missed_per_window(), 2);
        assert_eq!(p(10, 10_000).max_missed_per_window(), 0);
        assert_eq!(p(10, 1).max_missed_per_window(), 9);
        assert_eq!(p(100, 9_999).max_missed_per_window(), 0);
    }

    /// Each field of the range table: both ends pass, one past either end
    /// is refused naming that field (a row with a wrong field, bound or
    /// order fails here).
    #[test]
    fn every_range_accepts_its_ends_and_names_the_field_past_them() {
        type Set = fn(&mut Params, u128);
        let rows: [(&str, Set, u128, u128); 15] = [
            (
                "power_reduction",
                |p, v| p.power_reduction = v,
                1,
                u128::MAX,
            ),
            (
                "unbonding_period",
                |p, v| p.unbonding_period = v as u64,
                2,
                1_000_000,
            ),
            (
                "max_validators",
                |p, v| p.max_validators = v as u32,
                1,
                10_000,
            ),
            ("min_self_bond", |p, v| p.min_self_bond = v, 1, u128::MAX),
            (
                "slash_fraction_double_sign_bps",
                |p, v| p.slash_fraction_double_sign_bps = v as u32,
                1,
                10_000,
            ),
            (
                "max_unbonding_entries",
                |p, v| p.max_unbonding_entries = v as u32,
                1,
                100,
            ),
            ("jail_period", |p, v| p.jail_period = v as u64, 1, 1 << 40),
            ("block_reward", |p, v| p.block_reward = v, 0, 1 << 60),
            (
                "proposer_bonus_bps",
                |p, v| p.proposer_bonus_bps = v as u32,
                1,
                10_000,
            ),
            (
                "commission_epoch",
                |p, v| p.commission_epoch = v as u64,
                1,
                1 << 40,
            ),
            (
                "signed_blocks_window",
                |p, v| p.signed_blocks_window = v as u64,
                1,
                100_000,
            ),
            (
                "min_signed_per_window_bps",
                |p, v| p.min_signed_per_window_bps = v as u32,
                1,
                10_000,
            ),
            (
                "downtime_jail_heights",
                |p, v| p.downtime_jail_heights = v as u64,
                1,
                1 << 40,
            ),
            (
                "slash_fraction_downtime_bps",
                |p, v| p.slash_fraction_downtime_bps = v as u32,
                1,
                10_000,
            ),
            (
                "max_redelegation_entries",
                |p, v| p.max_redelegation_entries = v as u32,
                1,
                100,
            ),
        ];
        let with = |set: Set, v: u128| {
            let mut p = Params::default();
            set(&mut p, v);
            p.validate()
        };
        assert_eq!(Params::default().validate(), Ok(()));
        for (field, set, lo, hi) in rows {
            assert_eq!(with(set, lo), Ok(()), "{field} = {lo}");
            assert_eq!(with(set, hi), Ok(()), "{field} = {hi}");
            for past in [lo.checked_sub(1), hi.checked_add(1)].into_iter().flatten() {
                match with(set, past) {
                    Err(ParamsError::OutOfRange {
                        field: f, value, ..
                    }) => {
                        assert_eq!((f, value), (field, past.to_string()));
                    }
                    other => panic!("{field} = {past}: {other:?}"),
                }
            }
        }
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
