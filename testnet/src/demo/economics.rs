//! The demo's staking-economics steps (DESIGN §8, "Rewards, fees,
//! commission, redelegation, downtime"): a delegator's rewards grow and are
//! withdrawn to the token; a validator stopped for longer than the signing
//! window is jailed for downtime, slashed 0.01% (its delegators with it),
//! restarted and unjailed by its operator; stake redelegated away from the
//! double signer around its infraction is slashed at the destination.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agora_node::client::tx::{DEFAULT_FEE, TxAction};
use agora_node::home::Home;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::{AccountSecretKey, Address};
use anyhow::{Context, Result, bail, ensure};
use tonic::transport::Channel;

use super::{
    Demo, HEIGHTS_DEADLINE, Net, POLL, RPC_TIMEOUT, Seen, TX_DEADLINE, VALIDATORS, endpoint,
    latest, parse_u128, power_of, query_client, send_on,
};
use crate::evidence::all_slashes;

/// The validator the downtime step stops.
pub(super) const DOWNTIME_NODE: usize = 2;
/// Tokens delegator2 bonds to the validator that goes down.
pub(super) const DOWNTIME_BOND: u128 = 10_000_000;
/// Signing window of the demo's genesis, in certificates. More than 30
/// misses jail a validator: short enough for a quick step, long enough that
/// node3's restart into double-signing mode does not. Its evidence usually
/// lands a few heights after the restart, but once 23: with a window of 40
/// node3 was jailed for downtime (more than 20 misses) before that. 30
/// misses match the mover's budget ([`MOVER_BOND`] / [`SLICE`] heights).
pub(super) const SIGNED_BLOCKS_WINDOW: u64 = 60;
/// Downtime jail of the demo's genesis, in heights.
pub(super) const DOWNTIME_JAIL_HEIGHTS: u64 = 30;
/// The delegator that redelegates away from the double signer.
pub(super) const MOVER: usize = 3;
/// Tokens the mover bonds to node3 before it double-signs: 30 slices, one
/// per block from just before node3's stop until its evidence is committed.
/// Local runs took 4 to 12 (blocks come every ~80 ms), but 24 in one where
/// the evidence landed 23 heights after node3's restart: 20 would have run
/// out. Still small enough that the other three keep more than 2/3 of the
/// power while node3 is down (node3 has 150 of ~490).
pub(super) const MOVER_BOND: u128 = 30_000_000;
/// Shares of node3 moved by each redelegation (1:1 with tokens while node3
/// is unslashed: the 5% cut of each is exact). A whole unit of power, so
/// that node3's stake stays its power x the power reduction, which step 7's
/// exact 5% per delegator relies on: smaller slices cannot buy more moves.
const SLICE: u128 = 1_000_000;
/// Destinations of the redelegations, in order of use (never slashed, so
/// their shares stay 1:1 with tokens).
const DESTINATIONS: [usize; 2] = [0, 1];
/// How often rewards are sampled while a transaction is in flight.
const SAMPLE: Duration = Duration::from_millis(20);
/// Longest wait for the downtime jail (the window's misses at up to a
/// proposer timeout each).
const JAIL_DEADLINE: Duration = Duration::from_secs(90);
/// Longest wait for the mover's first redelegation: its transaction's own
/// deadline plus the queries around it (the mover fails first if one of
/// those runs out; this only bounds the wait should it hang).
const FIRST_MOVE_DEADLINE: Duration =
    Duration::from_secs(TX_DEADLINE.as_secs() + 4 * RPC_TIMEOUT.as_secs());

/// One redelegation the demo made: what ListRedelegations said right after
/// its commit (its initial balance never changes).
#[derive(Debug, Clone)]
pub(super) struct Move {
    dst: usize,
    creation_height: u64,
    initial: u128,
}

