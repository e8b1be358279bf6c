//! Step 5: node2, backed by delegator2, is stopped for longer than the
//! signing window allows; it is jailed for downtime and slashed (its
//! delegators in proportion), then restarted, unjailed by its operator and
//! back in the set, signing.

use std::path::Path;
use std::time::{Duration, Instant};

use agora_node::client::tx::TxAction;
use agora_node::home::Home;
use agora_proto::v1 as pb;
use agora_validator::Address;
use agora_validator::ledger::Params;
use anyhow::{Context, Result, bail, ensure};

use crate::demo::rpc::{latest, parse_u128, power_of};
use crate::demo::{Demo, HEIGHTS_DEADLINE, POLL};
use crate::evidence::all_slashes;

/// The validator the downtime step stops.
const DOWNTIME_NODE: usize = 2;
/// Tokens delegator2 bonds to the validator that goes down.
const DOWNTIME_BOND: u128 = 10_000_000;
/// Longest wait for the downtime jail (the window's misses at up to a
/// proposer timeout each).
const JAIL_DEADLINE: Duration = Duration::from_secs(90);

/// The down validator and its delegator2 backing, just before it stops.
struct Backed {
    /// The validator's tokens.
    tokens: u128,
    /// delegator2's address.
    delegator: Address,
    /// delegator2's delegation to it.
    delegation_before: pb::Delegation,
}

