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
//! chain keeps committing without it; audit the chain from genesis.
//!
//! This module runs the steps in order; each lives in a submodule: step 1
//! in [`start`], steps 2 and 3 in [`staking`], the economics steps (4, 5
//! and 8) in [`economics`], step 6 in [`double_sign`], step 7 in [`slash`],
//! step 9 in [`liveness`] and step 10 in [`audit`]. They share the node
//! processes ([`net`]), the gRPC helpers ([`rpc`]) and the clients and
//! queries of [`chain`].
//!
//! Every wait polls a condition against a deadline. Every process started
//! here is stopped at the end, on failure, and on Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::procs;
use crate::say::say;
use crate::signals::StopSignals;

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
        $crate::say::write(&format!("      {}\n", format!($($arg)*)));
    }};
}

// After `detail!`, which they use.
mod audit;
mod chain;
mod double_sign;
mod economics;
mod liveness;
mod net;
mod rpc;
mod slash;
mod staking;
mod start;

use chain::Demo;
use net::Net;

/// Runs the demo; exit code 0 only if every step held.
pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let agora = procs::find_agora()?;
    let rt = super::runtime()?;
    let started = Instant::now();
    let mut net = Net::default();
    let outcome = rt.block_on(async {
        // Before step 1 starts the nodes: a Ctrl-C from here on stops them.
        let mut signals = StopSignals::install()?;
        tokio::select! {
            r = walk(&mut net, &agora, &a) => anyhow::Ok(Some(r)),
            () = signals.recv() => Ok(None),
        }
    });
    say!("stopping the testnet...");
    net.stop_all();
    let secs = started.elapsed().as_secs_f64();
    match outcome? {
        Some(Ok(())) => {
            say!("demo finished in {secs:.1} s: all {STEPS} steps ok");
            if let Ok(m) = net.m() {
                say!(
                    "(homes, logs and testnet.json stay in {}; the next demo run replaces them)",
                    m.dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failed)) => {
            say!("demo FAILED after {secs:.1} s at step {failed}");
            if let Ok(m) = net.m() {
                say!("node logs: {}/node*/node.log", m.dir.display());
            }
            Ok(ExitCode::FAILURE)
        }
        None => {
            say!("demo interrupted after {secs:.1} s");
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
    say!("[{n}/{STEPS}] {title} …");
    let _ = std::io::stdout().flush();
    match f.await {
        Ok((v, summary)) => {
            say!("[{n}/{STEPS}] {title} … ok: {summary}");
            Ok(v)
        }
        Err(e) => {
            say!("[{n}/{STEPS}] {title} … FAILED: {e:#}");
            Err(n)
        }
    }
}

/// The ten steps, stopping at the first that fails.
async fn walk(net: &mut Net, agora: &Path, a: &DemoArgs) -> Result<(), usize> {
    step(
        1,
        &format!("start {VALIDATORS} validators and wait for {FIRST_HEIGHTS} heights"),
        start::start(net, agora, a),
    )
    .await?;
    let mut d = match Demo::new(net) {
        Ok(d) => d,
        Err(e) => {
            say!("[1/{STEPS}] connecting to node0 … FAILED: {e:#}");
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
