//! `agora-testnet demo`: a scripted walk through Agora for a newcomer.
//!
//! Ten steps, each printed as `[n/10] what … ok: values` or
//! `[n/10] what … FAILED: why`: start four validators; bond from a delegator
//! through gRPC and watch the validator's power rise two heights later;
//! unbond part of it and watch the payout; watch its rewards grow and
//! withdraw them; stop node2 until it is jailed and slashed for downtime,
//! restart it and unjail it; make the last validator double-sign (stop it,
//! set `testing.double_sign`, restart it) while a delegator redelegates away
//! from it, until its evidence is committed; check the slash to the token
//! (delegators included), the tombstone and the validator leaving the set;
//! check the redelegated stake was slashed at its destination; check the
//! chain keeps committing without it; audit the chain from genesis. The
//! economics steps live in [`economics`].
//!
//! Every wait polls a condition against a deadline. Every process started
//! here is stopped at the end, on failure, and on Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use agora_node::client::audit::{self, AuditConfig};
use agora_node::client::tx::{TxAction, submit};
use agora_node::home::Home;
use agora_proto::v1 as pb;
use agora_proto::v1::query_client::QueryClient;
use agora_validator::ledger::{Ledger, Params};
use agora_validator::{AccountSecretKey, Address};
use anyhow::{Context, Result, bail, ensure};
use tonic::transport::{Channel, Endpoint};

use crate::evidence::{EvidenceFinder, all_slashes};
use crate::generate;
use crate::manifest::{ByzantineNote, Manifest};
use crate::procs;

/// What `agora-testnet demo` takes.
pub struct DemoArgs {
    /// Testnet directory (a stopped testnet there is deleted first).
    pub dir: PathBuf,
    /// Node i uses ports base+10i .. base+10i+2.
    pub base_port: u16,
}

const VALIDATORS: usize = 4;
const CHAIN_ID: &str = "agora-demo";
/// Short, so that the unbonding payout is seen within the demo.
const UNBONDING_PERIOD: u64 = 10;
const STEPS: usize = 10;
/// Tokens delegator0 bonds to node0 (50 units of power).
const BOND: u128 = 50_000_000;
/// Tokens delegator1 bonds to node3 before it double-signs (20 units of
/// power: small enough that the other three keep a quorum while it is down).
const BYZANTINE_BOND: u128 = 20_000_000;
/// Heights the chain must commit before the walk starts.
const FIRST_HEIGHTS: u64 = 3;
/// Heights the chain must commit after the double signer left.
const LIVENESS_HEIGHTS: u64 = 5;

const START_DEADLINE: Duration = Duration::from_secs(60);
const TX_DEADLINE: Duration = Duration::from_secs(30);
const HEIGHTS_DEADLINE: Duration = Duration::from_secs(45);
const EVIDENCE_DEADLINE: Duration = Duration::from_secs(90);
const AUDIT_DEADLINE: Duration = Duration::from_secs(120);
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(100);

/// Prints a detail line of the current step.
macro_rules! detail {
    ($($arg:tt)*) => {{
        println!("      {}", format!($($arg)*));
    }};
}

// After `detail!`, which it uses.
mod economics;

/// The processes of the demo's testnet; whatever is still running when it
/// is dropped is killed (the orderly stop is [`Net::stop_all`]).
#[derive(Default)]
struct Net {
    manifest: Option<Manifest>,
    children: Vec<Option<Child>>,
}

impl Net {
    fn m(&self) -> Result<&Manifest> {
        self.manifest.as_ref().context("the testnet is not started")
    }

    /// Fails if a node process exited, naming its log.
    fn check_alive(&mut self) -> Result<()> {
        let Some(m) = &self.manifest else {
            return Ok(());
        };
        for (c, n) in self.children.iter_mut().zip(&m.nodes) {
            if let Some(child) = c
                && let Ok(Some(st)) = child.try_wait()
            {
                bail!("{} exited ({st}); see {}", n.moniker, n.log.display());
            }
        }
        Ok(())
    }

