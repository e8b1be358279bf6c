//! Steps 2 and 3: delegator0 bonds to node0 and the power change lands two
//! heights after the bond's block; then it unbonds part of it, is paid its
//! pending rewards at once and the unbonded tokens at the completion height.

use std::collections::BTreeMap;

use agora_node::client::tx::TxAction;
use agora_proto::v1 as pb;
use agora_validator::Address;
use anyhow::{Context, Result, ensure};

use super::rpc::parse_u128;
use super::{BOND, Demo, HEIGHTS_DEADLINE};

/// What step 2 leaves for step 3.
pub(super) struct Bonded {
    /// delegator0's shares of node0.
    shares: u128,
}

impl Demo<'_> {
    /// Bonds a delegator's tokens to `v` and checks the power change lands
    /// exactly two heights after the bond's block. Returns the delegation,
    /// the bond's block and the validator's power from two heights later.
    pub(super) async fn bond_and_watch(
        &mut self,
        delegator: usize,
        v: usize,
        amount: u128,
    ) -> Result<(pb::Delegation, u64, u64)> {
        let (key, d) = self.delegator(delegator)?;
        let va = self.validators[v];
        let r = self
            .send(
                &key,
                TxAction::Bond {
                    validator: va,
                    amount,
                },
            )
            .await?;
        let hb = r.height;
        detail!("tx {} committed at height {hb}", hex::encode(&r.tx_hash));
        let del = self.delegation(&d, &va).await?;
        detail!(
            "delegation delegator{delegator} -> node{v}: {} shares worth {} tokens",
            del.shares,
            del.tokens
        );
        ensure!(
            parse_u128(&del.tokens, "delegation tokens")? == amount,
            "the delegation is worth {} tokens, not the {amount} bonded",
            del.tokens
        );
        // The set of hb+2 is fixed once hb is committed (DESIGN §6).
        self.wait_height(hb + 1, HEIGHTS_DEADLINE).await?;
        let p0 = self.power_at(hb, &va).await?;
        let p1 = self.power_at(hb + 1, &va).await?;
        let p2 = self.power_at(hb + 2, &va).await?;
        detail!(
            "node{v} power at height {hb}: {p0}, {}: {p1}, {}: {p2} (a bond reaches the set two heights after its block)",
            hb + 1,
            hb + 2
        );
        ensure!(
            p1 == p0,
            "node{v}'s power changed already at height {} ({p0} -> {p1})",
            hb + 1
        );
        let want = p0 + self.power(amount);
        ensure!(
            p2 == want,
            "node{v}'s power at height {} is {p2}, expected {p0} + {} = {want}",
            hb + 2,
            self.power(amount)
        );
        Ok((del, hb, p2))
    }

    /// Step 2: delegator0 bonds [`BOND`] tokens to node0.
    pub(super) async fn bond(&mut self) -> Result<(Bonded, String)> {
        let (del, hb, p2) = self.bond_and_watch(0, 0, BOND).await?;
        let shares = parse_u128(&del.shares, "delegation shares")?;
        Ok((
            Bonded { shares },
            format!(
                "node0 power {} -> {p2} at height {} (bond committed at {hb})",
                p2 - self.power(BOND),
                hb + 2
            ),
        ))
    }

    /// Step 3: delegator0 unbonds 2/5 of its shares: the unbond pays its
    /// pending rewards at once, node0's power drops two heights later, and
    /// the tokens are paid out at the completion height.
    pub(super) async fn unbond(&mut self, b: &Bonded) -> Result<((), String)> {
        let (key, d) = self.delegator(0)?;
        let v0 = self.validators[0];
        let shares = b.shares * 2 / 5;
        let before = self.balance(&d).await?;
        let (r, seen) = self
            .send_sampling_rewards(
                &key,
                TxAction::Unbond {
                    validator: v0,
                    shares,
                },
                &d,
                &v0,
            )
            .await?;
        let hu = r.height;
        detail!(
            "unbond of {shares} shares committed at height {hu} (tx {})",
            hex::encode(&r.tx_hash)
        );
        let mid = self
            .check_unbond_paid_rewards(&d, before, hu, &seen)
            .await?;
        let e = self.unbonding_entry(&d, &v0, hu).await?;
        let tokens = parse_u128(&e.initial_balance, "unbonding balance")?;
        let (p1, p2) = self.check_unbond_power(&v0, hu, tokens).await?;
        let done = e.completion_height;
        self.check_unbond_paid_out(&d, hu, mid, tokens, done)
            .await?;
        Ok((
            (),
            format!(
                "{tokens} tokens unbonded at height {hu}, paid out at {done}; node0 power {p1} -> {p2}"
            ),
        ))
    }

    /// Checks the unbond in block `hu` paid the fee and the delegation's
    /// pending rewards (as sampled after height `hu` − 1, where sampled);
    /// returns the balance right after it.
    async fn check_unbond_paid_rewards(
        &mut self,
        d: &Address,
        before: u128,
        hu: u64,
        seen: &BTreeMap<u64, u128>,
    ) -> Result<u128> {
        // The unbond pays the fee and the delegation's pending rewards.
        let fee = agora_node::client::tx::DEFAULT_FEE;
        let mid = self.balance(d).await?;
        ensure!(
            mid + fee >= before,
            "the balance fell by more than the fee at the unbond: {before} -> {mid} (fee {fee})"
        );
        let paid = mid + fee - before;
        detail!(
            "delegator0 balance {before} -> {mid} at the unbond: {fee} fee paid, {paid} pending rewards paid out{}",
            match seen.get(&(hu - 1)) {
                Some(x) => format!(" (= GetRewards after height {}: {x})", hu - 1),
                None => String::new(),
            }
        );
        if let Some(&x) = seen.get(&(hu - 1)) {
            ensure!(
                paid == x,
                "the unbond paid {paid} rewards, GetRewards said {x} after height {}",
                hu - 1
            );
        }
        Ok(mid)
    }

    /// delegator0's unbonding entries.
    async fn unbonding_entries(&mut self, d: &Address) -> Result<Vec<pb::UnbondingEntry>> {
        Ok(self
            .q
            .list_unbonding(pb::ListUnbondingRequest {
                prove: false,
                delegator: d.0.to_vec(),
                page: None,
            })
            .await
            .context("ListUnbonding")?
            .into_inner()
            .entries)
    }

    /// The unbonding entry from `v0` created at height `hu`, checked to
    /// complete one unbonding period later.
    async fn unbonding_entry(
        &mut self,
        d: &Address,
        v0: &Address,
        hu: u64,
    ) -> Result<pb::UnbondingEntry> {
        let entries = self.unbonding_entries(d).await?;
        let e = entries
            .iter()
            .find(|e| e.validator == v0.0 && e.creation_height == hu)
            .with_context(|| format!("no unbonding entry created at {hu} in {entries:?}"))?
            .clone();
        detail!(
            "unbonding entry: {} tokens, created at height {}, completes at height {}",
            e.initial_balance,
            e.creation_height,
            e.completion_height
        );
        ensure!(
            e.completion_height == hu + self.params.unbonding_period,
            "completion height {} != {hu} + unbonding period {}",
            e.completion_height,
            self.params.unbonding_period
        );
        Ok(e)
    }

    /// Checks node0's power drops by the power of `tokens` two heights
    /// after the unbond's block `hu`; returns its power before and after.
    async fn check_unbond_power(
        &mut self,
        v0: &Address,
        hu: u64,
        tokens: u128,
    ) -> Result<(u64, u64)> {
        self.wait_height(hu + 1, HEIGHTS_DEADLINE).await?;
        let p1 = self.power_at(hu + 1, v0).await?;
        let p2 = self.power_at(hu + 2, v0).await?;
        detail!(
            "node0 power at height {}: {p1}, at {}: {p2}",
            hu + 1,
            hu + 2
        );
        ensure!(
            p2 + self.power(tokens) == p1,
            "node0's power went {p1} -> {p2}, expected a drop of {}",
            self.power(tokens)
        );
        Ok((p1, p2))
    }

    /// Checks the balance stays `mid` until the completion height `done`,
    /// where it rises by the unbonded `tokens` and the entry goes.
    async fn check_unbond_paid_out(
        &mut self,
        d: &Address,
        hu: u64,
        mid: u128,
        tokens: u128,
        done: u64,
    ) -> Result<()> {
        let mid2 = self.balance(d).await?;
        ensure!(
            mid2 == mid,
            "the balance changed before the payout: {mid} -> {mid2}"
        );
        self.wait_height(done, HEIGHTS_DEADLINE).await?;
        let after = self.balance(d).await?;
        detail!("delegator0 balance: {mid} after the unbond, {after} at height {done}");
        ensure!(
            after == mid + tokens,
            "balance {after} at the completion height, expected {mid} + {tokens}"
        );
        let left = self.unbonding_entries(d).await?;
        ensure!(
            left.iter().all(|x| x.creation_height != hu),
            "the paid-out entry is still listed: {left:?}"
        );
        Ok(())
    }
}
