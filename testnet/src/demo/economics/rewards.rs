//! Step 4: delegator0's rewards at node0 grow over heights, and
//! WithdrawRewards pays exactly what GetRewards said had accrued.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agora_node::client::tx::{DEFAULT_FEE, TxAction};
use agora_proto::v1 as pb;
use agora_validator::{AccountSecretKey, Address};
use anyhow::{Context, Result, bail, ensure};

use crate::demo::rpc::parse_u128;
use crate::demo::{Demo, HEIGHTS_DEADLINE, POLL};

/// How often rewards are sampled while a transaction is in flight.
const SAMPLE: Duration = Duration::from_millis(20);

/// The amount of a GetRewards answer.
fn rewards_amount(r: &pb::GetRewardsResponse) -> Result<u128> {
    parse_u128(&r.rewards, "rewards")
}

impl Demo<'_> {
    /// GetRewards of delegator `d` at validator `v`.
    async fn rewards_of(&mut self, d: &Address, v: &Address) -> Result<pb::GetRewardsResponse> {
        Ok(self
            .q
            .get_rewards(pb::GetRewardsRequest {
                delegator: d.0.to_vec(),
                validator: v.0.to_vec(),
                prove: false,
            })
            .await
            .context("GetRewards")?
            .into_inner())
    }

    /// Sends `action` while sampling the delegation's rewards every
    /// [`SAMPLE`]; returns the response and the rewards seen per height.
    pub(in crate::demo) async fn send_sampling_rewards(
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
            prove: false,
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

    /// Step 4: delegator0's rewards at node0 grow, and WithdrawRewards pays
    /// them to the token.
    pub(in crate::demo) async fn rewards(&mut self) -> Result<((), String)> {
        let (key, d) = self.delegator(0)?;
        let v0 = self.validators[0];
        let fee = DEFAULT_FEE;
        let (a1, a2, h2) = self.watch_rewards_grow(&d, &v0).await?;
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
            "withdrew {withdrawn}, less than the {a2} already accrued after height {h2}"
        );
        let exact = withdrawn_as_sampled(&seen, hw, withdrawn, a2)?;
        self.check_rewards_restart(&d, &v0, hw, withdrawn).await?;
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

    /// Shows node0's commission, then waits until delegator `d`'s rewards at
    /// `v0` grew over two heights or more; returns the rewards before and
    /// after, and the height of the latter.
    async fn watch_rewards_grow(&mut self, d: &Address, v0: &Address) -> Result<(u128, u128, u64)> {
        let v = self.validator(v0).await?;
        detail!(
            "node0: commission {} bps (paid to its operator every block), delegators' outstanding rewards {}",
            v.commission_rate_bps,
            v.outstanding_rewards
        );
        let r1 = self.rewards_of(d, v0).await?;
        let a1 = rewards_amount(&r1)?;
        // A block pays node0 only if node0 proposed it or is in the
        // certificate it carries (which needs just over 2/3 of the power),
        // so the rewards grow over heights, not necessarily every height.
        let t0 = Instant::now();
        let r2 = loop {
            self.net.check_alive()?;
            let r = self.rewards_of(d, v0).await?;
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
        Ok((a1, a2, r2.height))
    }

    /// Checks the rewards accrued since the withdrawal in block `hw` are
    /// below the `withdrawn` amount.
    async fn check_rewards_restart(
        &mut self,
        d: &Address,
        v0: &Address,
        hw: u64,
        withdrawn: u128,
    ) -> Result<()> {
        let r3 = self.rewards_of(d, v0).await?;
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
        Ok(())
    }
}

/// Checks the amount `withdrawn` in block `hw` against GetRewards sampled
/// after height `hw` − 1, if there is such a sample; says whether there was.
fn withdrawn_as_sampled(
    seen: &BTreeMap<u64, u128>,
    hw: u64,
    withdrawn: u128,
    a2: u128,
) -> Result<bool> {
    // The withdrawal in block hw pays what had accrued after block hw−1
    // (block hw's rewards are paid at its end, after its transactions).
    Ok(match seen.get(&(hw - 1)) {
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
    })
}
