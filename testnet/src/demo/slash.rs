//! Step 7: node3's double-sign slash checked to the token — the event
//! against the genesis fraction of its power at the infraction height, its
//! tokens, each delegator's loss — then its tombstone and its leaving the
//! validator set.

use agora_proto::v1 as pb;
use agora_validator::Address;
use anyhow::{Result, ensure};

use super::double_sign::Seen;
use super::rpc::{parse_u128, power_of};
use super::{Demo, HEIGHTS_DEADLINE, VALIDATORS};

/// What the slashing event says, as checked.
struct Slashed {
    /// node3's power at the infraction height.
    power: u64,
    /// Tokens slashed in all.
    amount: u128,
    /// Of which from node3's bonded tokens.
    from_bonded: u128,
}

impl Demo<'_> {
    /// Step 7: checks the slash to the token; returns the height node3 left
    /// the set.
    pub(super) async fn check_slash(&mut self, s: &Seen) -> Result<(u64, String)> {
        let v = VALIDATORS - 1;
        let va = self.validators[v];
        let e = &s.event;
        let bps = self.params.slash_fraction_double_sign_bps;
        let Slashed {
            power,
            amount,
            from_bonded,
        } = self.check_slash_event(v, &va, e).await?;
        let (after_tokens, shares) = self.check_slashed_tokens(v, &va, s, from_bonded).await?;
        self.check_delegators_lost_their_share(&va, s, after_tokens, shares)
            .await?;
        let out = self.check_left_set(v, &va, e.slash_height).await?;
        Ok((
            out,
            format!(
                "{amount} tokens = {bps} bps of power {power}; delegator1 lost its share; tombstoned; out of the set from height {out}"
            ),
        ))
    }

    /// Checks the event slashed the genesis fraction of node `v`'s stake at
    /// the infraction height, tombstoned it, and took it all from its bonded
    /// tokens and the redelegations away from it.
    async fn check_slash_event(
        &mut self,
        v: usize,
        va: &Address,
        e: &pb::SlashingEvent,
    ) -> Result<Slashed> {
        let bps = self.params.slash_fraction_double_sign_bps;
        let power = self.power_at(e.infraction_height, va).await?;
        // No unbonding entry is pending against node3, so it all comes from
        // its bonded tokens and from the redelegations away from it (DESIGN §8).
        let stake = u128::from(power) * self.params.power_reduction;
        let want = stake * u128::from(bps) / 10_000;
        let amount = parse_u128(&e.amount, "slash amount")?;
        detail!(
            "slashing event: {} tokens ({} bps) at height {} for the infraction at {}; tombstoned: {}",
            e.amount,
            e.fraction_bps,
            e.slash_height,
            e.infraction_height,
            e.tombstoned
        );
        detail!(
            "expected: {bps} bps of power {power} at the infraction height x {} = {want}",
            self.params.power_reduction
        );
        ensure!(
            e.fraction_bps == bps,
            "fraction {} bps, genesis says {bps}",
            e.fraction_bps
        );
        ensure!(amount == want, "slashed {amount}, expected {want}");
        ensure!(e.tombstoned, "the slashing event does not tombstone");
        let from_bonded = parse_u128(&e.from_bonded, "from_bonded")?;
        let from_unbonding = parse_u128(&e.from_unbonding, "from_unbonding")?;
        let from_red = parse_u128(&e.from_redelegations, "from_redelegations")?;
        detail!(
            "of which {from_bonded} from node{v}'s bonded tokens, {from_unbonding} from unbonding entries, {from_red} from redelegations"
        );
        ensure!(
            from_unbonding == 0 && from_bonded + from_red == amount,
            "the parts {from_bonded} + {from_unbonding} + {from_red} do not make {amount} (no unbonding entry is pending against node{v})"
        );
        Ok(Slashed {
            power,
            amount,
            from_bonded,
        })
    }

    /// Checks node `v` is jailed and tombstoned and its tokens went down by
    /// the slash and the redelegations; returns its tokens and shares now.
    async fn check_slashed_tokens(
        &mut self,
        v: usize,
        va: &Address,
        s: &Seen,
        from_bonded: u128,
    ) -> Result<(u128, u128)> {
        let after = self.validator(va).await?;
        let before_tokens = parse_u128(&s.validator_before.tokens, "validator tokens")?;
        let after_tokens = parse_u128(&after.tokens, "validator tokens")?;
        let shares = parse_u128(&after.shares, "validator shares")?;
        let moved = s.moves.moved();
        detail!(
            "node{v}: tokens {before_tokens} -> {after_tokens} ({moved} redelegated away, {from_bonded} slashed), jailed {}, tombstoned {}",
            after.jailed,
            after.tombstoned
        );
        ensure!(
            after.jailed && after.tombstoned,
            "node{v} is not jailed and tombstoned"
        );
        ensure!(
            after_tokens + from_bonded + moved == before_tokens,
            "node{v}'s tokens went {before_tokens} -> {after_tokens}, not down by {from_bonded} slashed + {moved} redelegated"
        );
        Ok((after_tokens, shares))
    }

    /// Checks delegator1 and the self-bond lost in proportion to their
    /// shares of the validator's `after_tokens` and `shares`.
    async fn check_delegators_lost_their_share(
        &mut self,
        va: &Address,
        s: &Seen,
        after_tokens: u128,
        shares: u128,
    ) -> Result<()> {
        let bps = self.params.slash_fraction_double_sign_bps;
        // Every delegator loses in proportion to its shares.
        let (_, d1) = self.delegator(1)?;
        let mut holders = vec![("delegator1", d1, s.delegation_before.clone())];
        if let Some((op, sd)) = &s.self_delegation_before {
            holders.push(("self-bond", *op, sd.clone()));
        }
        for (name, who, before) in holders {
            let now = self.delegation(&who, va).await?;
            let b = parse_u128(&before.tokens, "delegation tokens")?;
            let a = parse_u128(&now.tokens, "delegation tokens")?;
            let sh = parse_u128(&now.shares, "delegation shares")?;
            let exact = sh * after_tokens / shares.max(1);
            let lost = b - a.min(b);
            detail!(
                "{name}: {} shares, {b} -> {a} tokens (lost {lost} = {:.2}%)",
                now.shares,
                lost as f64 * 100.0 / (b.max(1) as f64)
            );
            ensure!(
                a == exact,
                "{name}'s delegation is worth {a}, its shares say {exact}"
            );
            let share_of_slash = b * u128::from(bps) / 10_000;
            ensure!(
                lost.abs_diff(share_of_slash) <= 1,
                "{name} lost {lost}, expected {share_of_slash} ({bps} bps of {b})"
            );
        }
        Ok(())
    }

    /// Checks node `v` is out of the set two heights after the slash's
    /// block; returns that height.
    async fn check_left_set(&mut self, v: usize, va: &Address, slash_height: u64) -> Result<u64> {
        let out = slash_height + 2;
        self.wait_height(slash_height + 1, HEIGHTS_DEADLINE).await?;
        let in_before = power_of(&self.set_at(slash_height + 1).await?, va);
        let set_out = self.set_at(out).await?;
        detail!(
            "node{v} in the set of height {}: power {in_before:?}; in the set of height {out}: {:?} ({} validators)",
            slash_height + 1,
            power_of(&set_out, va),
            set_out.validators.len()
        );
        ensure!(
            power_of(&set_out, va).is_none(),
            "node{v} is still in the set of height {out}"
        );
        Ok(out)
    }
}