    fn stop_one(&mut self, i: usize) -> Result<()> {
        let m = self
            .manifest
            .as_mut()
            .context("the testnet is not started")?;
        let Some(mut child) = self.children.get_mut(i).and_then(Option::take) else {
            return Ok(());
        };
        let n = &mut m.nodes[i];
        procs::stop_all(
            &mut [procs::Target {
                pid: child.id(),
                home: &n.home,
                child: Some(&mut child),
            }],
            procs::TERM_GRACE,
        )?;
        n.pid = None;
        m.save()
    }

    fn start_one(&mut self, agora: &Path, i: usize) -> Result<u32> {
        let m = self
            .manifest
            .as_mut()
            .context("the testnet is not started")?;
        let n = &mut m.nodes[i];
        let c = procs::spawn_node(agora, &n.home, &n.log)?;
        let pid = c.id();
        n.pid = Some(pid);
        if let Some(slot) = self.children.get_mut(i) {
            *slot = Some(c);
        }
        m.save()?;
        Ok(pid)
    }

    /// Stops every node (SIGTERM, then SIGKILL after a grace period) and
    /// clears the pids in testnet.json.
    fn stop_all(&mut self) {
        let Some(m) = self.manifest.as_mut() else {
            return;
        };
        let mut targets: Vec<procs::Target<'_>> = self
            .children
            .iter_mut()
            .zip(&m.nodes)
            .filter_map(|(c, n)| {
                c.as_mut().map(|c| procs::Target {
                    pid: c.id(),
                    home: &n.home,
                    child: Some(c),
                })
            })
            .collect();
        let count = targets.len();
        match procs::stop_all(&mut targets, procs::TERM_GRACE) {
            Ok(killed) if killed.is_empty() => println!("stopped {count} nodes"),
            Ok(killed) => println!("stopped {count} nodes (SIGKILL needed for {killed:?})"),
            Err(e) => eprintln!("error stopping nodes: {e:#}"),
        }
        drop(targets);
        self.children.iter_mut().for_each(|c| *c = None);
        for n in &mut m.nodes {
            n.pid = None;
        }
        if let Err(e) = m.save() {
            eprintln!("warning: {e:#}");
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the demo; exit code 0 only if every step held.
pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let agora = procs::find_agora()?;
    let rt = super::runtime()?;
    let started = Instant::now();
    let mut net = Net::default();
    let outcome = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        tokio::select! {
            r = walk(&mut net, &agora, &a) => anyhow::Ok(Some(r)),
            _ = term.recv() => Ok(None),
            _ = int.recv() => Ok(None),
        }
    });
    println!("stopping the testnet...");
    net.stop_all();
    let secs = started.elapsed().as_secs_f64();
    match outcome? {
        Some(Ok(())) => {
            println!("demo finished in {secs:.1} s: all {STEPS} steps ok");
            if let Ok(m) = net.m() {
                println!(
                    "(homes, logs and testnet.json stay in {}; the next demo run replaces them)",
                    m.dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failed)) => {
            println!("demo FAILED after {secs:.1} s at step {failed}");
            if let Ok(m) = net.m() {
                println!("node logs: {}/node*/node.log", m.dir.display());
            }
            Ok(ExitCode::FAILURE)
        }
        None => {
            println!("demo interrupted after {secs:.1} s");
            Ok(ExitCode::from(130))
        }
    }
}

/// Runs one step: prints its title, runs it, prints `ok: summary` or
/// `FAILED: why`. An Err carries the failed step's number.
async fn step<T>(
    n: usize,
    title: &str,
    f: impl std::future::Future<Output = Result<(T, String)>>,
) -> Result<T, usize> {
    println!("[{n}/{STEPS}] {title} …");
    let _ = std::io::stdout().flush();
    match f.await {
        Ok((v, summary)) => {
            println!("[{n}/{STEPS}] {title} … ok: {summary}");
            Ok(v)
        }
        Err(e) => {
            println!("[{n}/{STEPS}] {title} … FAILED: {e:#}");
            Err(n)
        }
    }
}

/// The ten steps, stopping at the first that fails.
async fn walk(net: &mut Net, agora: &Path, a: &DemoArgs) -> Result<(), usize> {
    step(
        1,
        &format!("start {VALIDATORS} validators and wait for {FIRST_HEIGHTS} heights"),
        start(net, agora, a),
    )
    .await?;
    let mut d = match Demo::new(net) {
        Ok(d) => d,
        Err(e) => {
            println!("[1/{STEPS}] connecting to node0 … FAILED: {e:#}");
            return Err(1);
        }
    };
    let bonded = step(
        2,
        &format!("delegator0 bonds {BOND} tokens to node0 through gRPC (Staking.Bond)"),
        d.bond(),
    )
    .await?;
    step(
        3,
        "delegator0 unbonds 2/5 of its shares (Staking.Unbond) and is paid out",
        d.unbond(&bonded),
    )
    .await?;
    step(
        4,
        "delegator0's rewards grow and WithdrawRewards pays them (GetRewards)",
        d.rewards(),
    )
    .await?;
    step(
        5,
        "node2 stopped past the signing window is jailed for downtime and slashed, restarted and unjailed",
        d.downtime(agora),
    )
    .await?;
    let seen = step(
        6,
        "node3 double-signs (restarted with testing.double_sign = true) while delegator3 redelegates away, until evidence is committed",
        d.double_sign(agora),
    )
    .await?;
    let slash = step(
        7,
        "node3 is slashed (delegators included), tombstoned and leaves the set",
        d.check_slash(&seen),
    )
    .await?;
    step(
        8,
        "the stake redelegated away from node3 at or after its infraction is slashed at the destination",
        d.check_redelegation_slash(&seen),
    )
    .await?;
    step(
        9,
        "the chain keeps committing without node3",
        d.liveness(slash),
    )
    .await?;
    step(
        10,
        "agora audit: every certificate and validator-set change from genesis",
        d.audit(&seen),
    )
    .await?;
    Ok(())
}

/// Generates the testnet, starts its nodes and waits for the first heights.
async fn start(net: &mut Net, agora: &Path, a: &DemoArgs) -> Result<((), String)> {
    super::prepare_dir(&a.dir, true)?;
    let mut plan = generate::loopback_plan(VALIDATORS, a.base_port, CHAIN_ID, UNBONDING_PERIOD)?;
    // delegator3 redelegates away from the double signer.
    plan.delegators = plan.delegators.max(economics::MOVER + 1);
    plan.signed_blocks_window = economics::SIGNED_BLOCKS_WINDOW;
    plan.downtime_jail_heights = economics::DOWNTIME_JAIL_HEIGHTS;
    super::check_ports(&plan)?;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = a
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", a.dir.display()))?;
    let g = generate::generate(&plan, &dir)?;
    let m = Manifest::loopback(CHAIN_ID, &dir, agora, &plan, &g, ByzantineNote::default());
    net.children = (0..m.nodes.len()).map(|_| None).collect();
    net.manifest = Some(m);
    for i in 0..VALIDATORS {
        net.start_one(agora, i)?;
    }
    let m = net.m()?;
    detail!("testnet in {} (chain {CHAIN_ID:?})", dir.display());
    for n in &m.nodes {
        detail!(
            "{}  pid {}  gRPC {}  validator {}",
            n.moniker,
            n.pid.unwrap_or_default(),
            n.grpc,
            n.validator_address
        );
    }
    let clients: Vec<QueryClient<Channel>> = m
        .nodes
        .iter()
        .map(|n| query_client(&n.grpc))
        .collect::<Result<_>>()?;
    let t0 = Instant::now();
    let heights = wait_all_heights(net, &clients, FIRST_HEIGHTS, START_DEADLINE).await?;
    Ok((
        (),
        format!(
            "heights {heights:?} after {:.1} s",
            t0.elapsed().as_secs_f64()
        ),
    ))
}

fn endpoint(grpc: &str) -> Result<Endpoint> {
    Endpoint::from_shared(format!("http://{grpc}"))
        .with_context(|| format!("bad gRPC endpoint {grpc:?}"))
}

/// A query client whose every request is bounded by [`RPC_TIMEOUT`].
fn query_client(grpc: &str) -> Result<QueryClient<Channel>> {
    Ok(QueryClient::new(
        endpoint(grpc)?
            .connect_timeout(RPC_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .connect_lazy(),
    )
    .max_decoding_message_size(32 * 1024 * 1024))
}

async fn latest(q: &mut QueryClient<Channel>) -> Result<u64> {
    Ok(q.get_status(pb::GetStatusRequest {})
        .await
        .context("GetStatus")?
        .into_inner()
        .latest_height)
}

/// Waits until every client's node has committed `h`.
async fn wait_all_heights(
    net: &mut Net,
    clients: &[QueryClient<Channel>],
    h: u64,
    deadline: Duration,
) -> Result<Vec<u64>> {
    let t0 = Instant::now();
    loop {
        net.check_alive()?;
        let mut hs = Vec::with_capacity(clients.len());
        for c in clients {
            hs.push(latest(&mut c.clone()).await.ok());
        }
        if hs.iter().all(|x| x.is_some_and(|x| x >= h)) {
            return Ok(hs.into_iter().flatten().collect());
        }
        if t0.elapsed() > deadline {
            bail!(
                "nodes at heights {hs:?} after {deadline:?} (wanted all at {h} or more; None: not answering)"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Submits `action` signed by `from` through `tx` and waits (at most
/// [`TX_DEADLINE`]) for it to be committed successfully.
async fn send_on(
    tx: Channel,
    from: &AccountSecretKey,
    action: TxAction,
) -> Result<pb::SubmitTxResponse> {
    let what = format!("{action:?}")
        .split_whitespace()
        .next()
        .unwrap_or("tx")
        .to_string();
    let r = tokio::time::timeout(TX_DEADLINE, submit(tx, from, &action, true))
        .await
        .map_err(|_| anyhow::anyhow!("{what} not committed within {TX_DEADLINE:?}"))?
        .with_context(|| format!("submitting {what}"))?;
    ensure!(
        r.status == pb::TxStatus::Committed as i32,
        "{what} {}: {}",
        agora_node::client::tx::status_name(r.status),
        r.log
    );
    Ok(r)
}

fn power_of(set: &pb::ValidatorSet, a: &Address) -> Option<u64> {
    set.validators
        .iter()
        .find(|v| v.address == a.0)
        .map(|v| v.power)
}

fn parse_u128(s: &str, what: &str) -> Result<u128> {
    s.parse()
        .with_context(|| format!("{what}: {s:?} is not an amount"))
}

/// What step 2 leaves for step 3.
struct Bonded {
    shares: u128,
}

/// The slash event step 4 found, and the state just before the double signing.
struct Seen {
    event: pb::SlashingEvent,
    validator_before: pb::ValidatorRecord,
    delegation_before: pb::Delegation,
    /// The operator account and its self-bond delegation before the slash.
    self_delegation_before: Option<(Address, pb::Delegation)>,
    /// delegator3's redelegations away from node3 during its restart.
    moves: economics::Moves,
}

/// The demo after step 1: clients to node0 and the chain's parameters.
struct Demo<'a> {
    net: &'a mut Net,
    q: QueryClient<Channel>,
    tx: Channel,
    params: Params,
    validators: Vec<Address>,
    genesis: PathBuf,
}

impl<'a> Demo<'a> {
    fn new(net: &'a mut Net) -> Result<Self> {
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

    fn delegator(&self, i: usize) -> Result<(AccountSecretKey, Address)> {
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

    fn power(&self, tokens: u128) -> u64 {
        u64::try_from(tokens / self.params.power_reduction.max(1)).unwrap_or(u64::MAX)
    }

    async fn set_at(&mut self, h: u64) -> Result<pb::ValidatorSet> {
        let r = self
            .q
            .get_validator_set(pb::GetValidatorSetRequest { height: h })
            .await
            .with_context(|| format!("GetValidatorSet({h})"))?
            .into_inner();
        r.validator_set
            .with_context(|| format!("GetValidatorSet({h}): no set in the answer"))
    }

    async fn power_at(&mut self, h: u64, a: &Address) -> Result<u64> {
        Ok(power_of(&self.set_at(h).await?, a).unwrap_or(0))
    }

    /// Waits until node0 has committed `h`.
    async fn wait_height(&mut self, h: u64, deadline: Duration) -> Result<u64> {
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

    async fn send(
        &mut self,
        from: &AccountSecretKey,
        action: TxAction,
    ) -> Result<pb::SubmitTxResponse> {
        send_on(self.tx.clone(), from, action).await
    }

    async fn delegation(&mut self, d: &Address, v: &Address) -> Result<pb::Delegation> {
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

    async fn validator(&mut self, v: &Address) -> Result<pb::ValidatorRecord> {
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

    async fn balance(&mut self, a: &Address) -> Result<u128> {
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

    /// Bonds a delegator's tokens to `v` and checks the power change lands
    /// exactly two heights after the bond's block. Returns the delegation.
    async fn bond_and_watch(
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

    async fn bond(&mut self) -> Result<(Bonded, String)> {
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

    async fn unbond(&mut self, b: &Bonded) -> Result<((), String)> {
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
        // The unbond pays the fee and the delegation's pending rewards.
        let fee = agora_node::client::tx::DEFAULT_FEE;
        let mid = self.balance(&d).await?;
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
        let entries = self
            .q
            .list_unbonding(pb::ListUnbondingRequest {
                prove: false,
                delegator: d.0.to_vec(),
                page: None,
            })
            .await
            .context("ListUnbonding")?
            .into_inner()
            .entries;
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
        let tokens = parse_u128(&e.initial_balance, "unbonding balance")?;
        self.wait_height(hu + 1, HEIGHTS_DEADLINE).await?;
        let p1 = self.power_at(hu + 1, &v0).await?;
        let p2 = self.power_at(hu + 2, &v0).await?;
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
        let mid2 = self.balance(&d).await?;
        ensure!(
            mid2 == mid,
            "the balance changed before the payout: {mid} -> {mid2}"
        );
        let done = e.completion_height;
        self.wait_height(done, HEIGHTS_DEADLINE).await?;
        let after = self.balance(&d).await?;
        detail!("delegator0 balance: {mid} after the unbond, {after} at height {done}");
        ensure!(
            after == mid + tokens,
            "balance {after} at the completion height, expected {mid} + {tokens}"
        );
        let left = self
            .q
            .list_unbonding(pb::ListUnbondingRequest {
                prove: false,
                delegator: d.0.to_vec(),
                page: None,
            })
            .await
            .context("ListUnbonding")?
            .into_inner()
            .entries;
        ensure!(
            left.iter().all(|x| x.creation_height != hu),
            "the paid-out entry is still listed: {left:?}"
        );
        Ok((
            (),
            format!(
                "{tokens} tokens unbonded at height {hu}, paid out at {done}; node0 power {p1} -> {p2}"
            ),
        ))
    }

    async fn double_sign(&mut self, agora: &Path) -> Result<(Seen, String)> {
        let v = VALIDATORS - 1;
        let va = self.validators[v];
        // A delegator backs node3 first, so the slash shows what delegators lose.
        let (del, hb, p) = self.bond_and_watch(1, v, BYZANTINE_BOND).await?;
        // delegator3 too, to redelegate away while node3 double-signs.
        let hm = self.bond_mover().await?;
        self.wait_height(hm + 2, HEIGHTS_DEADLINE).await?;
        let p = self.power_at(hm + 2, &va).await?.max(p);
        detail!("node{v} power {p} from height {}", hm.max(hb) + 2);
        let validator_before = self.validator(&va).await?;
        let op = Address::from_slice(&validator_before.operator).context("the operator address")?;
        let self_delegation_before = self.delegation(&op, &va).await.ok().map(|d| (op, d));

        // Redelegations are slashed with node3 if created at its infraction
        // height − 1 or later and before the evidence lands, a window of a
        // few heights whose start depends on how fast node3 restarts. So
        // delegator3 moves one slice per block, on its own thread (stopping
        // and starting nodes blocks this one), until the evidence is
        // committed: some slices land in that window. Restarted, node3 votes
        // first at the height after the last one it stored, so its
        // infraction height h is at least that + 1. node3 is stopped only
        // once it has stored a block after the one holding the first slice:
        // then h − 1 is past that block, and at least one entry precedes the
        // slashed range however late the mover's thread gets going.
        let mut mover = self.mover()?.start();
        let first = mover.first_move(self.net).await?;
        let node3 = query_client(&self.net.m()?.nodes[v].grpc)?;
        let seen = wait_all_heights(self.net, &[node3], first + 1, HEIGHTS_DEADLINE)
            .await
            .with_context(|| format!("waiting for node{v} to store height {}", first + 1))?;
        let stopped_at = latest(&mut self.q).await?;
        self.net.stop_one(v)?;
        let home = self.net.m()?.nodes[v].home.clone();
        let h = Home::new(&home);
        let mut cfg = h.load_config().context("reading node3's config.toml")?;
        cfg.testing.double_sign = true;
        let tmp = h.config().with_extension("toml.tmp");
        std::fs::write(&tmp, cfg.to_toml())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, h.config())
            .with_context(|| format!("replacing {}", h.config().display()))?;
        let pid = self.net.start_one(agora, v)?;
        if let Some(m) = self.net.manifest.as_mut() {
            m.nodes[v].byzantine = true;
            m.byzantine = ByzantineNote {
                requested: 1,
                applied: 1,
                note: None,
            };
            m.save()?;
        }
        detail!(
            "node{v} stopped at height {stopped_at} (it had stored {} > {first}, the first slice's block), restarted as pid {pid} with testing.double_sign = true in {}",
            seen.first().copied().unwrap_or_default(),
            h.config().display()
        );
        let t0 = Instant::now();
        let events = loop {
            self.net.check_alive()?;
            let ev = all_slashes(&mut self.q, &va.0).await.unwrap_or_default();
            if !ev.is_empty() {
                break ev;
            }
            if t0.elapsed() > EVIDENCE_DEADLINE {
                let now = latest(&mut self.q).await.ok();
                bail!(
                    "no evidence against node{v} committed within {EVIDENCE_DEADLINE:?} (chain at {now:?}); see {}",
                    self.net.m()?.nodes[v].log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        };
        let mut moves = mover.finish()?;
        self.snapshot_moves(&mut moves).await?;
        ensure!(
            events.len() == 1,
            "node{v} was slashed {} times; one infraction kind, one tombstone, one slash expected",
            events.len()
        );
        let event = events[0].clone();
        let rows = EvidenceFinder::default()
            .recent(&mut self.q, &events, 1)
            .await;
        let row = rows.first().context("no evidence row")?;
        ensure!(
            row.round.is_some(),
            "the evidence {} is not in block {}: {}",
            row.hash,
            event.slash_height,
            row.kind
        );
        detail!(
            "evidence {}: {} by node{v} at height {} round {}, committed in block {}",
            row.hash,
            row.kind,
            row.height,
            row.round.unwrap_or_default(),
            row.committed_at
        );
        if let Some((a, b)) = &row.conflicting {
            detail!("node{v} signed both block hash {a} and {b}");
        }
        detail!("(the live view of `agora-testnet up` shows this in its \"recent evidence\" pane)");
        ensure!(
            row.height == event.infraction_height,
            "the evidence is for height {}, the slash for {}",
            row.height,
            event.infraction_height
        );
        let moves_count = moves.count();
        Ok((
            Seen {
                event,
                validator_before,
                delegation_before: del,
                self_delegation_before,
                moves,
            },
            format!(
                "{} at height {} committed at height {}, {:.1} s after the restart; {} redelegations away from node{v} meanwhile",
                row.kind,
                row.height,
                row.committed_at,
                t0.elapsed().as_secs_f64(),
                moves_count
            ),
        ))
    }

    /// Checks the slash to the token; returns the height node3 left the set.
    async fn check_slash(&mut self, s: &Seen) -> Result<(u64, String)> {
        let v = VALIDATORS - 1;
        let va = self.validators[v];
        let e = &s.event;
        let bps = self.params.slash_fraction_double_sign_bps;
        let power = self.power_at(e.infraction_height, &va).await?;
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

        let after = self.validator(&va).await?;
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
        // Every delegator loses in proportion to its shares.
        let (_, d1) = self.delegator(1)?;
        let mut holders = vec![("delegator1", d1, s.delegation_before.clone())];
        if let Some((op, sd)) = &s.self_delegation_before {
            holders.push(("self-bond", *op, sd.clone()));
        }
        for (name, who, before) in holders {
            let now = self.delegation(&who, &va).await?;
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

        let out = e.slash_height + 2;
        self.wait_height(e.slash_height + 1, HEIGHTS_DEADLINE)
            .await?;
        let in_before = power_of(&self.set_at(e.slash_height + 1).await?, &va);
        let set_out = self.set_at(out).await?;
        detail!(
            "node{v} in the set of height {}: power {in_before:?}; in the set of height {out}: {:?} ({} validators)",
            e.slash_height + 1,
            power_of(&set_out, &va),
            set_out.validators.len()
        );
        ensure!(
            power_of(&set_out, &va).is_none(),
            "node{v} is still in the set of height {out}"
        );
        Ok((
            out,
            format!(
                "{amount} tokens = {bps} bps of power {power}; delegator1 lost its share; tombstoned; out of the set from height {out}"
            ),
        ))
    }

    async fn liveness(&mut self, out: u64) -> Result<((), String)> {
        let m = self.net.m()?;
        let honest: Vec<QueryClient<Channel>> = m.nodes[..VALIDATORS - 1]
            .iter()
            .map(|n| query_client(&n.grpc))
            .collect::<Result<_>>()?;
        let from = latest(&mut self.q).await?.max(out);
        let t0 = Instant::now();
        let hs =
            wait_all_heights(self.net, &honest, from + LIVENESS_HEIGHTS, HEIGHTS_DEADLINE).await?;
        let set = self.set_at(0).await?;
        let total: u64 = set.validators.iter().map(|v| v.power).sum();
        detail!(
            "validator set now: {} validators, total power {total}",
            set.validators.len()
        );
        ensure!(
            set.validators.len() == VALIDATORS - 1,
            "{} validators in the set, expected {}",
            set.validators.len(),
            VALIDATORS - 1
        );
        Ok((
            (),
            format!(
                "node0..node2 went from height {from} to {hs:?} in {:.1} s",
                t0.elapsed().as_secs_f64()
            ),
        ))
    }

    async fn audit(&mut self, s: &Seen) -> Result<((), String)> {
        let g = agora_node::genesis::load(&self.genesis)
            .with_context(|| format!("loading {}", self.genesis.display()))?;
        let ledger = Ledger::from_genesis(&g.genesis).context("the genesis file")?;
        let cfg = AuditConfig {
            chain: ledger.chain_id().clone(),
            seed0: agora_validator::crypto::vrf::genesis_seed(&g.file_hash),
            genesis_set: ledger
                .validator_set(1)
                .cloned()
                .context("the genesis has no validator set")?,
            from: 1,
            to: None,
        };
        let node = self.net.m()?.nodes[1].grpc.clone();
        detail!(
            "same as: agora audit --node {node} --genesis {}",
            self.genesis.display()
        );
        let ch = endpoint(&node)?
            .connect_timeout(RPC_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("connecting to {node}"))?;
        let r = tokio::time::timeout(AUDIT_DEADLINE, audit::audit(ch, cfg))
            .await
            .map_err(|_| anyhow::anyhow!("the audit took longer than {AUDIT_DEADLINE:?}"))?
            .context("AUDIT FAILED")?;
        let secs = r.elapsed.as_secs_f64();
        detail!(
            "OK: verified {} certificates (heights 1..={}) in {secs:.2} s; {} validator-set changes; {} evidence included",
            r.verified_total,
            r.to,
            r.set_changes,
            r.evidence.len()
        );
        for e in &r.evidence {
            let d = crate::evidence::describe(&e.evidence);
            let kind = d.kind;
            let at = d.at.map_or_else(
                || "an unreadable height".to_string(),
                |(h, r)| format!("height {h} round {r}"),
            );
            detail!("evidence in block {}: {kind} at {at}", e.height);
        }
        ensure!(
            r.verified_total == r.to,
            "verified {} of {} heights",
            r.verified_total,
            r.to
        );
        // Bond, unbond, bond and slash each change the set.
        ensure!(
            r.set_changes >= 4,
            "only {} validator-set changes verified, the demo made at least 4",
            r.set_changes
        );
        ensure!(
            r.evidence.iter().any(|e| {
                e.height == s.event.slash_height
                    && crate::evidence::evidence_hash(&e.evidence).as_slice()
                        == s.event.evidence_hash.as_slice()
            }),
            "the audit did not see node3's evidence in block {}",
            s.event.slash_height
        );
        ensure!(
            r.slashes.iter().any(|x| x.validator == s.event.validator),
            "the audit's slashing events miss node3"
        );
        Ok((
            (),
            format!(
                "{} certificates verified from genesis in {secs:.2} s, {} set changes, {} evidence",
                r.verified_total,
                r.set_changes,
                r.evidence.len()
            ),
        ))
    }
}