impl Demo<'_> {
    /// Step 5: node2 down for longer than the window is jailed for downtime
    /// and slashed; it is restarted and its operator unjails it.
    pub(in crate::demo) async fn downtime(&mut self, agora: &Path) -> Result<((), String)> {
        let v = DOWNTIME_NODE;
        let va = self.validators[v];
        let p = self.params.clone();
        let backed = self.back_downtime_node(v, &va).await?;
        let tokens = backed.tokens;

        let stopped_at = latest(&mut self.q).await?;
        self.net.stop_one(v)?;
        detail!(
            "node{v} stopped at height {stopped_at} with {tokens} tokens; more than {} misses in a window of {} certificates jail it",
            p.max_missed_per_window(),
            p.signed_blocks_window
        );
        let jailed = self.wait_jailed(v, &va, stopped_at).await?;
        let (e, amount) = self.check_downtime_slash(v, &va, tokens, &p).await?;
        let (after, shares) = check_jailed(v, &jailed, &e, amount, tokens, &p)?;
        self.check_delegators_in_proportion(&va, &jailed, backed, after, shares)
            .await?;
        let out = e.slash_height + 2;
        self.wait_height(out, HEIGHTS_DEADLINE).await?;
        ensure!(
            power_of(&self.set_at(out).await?, &va).is_none(),
            "jailed node{v} is still in the set of height {out}"
        );

        let hu = self.restart_and_unjail(agora, v, &va, &jailed, out).await?;
        let back = self.wait_signing_again(v, &va, hu, after).await?;
        Ok((
            (),
            format!(
                "node{v} jailed for downtime at height {} and slashed {amount} = {} bps of {tokens}, delegators in proportion; unjailed at {hu}, back in the set at {back}",
                e.slash_height, p.slash_fraction_downtime_bps
            ),
        ))
    }

    /// delegator2 bonds to node `v`; shows every validator's misses so far
    /// and returns node `v`'s tokens and delegator2's delegation.
    async fn back_downtime_node(&mut self, v: usize, va: &Address) -> Result<Backed> {
        // A delegator backs node2, so its loss shows.
        let (_, hb, pw) = self.bond_and_watch(2, v, DOWNTIME_BOND).await?;
        detail!("node{v} power {pw} from height {}", hb + 2);
        // What the window holds so far: a certificate needs only more than
        // 2/3 of the power, so a live validator's precommit is sometimes
        // left out of it.
        for (i, a) in self.validators.clone().iter().enumerate() {
            let r = self.validator(a).await?;
            detail!(
                "node{i}: missing from {} of the last {} certificates",
                r.missed_blocks,
                r.window_counted
            );
        }
        let (_, d2) = self.delegator(2)?;
        let rec = self.validator(va).await?;
        let tokens = parse_u128(&rec.tokens, "validator tokens")?;
        let d_before = self.delegation(&d2, va).await?;
        ensure!(!rec.jailed, "node{v} is jailed already");
        Ok(Backed {
            tokens,
            delegator: d2,
            delegation_before: d_before,
        })
    }

    /// Waits (at most [`JAIL_DEADLINE`]) until node `v`, stopped at height
    /// `stopped_at`, is jailed; returns its record then.
    async fn wait_jailed(
        &mut self,
        v: usize,
        va: &Address,
        stopped_at: u64,
    ) -> Result<pb::ValidatorRecord> {
        let t0 = Instant::now();
        loop {
            self.net.check_alive()?;
            if let Ok(r) = self.validator(va).await
                && r.jailed
            {
                break Ok(r);
            }
            if t0.elapsed() > JAIL_DEADLINE {
                let r = self.validator(va).await.ok();
                bail!(
                    "node{v} not jailed {JAIL_DEADLINE:?} after it stopped at height {stopped_at}: chain at {:?}, missed {:?} of {:?} counted",
                    latest(&mut self.q).await.ok(),
                    r.as_ref().map(|r| r.missed_blocks),
                    r.as_ref().map(|r| r.window_counted)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Checks node `v`'s one slashing event: downtime, the genesis fraction
    /// of its `tokens`, no tombstone. Returns it and the amount slashed.
    async fn check_downtime_slash(
        &mut self,
        v: usize,
        va: &Address,
        tokens: u128,
        p: &Params,
    ) -> Result<(pb::SlashingEvent, u128)> {
        let events = all_slashes(&mut self.q, &va.0)
            .await
            .context("ListSlashingEvents")?;
        ensure!(
            events.len() == 1,
            "node{v} has {} slashing events, one expected: {events:?}",
            events.len()
        );
        let e = &events[0];
        let amount = parse_u128(&e.amount, "slash amount")?;
        let want = tokens * u128::from(p.slash_fraction_downtime_bps) / 10_000;
        detail!(
            "slashing event: {} at height {}: {amount} tokens ({} bps of {tokens}), tombstoned {}",
            agora_node::client::query::slash_reason_name(e.reason).to_uppercase(),
            e.slash_height,
            e.fraction_bps,
            e.tombstoned
        );
        ensure!(
            e.reason == pb::SlashReason::Downtime as i32,
            "the slashing event's reason is {}, not DOWNTIME",
            agora_node::client::query::slash_reason_name(e.reason).to_uppercase()
        );
        ensure!(
            e.fraction_bps == p.slash_fraction_downtime_bps,
            "fraction {} bps, genesis says {}",
            e.fraction_bps,
            p.slash_fraction_downtime_bps
        );
        ensure!(
            amount == want,
            "slashed {amount}, expected floor({tokens} x {} / 10000) = {want}",
            p.slash_fraction_downtime_bps
        );
        ensure!(!e.tombstoned, "a downtime slash must not tombstone");
        Ok((e.clone(), amount))
    }

    /// Checks delegator2 and the self-bond of the jailed validator are
    /// worth floor(shares · `after` / `shares`) tokens.
    async fn check_delegators_in_proportion(
        &mut self,
        va: &Address,
        jailed: &pb::ValidatorRecord,
        backed: Backed,
        after: u128,
        shares: u128,
    ) -> Result<()> {
        // Every delegator lost the same fraction: its shares are now worth
        // floor(shares · tokens / total shares).
        let mut holders = vec![(
            "delegator2",
            backed.delegator,
            Some(backed.delegation_before),
        )];
        // The self-bond is held by the operator account (Ed25519), not the consensus key.
        let op = Address::from_slice(&jailed.operator).context("the operator address")?;
        holders.push(("self-bond", op, None));
        for (name, who, before) in holders {
            let now = self.delegation(&who, va).await?;
            let sh = parse_u128(&now.shares, "delegation shares")?;
            let a = parse_u128(&now.tokens, "delegation tokens")?;
            let exact = sh * after / shares.max(1);
            let was = before
                .map(|b| parse_u128(&b.tokens, "delegation tokens"))
                .transpose()?;
            detail!(
                "{name}: {sh} shares worth {a} tokens{} (floor({sh} x {after} / {shares}) = {exact})",
                was.map(|b| format!(", {b} before")).unwrap_or_default()
            );
            ensure!(
                a == exact,
                "{name}'s delegation is worth {a}, its shares say {exact}"
            );
        }
        Ok(())
    }

    /// Restarts node `v` (out of the set from height `out`), waits out its
    /// jail and has its operator unjail it; returns the Unjail's block.
    async fn restart_and_unjail(
        &mut self,
        agora: &Path,
        v: usize,
        va: &Address,
        jailed: &pb::ValidatorRecord,
        out: u64,
    ) -> Result<u64> {
        let pid = self.net.start_one(agora, v)?;
        detail!(
            "node{v} out of the set from height {out}; restarted as pid {pid}, waiting for height {}",
            jailed.jailed_until
        );
        let until = jailed.jailed_until;
        self.wait_height(
            until,
            HEIGHTS_DEADLINE + Duration::from_secs(until.saturating_sub(out)),
        )
        .await?;
        let home = Home::new(&self.net.m()?.nodes[v].home);
        let operator = agora_node::keys::load_account(&home.operator_key())
            .with_context(|| format!("loading node{v}'s operator key"))?;
        ensure!(
            Address::of_account(&operator.public_key()).0.as_slice() == jailed.operator.as_slice(),
            "node{v}'s operator key does not match its validator's operator"
        );
        let r = self
            .send(&operator, TxAction::Unjail { validator: *va })
            .await
            .context("Unjail signed by node2's operator")?;
        let hu = r.height;
        let now = self.validator(va).await?;
        detail!(
            "Unjail signed by node{v}'s operator (its validator key) committed at height {hu}: jailed {}, jail reason {}",
            now.jailed,
            match agora_node::client::query::jail_reason_name(now.jail_reason) {
                "" => "none",
                r => r,
            }
        );
        ensure!(
            !now.jailed && now.jail_reason == pb::JailReason::Unspecified as i32,
            "node{v} is still jailed after Unjail"
        );
        Ok(hu)
    }

    /// Checks node `v`, unjailed in block `hu`, is back in the set two
    /// heights later with the power of its `after` tokens, and waits until
    /// it signs again; returns the height it is back from.
    async fn wait_signing_again(
        &mut self,
        v: usize,
        va: &Address,
        hu: u64,
        after: u128,
    ) -> Result<u64> {
        let back = hu + 2;
        self.wait_height(back, HEIGHTS_DEADLINE).await?;
        let pw = power_of(&self.set_at(back).await?, va);
        ensure!(
            pw == Some(self.power(after)),
            "node{v}'s power in the set of height {back} is {pw:?}, expected {}",
            self.power(after)
        );
        // It must be signing again before the next step stops node3.
        let t0 = Instant::now();
        let signing = loop {
            self.net.check_alive()?;
            let r = self.validator(va).await?;
            if r.active && r.window_counted >= r.missed_blocks + 3 {
                break r;
            }
            if t0.elapsed() > HEIGHTS_DEADLINE {
                bail!(
                    "node{v} rejoined the set but is not signing: active {}, missed {} of {} certificates; see {}",
                    r.active,
                    r.missed_blocks,
                    r.window_counted,
                    self.net.m()?.nodes[v].log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        };
        detail!(
            "node{v} active with power {} from height {back}; signed {} of the last {} certificates",
            pw.unwrap_or_default(),
            signing.window_counted - signing.missed_blocks,
            signing.window_counted
        );
        Ok(back)
    }
}

/// Checks the jailed record of node `v`: jailed for downtime, not
/// tombstoned, `amount` fewer tokens, jailed for the genesis downtime jail
/// from the slash's block. Returns its tokens and shares now.
fn check_jailed(
    v: usize,
    jailed: &pb::ValidatorRecord,
    e: &pb::SlashingEvent,
    amount: u128,
    tokens: u128,
    p: &Params,
) -> Result<(u128, u128)> {
    let after = parse_u128(&jailed.tokens, "validator tokens")?;
    let shares = parse_u128(&jailed.shares, "validator shares")?;
    detail!(
        "node{v}: jailed {} ({}) until height {}, tombstoned {}, tokens {tokens} -> {after}",
        jailed.jailed,
        agora_node::client::query::jail_reason_name(jailed.jail_reason),
        jailed.jailed_until,
        jailed.tombstoned
    );
    ensure!(
        jailed.jail_reason == pb::JailReason::Downtime as i32,
        "jail reason {}, not downtime",
        agora_node::client::query::jail_reason_name(jailed.jail_reason)
    );
    ensure!(!jailed.tombstoned, "node{v} is tombstoned");
    ensure!(
        after + amount == tokens,
        "node{v}'s tokens went {tokens} -> {after}, not down by {amount}"
    );
    ensure!(
        jailed.jailed_until == e.slash_height + p.downtime_jail_heights,
        "jailed until {}, expected {} + {}",
        jailed.jailed_until,
        e.slash_height,
        p.downtime_jail_heights
    );
    Ok((after, shares))
}