/// The redelegations made while node3 restarted into double-signing.
#[derive(Default)]
pub(super) struct Moves {
    made: Vec<Move>,
    /// ListRedelegations of the mover right after node3's slash was seen.
    listed: Vec<pb::RedelegationEntry>,
    /// The mover's delegations to the destinations at that moment.
    delegations: Vec<(usize, Option<pb::Delegation>)>,
    /// The node3 shares the mover had left when it stopped for want of a
    /// whole slice, if it ran out before node3's evidence was committed.
    short: Option<u128>,
}

impl Moves {
    /// Tokens moved away from node3, in all.
    pub(super) fn moved(&self) -> u128 {
        self.made.iter().map(|m| m.initial).sum()
    }

    pub(super) fn count(&self) -> usize {
        self.made.len()
    }
}

fn rewards_amount(r: &pb::GetRewardsResponse) -> Result<u128> {
    parse_u128(&r.rewards, "rewards")
}

impl Demo<'_> {
    async fn rewards_of(&mut self, d: &Address, v: &Address) -> Result<pb::GetRewardsResponse> {
        Ok(self
            .q
            .get_rewards(pb::GetRewardsRequest {
                delegator: d.0.to_vec(),
                validator: v.0.to_vec(),
            })
            .await
            .context("GetRewards")?
            .into_inner())
    }

    /// Sends `action` while sampling the delegation's rewards every
    /// [`SAMPLE`]; returns the response and the rewards seen per height.
    pub(super) async fn send_sampling_rewards(
        &mut self,
        key: &AccountSecretKey,
        action: TxAction,
        d: &Address,
        v: &Address,
    ) -> Result<(pb::SubmitTxResponse, BTreeMap<u64, u128>)> {
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let mut q = self.q.clone();
        let req = pb::GetRewardsRequest {
            delegator: d.0.to_vec(),
            validator: v.0.to_vec(),
        };
        let sampler = async move {
            let mut seen = BTreeMap::new();
            while !*done_rx.borrow() {
                if let Ok(r) = q.get_rewards(req.clone()).await
                    && let Ok(x) = rewards_amount(r.get_ref())
                {
                    seen.entry(r.get_ref().height).or_insert(x);
                }
                tokio::time::sleep(SAMPLE).await;
            }
            seen
        };
        let sender = async {
            let r = self.send(key, action).await;
            let _ = done_tx.send(true);
            r
        };
        let (seen, r) = tokio::join!(sampler, sender);
        Ok((r?, seen))
    }

    /// Step: delegator0's rewards at node0 grow, and WithdrawRewards pays
    /// them to the token.
    pub(super) async fn rewards(&mut self) -> Result<((), String)> {
        let (key, d) = self.delegator(0)?;
        let v0 = self.validators[0];
        let fee = DEFAULT_FEE;
        let v = self.validator(&v0).await?;
        detail!(
            "node0: commission {} bps (paid to its operator every block), delegators' outstanding rewards {}",
            v.commission_rate_bps,
            v.outstanding_rewards
        );
        let r1 = self.rewards_of(&d, &v0).await?;
        let a1 = rewards_amount(&r1)?;
        // A block pays node0 only if node0 proposed it or is in the
        // certificate it carries (which needs just over 2/3 of the power),
        // so the rewards grow over heights, not necessarily every height.
        let t0 = Instant::now();
        let r2 = loop {
            self.net.check_alive()?;
            let r = self.rewards_of(&d, &v0).await?;
            if r.height >= r1.height + 2 && rewards_amount(&r)? > a1 {
                break r;
            }
            if t0.elapsed() > HEIGHTS_DEADLINE {
                bail!(
                    "delegator0's rewards at node0 did not grow: {a1} after height {}, {} after height {}",
                    r1.height,
                    r.rewards,
                    r.height
                );
            }
            tokio::time::sleep(POLL).await;
        };
        let a2 = rewards_amount(&r2)?;
        detail!(
            "delegator0's rewards at node0: {a1} after height {}, {a2} after height {}",
            r1.height,
            r2.height
        );
        let before = self.balance(&d).await?;
        let (r, seen) = self
            .send_sampling_rewards(&key, TxAction::WithdrawRewards { validator: v0 }, &d, &v0)
            .await?;
        let hw = r.height;
        let after = self.balance(&d).await?;
        ensure!(
            after + fee >= before,
            "the balance fell by more than the fee: {before} -> {after} (fee {fee})"
        );
        let withdrawn = after + fee - before;
        detail!(
            "WithdrawRewards committed at height {hw}: balance {before} -> {after} (+{withdrawn} rewards - {fee} fee)"
        );
        ensure!(
            withdrawn >= a2,
            "withdrew {withdrawn}, less than the {a2} already accrued after height {}",
            r2.height
        );
        // The withdrawal in block hw pays what had accrued after block hw−1
        // (block hw's rewards are paid at its end, after its transactions).
        let exact = match seen.get(&(hw - 1)) {
            Some(&x) => {
                ensure!(
                    withdrawn == x,
                    "withdrew {withdrawn}, but GetRewards said {x} after height {}",
                    hw - 1
                );
                detail!(
                    "GetRewards after height {} (sampled while the tx was in flight): {x} = the amount withdrawn",
                    hw - 1
                );
                true
            }
            None => {
                detail!(
                    "(no GetRewards sample after height {}; checked withdrawn >= {a2} instead)",
                    hw - 1
                );
                false
            }
        };
        let r3 = self.rewards_of(&d, &v0).await?;
        let a3 = rewards_amount(&r3)?;
        detail!(
            "rewards right after: {a3} after height {} (accrued since the withdrawal)",
            r3.height
        );
        ensure!(
            r3.height >= hw && a3 < withdrawn,
            "rewards after the withdrawal are {a3} at height {}, not below the {withdrawn} withdrawn",
            r3.height
        );
        Ok((
            (),
            format!(
                "rewards grew {a1} -> {a2}; withdrew {withdrawn}{} at height {hw}, balance +{withdrawn} - fee {fee}",
                if exact {
                    " (= GetRewards the height before)"
                } else {
                    ""
                }
            ),
        ))
    }

    /// Step: node2 down for longer than the window is jailed for downtime
    /// and slashed; it is restarted and its operator unjails it.
    pub(super) async fn downtime(&mut self, agora: &Path) -> Result<((), String)> {
        let v = DOWNTIME_NODE;
        let va = self.validators[v];
        let p = self.params.clone();
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
        let rec = self.validator(&va).await?;
        let tokens = parse_u128(&rec.tokens, "validator tokens")?;
        let d_before = self.delegation(&d2, &va).await?;
        ensure!(!rec.jailed, "node{v} is jailed already");

        let stopped_at = latest(&mut self.q).await?;
        self.net.stop_one(v)?;
        detail!(
            "node{v} stopped at height {stopped_at} with {tokens} tokens; more than {} misses in a window of {} certificates jail it",
            p.max_missed_per_window(),
            p.signed_blocks_window
        );
        let t0 = Instant::now();
        let jailed = loop {
            self.net.check_alive()?;
            if let Ok(r) = self.validator(&va).await
                && r.jailed
            {
                break r;
            }
            if t0.elapsed() > JAIL_DEADLINE {
                let r = self.validator(&va).await.ok();
                bail!(
                    "node{v} not jailed {JAIL_DEADLINE:?} after it stopped at height {stopped_at}: chain at {:?}, missed {:?} of {:?} counted",
                    latest(&mut self.q).await.ok(),
                    r.as_ref().map(|r| r.missed_blocks),
                    r.as_ref().map(|r| r.window_counted)
                );
            }
            tokio::time::sleep(POLL).await;
        };
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
        // Every delegator lost the same fraction: its shares are now worth
        // floor(shares · tokens / total shares).
        let mut holders = vec![("delegator2", d2, Some(d_before))];
        // The self-bond is held by the operator account (Ed25519), not the consensus key.
        let op = Address::from_slice(&jailed.operator).context("the operator address")?;
        holders.push(("self-bond", op, None));
        for (name, who, before) in holders {
            let now = self.delegation(&who, &va).await?;
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
        let out = e.slash_height + 2;
        self.wait_height(out, HEIGHTS_DEADLINE).await?;
        ensure!(
            power_of(&self.set_at(out).await?, &va).is_none(),
            "jailed node{v} is still in the set of height {out}"
        );

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
            .send(&operator, TxAction::Unjail { validator: va })
            .await
            .context("Unjail signed by node2's operator")?;
        let hu = r.height;
        let now = self.validator(&va).await?;
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
        let back = hu + 2;
        self.wait_height(back, HEIGHTS_DEADLINE).await?;
        let pw = power_of(&self.set_at(back).await?, &va);
        ensure!(
            pw == Some(self.power(after)),
            "node{v}'s power in the set of height {back} is {pw:?}, expected {}",
            self.power(after)
        );
        // It must be signing again before the next step stops node3.
        let t0 = Instant::now();
        let signing = loop {
            self.net.check_alive()?;
            let r = self.validator(&va).await?;
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
        Ok((
            (),
            format!(
                "node{v} jailed for downtime at height {} and slashed {amount} = {} bps of {tokens}, delegators in proportion; unjailed at {hu}, back in the set at {back}",
                e.slash_height, p.slash_fraction_downtime_bps
            ),
        ))
    }

    /// Bonds the mover's tokens to node3 (before it double-signs).
    pub(super) async fn bond_mover(&mut self) -> Result<u64> {
        let (key, d) = self.delegator(MOVER)?;
        let v3 = self.validators[VALIDATORS - 1];
        let r = self
            .send(
                &key,
                TxAction::Bond {
                    validator: v3,
                    amount: MOVER_BOND,
                },
            )
            .await?;
        let del = self.delegation(&d, &v3).await?;
        detail!(
            "delegator{MOVER} bonds {MOVER_BOND} to node{} at height {}: {} shares",
            VALIDATORS - 1,
            r.height,
            del.shares
        );
        Ok(r.height)
    }

    /// The redelegating delegator, ready to run on its own thread.
    pub(super) fn mover(&self) -> Result<Mover> {
        let (key, d) = self.delegator(MOVER)?;
        Ok(Mover {
            grpc: self.net.m()?.nodes[0].grpc.clone(),
            key,
            d,
            src: self.validators[VALIDATORS - 1],
            dsts: DESTINATIONS
                .iter()
                .map(|&i| (i, self.validators[i]))
                .collect(),
            max: self.params.max_redelegation_entries as usize,
        })
    }

    async fn redelegations(&mut self, d: &Address) -> Result<Vec<pb::RedelegationEntry>> {
        list_redelegations(&mut self.q, d).await
    }

    /// Records the mover's entries and delegations right after the slash.
    pub(super) async fn snapshot_moves(&mut self, moves: &mut Moves) -> Result<()> {
        let (_, d) = self.delegator(MOVER)?;
        moves.listed = self.redelegations(&d).await?;
        moves.delegations.clear();
        for i in DESTINATIONS {
            let va = self.validators[i];
            let del = self.delegation(&d, &va).await.ok();
            moves.delegations.push((i, del));
        }
        Ok(())
    }

    /// Step: the redelegations created at the infraction height − 1 or later
    /// lost floor(initial · bps / 10000) each at their destination.
    pub(super) async fn check_redelegation_slash(&mut self, s: &Seen) -> Result<((), String)> {
        let e = &s.event;
        let m = &s.moves;
        let bps = self.params.slash_fraction_double_sign_bps;
        let h = e.infraction_height;
        let from_red = parse_u128(&e.from_redelegations, "from_redelegations")?;
        detail!(
            "slashing event of node3: from_bonded {}, from_unbonding {}, from_redelegations {from_red}",
            e.from_bonded,
            e.from_unbonding
        );
        // Entries created at h−1 or later still carried stake counted at h;
        // those created in the slash's block came after its evidence.
        let slashed = |c: u64| c + 1 >= h && c < e.slash_height;
        let mut want_total = 0u128;
        let mut n_slashed = 0;
        for mv in &m.made {
            let cut = mv.initial * u128::from(bps) / 10_000;
            let hit = slashed(mv.creation_height);
            let dst = self.validators[mv.dst];
            let listed = m
                .listed
                .iter()
                .find(|x| x.dst_validator == dst.0 && x.creation_height == mv.creation_height);
            let now = listed
                .map(|x| parse_u128(&x.shares_dst, "redelegation shares"))
                .transpose()?;
            detail!(
                "entry node3 -> node{} created at {}: {} tokens, {}; node{} shares left {}",
                mv.dst,
                mv.creation_height,
                mv.initial,
                if hit {
                    format!(
                        "created at or after {} - 1: loses floor({} x {bps} / 10000) = {cut}",
                        h, mv.initial
                    )
                } else {
                    "outside the slashed range".to_string()
                },
                mv.dst,
                now.map_or_else(|| "(matured)".to_string(), |x| x.to_string())
            );
            if hit {
                let now = now.with_context(|| {
                    format!(
                        "the slashed entry created at {} is no longer listed",
                        mv.creation_height
                    )
                })?;
                // The destinations were never slashed: 1 share = 1 token.
                ensure!(
                    now + cut == mv.initial,
                    "the entry created at {} holds {now} shares of node{}, expected {} - {cut}",
                    mv.creation_height,
                    mv.dst,
                    mv.initial
                );
                want_total += cut;
                n_slashed += 1;
            } else if let Some(now) = now {
                ensure!(
                    now == mv.initial,
                    "the entry created at {} (outside the slashed range) lost {} shares",
                    mv.creation_height,
                    mv.initial - now.min(mv.initial)
                );
            }
        }
        ensure!(
            n_slashed > 0,
            "none of the {} redelegations (heights {:?}) was created at or after the infraction height {h} - 1 and before the slash at {}{}",
            m.made.len(),
            m.made.iter().map(|x| x.creation_height).collect::<Vec<_>>(),
            e.slash_height,
            m.short.map_or_else(String::new, |held| format!(
                " (delegator{MOVER} ran out of node3 shares first: {held} left, a slice is {SLICE})"
            ))
        );
        ensure!(
            from_red == want_total,
            "from_redelegations is {from_red}, the slashed entries' cuts add up to {want_total}"
        );
        // The mover's delegation at each destination: what it moved there,
        // less the cuts.
        for (i, del) in &m.delegations {
            let moved: u128 = m
                .made
                .iter()
                .filter(|x| x.dst == *i)
                .map(|x| x.initial)
                .sum();
            let cut: u128 = m
                .made
                .iter()
                .filter(|x| x.dst == *i && slashed(x.creation_height))
                .map(|x| x.initial * u128::from(bps) / 10_000)
                .sum();
            let (shares, tokens) = match del {
                Some(d) => (
                    parse_u128(&d.shares, "delegation shares")?,
                    parse_u128(&d.tokens, "delegation tokens")?,
                ),
                None => (0, 0),
            };
            if moved == 0 && shares == 0 {
                continue;
            }
            detail!(
                "delegator{MOVER} -> node{i}: {shares} shares worth {tokens} tokens = {moved} moved - {cut} taken back"
            );
            ensure!(
                shares == moved - cut && tokens == shares,
                "delegator{MOVER}'s delegation to node{i} is {shares} shares worth {tokens}, expected {} (moved {moved}, cut {cut})",
                moved - cut
            );
        }
        Ok((
            (),
            format!(
                "{n_slashed} of {} redelegations away from node3 were created at or after height {} and lost {from_red} tokens = from_redelegations",
                m.made.len(),
                h.saturating_sub(1)
            ),
        ))
    }
}

async fn list_redelegations(
    q: &mut QueryClient<Channel>,
    d: &Address,
) -> Result<Vec<pb::RedelegationEntry>> {
    let mut all = Vec::new();
    let mut token = Vec::new();
    for _ in 0..64 {
        let page = q
            .list_redelegations(pb::ListRedelegationsRequest {
                prove: false,
                delegator: d.0.to_vec(),
                page: Some(pb::PageRequest {
                    page_token: token,
                    limit: 100,
                }),
            })
            .await
            .context("ListRedelegations")?
            .into_inner();
        all.extend(page.entries);
        token = page.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    Ok(all)
}

/// delegator3 redelegating slices of its node3 stake away from it, one per
/// block, from before node3 is stopped until its evidence is committed.
///
/// Redelegations are slashed with node3 if created at its infraction height
/// h − 1 or later and before the block carrying its evidence: a window of
/// two or three heights. Its start is not known in advance: node3 may
/// double-sign at once, at the height after the last one it stored before
/// it stopped (seen: evidence committed 0.4 s after the restart), or many
/// heights later, so h − 1 may be any height from the stop on. Only a slice
/// every block from before the stop covers it. The demo stops node3 only
/// once the first slice is committed and node3 has stored a later block, so
/// that entry always precedes the slashed range. Should the
/// [`MOVER_BOND`] / [`SLICE`] slices run out before the evidence (a very
/// slow restart), the mover stops rather than submit a redelegation the
/// chain would refuse, and step 8's check says so if no entry fell in the
/// window.
pub(super) struct Mover {
    /// node0, where it queries and submits.
    grpc: String,
    key: AccountSecretKey,
    d: Address,
    src: Address,
    dsts: Vec<(usize, Address)>,
    max: usize,
}

/// What the demo's thread and the mover's share.
#[derive(Default)]
struct Flags {
    /// Set once the evidence is committed (or the demo gave up): no new slice.
    stop: AtomicBool,
    /// The block of the first redelegation, once committed (0 until then:
    /// height 0 holds no transaction).
    first: AtomicU64,
}

/// What the mover's thread returns.
struct Made {
    made: Vec<Move>,
    short: Option<u128>,
}

/// One attempt at moving a slice.
enum Slice {
    Moved(Move),
    /// Fewer node3 shares than a slice are left (the delegation's shares).
    Short(u128),
}

/// A [`Mover`] running on its own thread; dropping it stops it.
pub(super) struct Running {
    flags: Arc<Flags>,
    thread: Option<std::thread::JoinHandle<Result<Made>>>,
}

impl Mover {
    /// Runs the mover on a thread with its own runtime and clients (the
    /// demo's thread blocks while it stops and starts node processes).
    pub(super) fn start(self) -> Running {
        let flags = Arc::new(Flags::default());
        let shared = flags.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the redelegation thread's runtime")?;
            rt.block_on(self.run(&shared))
        });
        Running {
            flags,
            thread: Some(thread),
        }
    }

    async fn run(self, flags: &Flags) -> Result<Made> {
        let mut q = query_client(&self.grpc)?;
        let tx = endpoint(&self.grpc)?
            .connect_timeout(RPC_TIMEOUT)
            .connect_lazy();
        let mut made = Vec::new();
        let mut short = None;
        // The first slice is made whatever `stop` says: the demo waits for
        // it (see `Running::first_move`).
        loop {
            match self.slice(&mut q, &tx, made.len()).await? {
                Slice::Moved(m) => {
                    if made.is_empty() {
                        flags.first.store(m.creation_height, Ordering::SeqCst);
                    }
                    made.push(m);
                }
                Slice::Short(held) if made.is_empty() => bail!(
                    "delegator{MOVER} holds {held} node3 shares, less than one slice of {SLICE}"
                ),
                Slice::Short(held) => {
                    short = Some(held);
                    break;
                }
            }
            if flags.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        Ok(Made { made, short })
    }

    /// Moves one slice to a destination that still has room for an entry
    /// and returns the entry, or says how few node3 shares are left if they
    /// no longer make a slice (the chain would refuse the redelegation).
    async fn slice(
        &self,
        q: &mut QueryClient<Channel>,
        tx: &Channel,
        done: usize,
    ) -> Result<Slice> {
        let r = q
            .get_delegation(pb::GetDelegationRequest {
                delegator: self.d.0.to_vec(),
                validator: self.src.0.to_vec(),
                prove: false,
            })
            .await;
        // The last slice removes the delegation: NotFound then means none left.
        let held = match r {
            Err(s) if s.code() == tonic::Code::NotFound => 0,
            r => r
                .context("GetDelegation")?
                .into_inner()
                .delegation
                .map(|x| parse_u128(&x.shares, "delegation shares"))
                .transpose()?
                .unwrap_or(0),
        };
        if held < SLICE {
            detail!(
                "delegator{MOVER} has {held} node3 shares left after {done} redelegations, less than a slice of {SLICE}: it stops moving"
            );
            return Ok(Slice::Short(held));
        }
        let listed = list_redelegations(q, &self.d).await?;
        let (dst, da) = self
            .dsts
            .iter()
            .copied()
            .find(|(_, a)| listed.iter().filter(|e| e.dst_validator == a.0).count() < self.max)
            .with_context(|| {
                format!(
                    "every destination holds {} pending redelegation entries",
                    self.max
                )
            })?;
        let r = send_on(
            tx.clone(),
            &self.key,
            TxAction::Redelegate {
                src: self.src,
                dst: da,
                shares: SLICE,
            },
        )
        .await?;
        let e = list_redelegations(q, &self.d)
            .await?
            .into_iter()
            .find(|e| e.dst_validator == da.0 && e.creation_height == r.height)
            .with_context(|| {
                format!(
                    "no redelegation entry node3 -> node{dst} created at height {}",
                    r.height
                )
            })?;
        let initial = parse_u128(&e.initial_balance, "redelegation balance")?;
        detail!(
            "delegator{MOVER} redelegates {SLICE} shares node3 -> node{dst} at height {} ({initial} tokens)",
            r.height
        );
        Ok(Slice::Moved(Move {
            dst,
            creation_height: r.height,
            initial,
        }))
    }
}

impl Running {
    /// Waits until the mover's first redelegation is committed and returns
    /// its block; fails with the mover's own error if it stopped before.
    pub(super) async fn first_move(&mut self, net: &mut Net) -> Result<u64> {
        let t0 = Instant::now();
        loop {
            let first = self.flags.first.load(Ordering::SeqCst);
            if first != 0 {
                return Ok(first);
            }
            net.check_alive()?;
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                self.join()?;
                bail!("the redelegation thread ended before its first redelegation");
            }
            if t0.elapsed() > FIRST_MOVE_DEADLINE {
                bail!(
                    "delegator{MOVER}'s first redelegation was not committed within {FIRST_MOVE_DEADLINE:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the mover after its transaction in flight; returns what it made.
    pub(super) fn finish(mut self) -> Result<Moves> {
        self.flags.stop.store(true, Ordering::SeqCst);
        let Made { made, short } = self.join()?;
        Ok(Moves {
            made,
            short,
            ..Moves::default()
        })
    }

    fn join(&mut self) -> Result<Made> {
        self.thread
            .take()
            .context("the redelegation thread was already joined")?
            .join()
            .map_err(|_| anyhow::anyhow!("the redelegation thread panicked"))?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::SeqCst);
    }
}
