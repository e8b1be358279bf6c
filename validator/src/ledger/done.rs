//! What a successful staking operation did, as its receipt tells people.
//!
//! A delegator signs "unbond these shares" or "withdraw my rewards" without
//! knowing the amounts: the tokens the shares are worth, the rewards owed and
//! paid on the way (every change to a delegation settles its rewards first,
//! `rewards::settle`) and the height at which stake becomes free are fixed
//! only when the block runs. [`plan`](super::staking::plan) computes them, so
//! it records them here, and the receipt's log says them (`GetTx`'s `log`,
//! what `agora tx` prints). A transfer says only "ok": its amounts are in the
//! transaction itself.
//!
//! The log is not part of any hash: it is for people, and changing its
//! wording changes no consensus rule.

use std::fmt;

use crate::types::{Address, Height};

/// The whole log of a success with nothing to add (a transfer).
pub const PLAIN_OK: &str = "ok";

/// The amounts and heights of a successful operation that its transaction
/// does not carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Done {
    /// Nothing to add to "ok" (a transfer).
    #[default]
    Ok,
    /// A validator was created with its operator's self-bond.
    CreatedValidator {
        /// The new validator's address (from its consensus key).
        validator: Address,
        /// Tokens its operator bonded to it.
        self_bond: u128,
    },
    /// Tokens bought shares of a validator.
    Bonded {
        /// The validator bonded to.
        validator: Address,
        /// Tokens bonded.
        amount: u128,
        /// Shares they bought at the validator's exchange rate.
        shares: u128,
        /// Rewards the delegation was owed, paid to the signer.
        rewards_paid: u128,
    },
    /// Shares left a validator; their tokens are paid later.
    Unbonding {
        /// The validator left.
        validator: Address,
        /// What the shares were worth.
        tokens: u128,
        /// Height at which the tokens are paid, unless slashed first.
        completion_height: Height,
        /// Rewards the delegation was owed, paid to the signer.
        rewards_paid: u128,
    },
    /// Shares of one validator became shares of another at once.
    Redelegated {
        /// The validator left.
        src: Address,
        /// The validator joined.
        dst: Address,
        /// What the shares of `src` were worth.
        tokens: u128,
        /// Shares of `dst` they bought.
        shares_dst: u128,
        /// Until this height the moved stake answers for `src`'s earlier faults.
        completion_height: Height,
        /// Rewards both delegations were owed, paid to the signer.
        rewards_paid: u128,
    },
    /// A delegation's owed rewards were paid.
    Withdrew {
        /// The validator delegated to.
        validator: Address,
        /// Tokens paid to the signer.
        amount: u128,
    },
    /// A validator's commission rate changed.
    CommissionSet {
        /// Whose rate changed.
        validator: Address,
        /// Its new rate, in basis points.
        rate_bps: u32,
    },
    /// A validator left jail.
    Unjailed {
        /// The validator, eligible for the validator set again.
        validator: Address,
    },
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Done::Ok => f.write_str(PLAIN_OK),
            Done::CreatedValidator {
                validator,
                self_bond,
            } => write!(
                f,
                "ok: created validator {validator} with a self-bond of {self_bond}"
            ),
            Done::Bonded {
                validator,
                amount,
                shares,
                rewards_paid,
            } => {
                write!(f, "ok: bonded {amount} to {validator} for {shares} shares")?;
                paid(f, rewards_paid)
            }
            Done::Unbonding {
                validator,
                tokens,
                completion_height,
                rewards_paid,
            } => {
                write!(
                    f,
                    "ok: unbonding {tokens} from {validator}, paid at height {completion_height}"
                )?;
                paid(f, rewards_paid)
            }
            Done::Redelegated {
                src,
                dst,
                tokens,
                shares_dst,
                completion_height,
                rewards_paid,
            } => {
                write!(
                    f,
                    "ok: moved {tokens} from {src} to {dst} for {shares_dst} shares, \
                     slashable for {src}'s earlier faults until height {completion_height}"
                )?;
                paid(f, rewards_paid)
            }
            Done::Withdrew { validator, amount } => {
                write!(f, "ok: withdrew {amount} in rewards from {validator}")
            }
            Done::CommissionSet {
                validator,
                rate_bps,
            } => write!(f, "ok: commission of {validator} is now {rate_bps} bps"),
            Done::Unjailed { validator } => write!(f, "ok: {validator} left jail"),
        }
    }
}

/// The rewards an operation settled on the way, when there were any.
fn paid(f: &mut fmt::Formatter<'_>, rewards: u128) -> fmt::Result {
    if rewards == 0 {
        return Ok(());
    }
    write!(f, "; {rewards} in rewards paid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_says_ok_and_settled_rewards_are_named_only_when_paid() {
        assert_eq!(Done::Ok.to_string(), "ok");
        let v = Address([7; 20]);
        let unbond = |rewards_paid| Done::Unbonding {
            validator: v,
            tokens: 250,
            completion_height: 900,
            rewards_paid,
        };
        assert_eq!(
            unbond(0).to_string(),
            format!("ok: unbonding 250 from {v}, paid at height 900")
        );
        assert_eq!(
            unbond(12).to_string(),
            format!("ok: unbonding 250 from {v}, paid at height 900; 12 in rewards paid")
        );
    }
}
