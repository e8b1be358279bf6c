//! [`Demo`]: what the steps after the first share — node0's clients, the
//! genesis parameters and the validators' addresses — and the queries and
//! waits they make through node0.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agora_node::client::tx::TxAction;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::ledger::{Ledger, Params};
use agora_validator::{AccountSecretKey, Address};
use anyhow::{Context, Result, bail};
use tonic::transport::Channel;

use super::rpc::{endpoint, latest, parse_u128, power_of, query_client, send_on};
use super::{Net, POLL, RPC_TIMEOUT};

/// The demo after step 1: clients to node0 and the chain's parameters.
pub(super) struct Demo<'a> {
    /// The testnet's processes.
    pub(super) net: &'a mut Net,
    /// Queries to node0.
    pub(super) q: QueryClient<Channel>,
    /// Transactions to node0.
    pub(super) tx: Channel,
    /// The genesis parameters.
    pub(super) params: Params,
    /// Validator address of node i.
    pub(super) validators: Vec<Address>,
    /// The testnet's genesis file.
    pub(super) genesis: PathBuf,
}

impl<'a> Demo<'a> {
    /// Connects to node0 of the testnet step 1 started.
    pub(super) fn new(net: &'a mut Net) -> Result<Self> {
        let m = net.m()?;
        let node0 = m.nodes[0].grpc.clone();
        let genesis = m.genesis.clone();
        let q = query_client(&node0)?;
        // Transactions wait for their commit server-side; bounded by TX_DEADLINE here.
        let tx = endpoint(&node0)?
            .connect_timeout(RPC_TIMEOUT)
            .connect_lazy();
        let g = agora_node::genesis::load(&genesis)
            .with_context(|| format!("loading {}", genesis.display()))?;
        let ledger = Ledger::from_genesis(&g.genesis).context("the generated genesis")?;
        let validators = m
            .nodes
            .iter()
            .map(|n| Address::from_hex(&n.validator_address).context("manifest address"))
            .collect::<Result<Vec<_>>>()?;
        let params = ledger.params().clone();
        Ok(Self {
            genesis,
            net,
            q,
            tx,
            params,
            validators,
        })
    }

    /// The key and address of delegator `i` of the testnet.
    pub(super) fn delegator(&self, i: usize) -> Result<(AccountSecretKey, Address)> {
        let d = self
            .net
            .m()?
            .delegators
            .get(i)
            .with_context(|| format!("the testnet has no delegator{i}"))?;
        let key = agora_node::keys::load_account(&d.key_file)
            .with_context(|| format!("loading {}", d.key_file.display()))?;
        let addr = Address::of_account(&key.public_key());
        Ok((key, addr))
    }

    /// The power `tokens` give.
    pub(super) fn power(&self, tokens: u128) -> u64 {
        u64::try_from(tokens / self.params.power_reduction.max(1)).unwrap_or(u64::MAX)
    }

    /// The validator set of height `h` (0: the latest).
    pub(super) async fn set_at(&mut self, h: u64) -> Result<pb::ValidatorSet> {
        let r = self
            .q
            .get_validator_set(pb::GetValidatorSetRequest { height: h })
            .await
            .with_context(|| format!("GetValidatorSet({h})"))?
            .into_inner();
        r.validator_set
            .with_context(|| format!("GetValidatorSet({h}): no set in the answer"))
    }

    /// The power of `a` at height `h` (0 if it is not in the set).
    pub(super) async fn power_at(&mut self, h: u64, a: &Address) -> Result<u64> {
        Ok(power_of(&self.set_at(h).await?, a).unwrap_or(0))
    }

    /// Waits until node0 has committed `h`.
    pub(super) async fn wait_height(&mut self, h: u64, deadline: Duration) -> Result<u64> {
        let t0 = Instant::now();
        loop {
            self.net.check_alive()?;
            let now = latest(&mut self.q).await.ok();
            if let Some(now) = now
                && now >= h
            {
                return Ok(now);
            }
            if t0.elapsed() > deadline {
                bail!("node0 at height {now:?} after {deadline:?}, wanted {h}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Submits `action` signed by `from` to node0 and waits for its commit.
    pub(super) async fn send(
        &mut self,
        from: &AccountSecretKey,
        action: TxAction,
    ) -> Result<pb::SubmitTxResponse> {
        send_on(self.tx.clone(), from, action).await
    }

    /// The delegation of `d` to `v`.
    pub(super) async fn delegation(&mut self, d: &Address, v: &Address) -> Result<pb::Delegation> {
        self.q
            .get_delegation(pb::GetDelegationRequest {
                prove: false,
                delegator: d.0.to_vec(),
                validator: v.0.to_vec(),
            })
            .await
            .context("GetDelegation")?
            .into_inner()
            .delegation
            .context("GetDelegation: no delegation in the answer")
    }

    /// The staking record of validator `v`.
    pub(super) async fn validator(&mut self, v: &Address) -> Result<pb::ValidatorRecord> {
        self.q
            .get_validator(pb::GetValidatorRequest {
                prove: false,
                address: v.0.to_vec(),
            })
            .await
            .context("GetValidator")?
            .into_inner()
            .validator
            .context("GetValidator: no validator in the answer")
    }

    /// The balance of account `a`.
    pub(super) async fn balance(&mut self, a: &Address) -> Result<u128> {
        let r = self
            .q
            .get_account(pb::GetAccountRequest {
                prove: false,
                address: a.0.to_vec(),
            })
            .await
            .context("GetAccount")?
            .into_inner();
        parse_u128(&r.balance, "balance")
    }
}
