//! `agora-testnet up`: generate a loopback testnet, start one `agora start`
//! per validator, write `DIR/testnet.json`, then show a live view until
//! SIGINT or SIGTERM (or leave the nodes running with `--detach`).
//!
//! Every node this command started is stopped when it ends, whatever ends
//! it: a signal (handled from before the first node starts, see
//! `signals.rs`), an error, or a panic's unwinding ([`Started`]'s drop).
//! Only `--detach` leaves them running, once `testnet.json` names them for
//! `agora-testnet down`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::manifest::{ByzantineNote, Manifest};
use crate::say::say;
use crate::signals::StopSignals;
use crate::{check_ports, generate, prepare_dir, procs, view};

/// Options of `up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// Validators to run.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Testnet directory (homes, logs, testnet.json).
    #[arg(long, default_value = "target/agora-testnet")]
    pub dir: PathBuf,
    /// Node i uses p2p (UDP) base+10i, gRPC base+10i+1, metrics base+10i+2.
    #[arg(long, default_value_t = 27000)]
    pub base_port: u16,
    /// Validators (the last K) that double-sign on purpose (config
    /// `testing.double_sign`), so that evidence and slashing can be watched.
    #[arg(long, default_value_t = 0)]
    pub byzantine: usize,
    /// The --byzantine validators double-sign exactly once (config
    /// `testing.double_sign_once`) instead of at every height.
    #[arg(long, requires = "byzantine")]
    pub byzantine_once: bool,
    /// Leave the nodes running and exit once testnet.json is written.
    #[arg(long)]
    pub detach: bool,
    /// Chain id.
    #[arg(long, default_value = "agora-testnet")]
    pub chain_id: String,
    /// Genesis unbonding period (and jail period), in heights.
    #[arg(long, default_value_t = 20)]
    pub unbonding_period: u64,
    /// Delete DIR first if it holds a stopped testnet.
    #[arg(long)]
    pub reset: bool,
    /// Funded accounts without keys added to genesis, for a large state
    /// (state sync, state scaling).
    #[arg(long, default_value_t = 0)]
    pub extra_accounts: usize,
    /// Heights between the snapshots each node serves for state sync.
    #[arg(long, default_value_t = generate::TESTNET_SNAPSHOT_INTERVAL)]
    pub snapshot_interval: u64,
    /// Genesis downtime window, in certificates (a validator missing more
    /// than half of it is jailed); large values keep a validator started
    /// late from being jailed before it signs.
    #[arg(long, default_value_t = agora_validator::ledger::params::DEFAULT_SIGNED_BLOCKS_WINDOW)]
    pub signed_blocks_window: u64,
}

/// Runs `up`; every node it started is stopped before it returns, unless
/// `--detach` left them running.
pub fn run(a: UpArgs) -> Result<ExitCode> {
    let agora = procs::find_agora()?;
    let mut m = generate_testnet(&a, &agora)?;
    let rt = crate::runtime()?;
    let mut signals = {
        let _entered = rt.enter();
        StopSignals::install()?
    };
    let mut started = Started::default();
    for n in &mut m.nodes {
        // On an error the nodes started so far are stopped by the drop.
        let c = procs::spawn_node(&agora, &n.home, &n.log)?;
        n.pid = Some(c.id());
        started.push(c, n.home.clone());
    }
    m.save()?;
    print_started(&m);
    // On an error (a node that died, the deadline) the drop stops them all.
    let ready = rt.block_on(wait_ready(&m, &mut started, &mut signals))?;
    let Some(height) = ready else {
        say!("interrupted while starting; stopping...");
        close_connections(rt, signals);
        started.stop();
        // 128 + SIGINT, as a shell reports an interrupted command.
        return Ok(ExitCode::from(130));
    };
    say!("ready: every node serves gRPC; the chain is at height {height}");
    if a.detach {
        started.leave_running();
        say!(
            "detached; stop with `agora-testnet down --dir {}`",
            m.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    rt.block_on(watch(&m, &mut started, &mut signals));
    say!("stopping...");
    close_connections(rt, signals);
    started.stop();
    Ok(ExitCode::SUCCESS)
}

/// Closes the gRPC connections this command holds to the nodes (the view's,
/// the readiness wait's) before it stops them, by shutting down the runtime
/// whose tasks own them. Left open, with nothing polling them while
/// [`Started::stop`] blocks, they kept every node's gRPC server in its 3 s
/// shutdown grace: Ctrl-C took 5.0 s to stop four nodes.
fn close_connections(rt: tokio::runtime::Runtime, signals: StopSignals) {
    drop(signals);
    rt.shutdown_background();
}

/// How long `up` waits for every node to serve gRPC and commit a block.
/// Four debug-build validators take 1–3 s here.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Waits until every node answers GetStatus at height 1 or more, so that
/// the commands printed with the nodes work as soon as `up` returns: a
/// script's first `agora tx` straight after `up --detach` used to meet
/// "connection refused". Returns the lowest height then, or None if a
/// signal came first. A node that exits meanwhile, or a node not ready
/// by [`READY_DEADLINE`], is an error that names it and quotes its log.
async fn wait_ready(
    m: &Manifest,
    started: &mut Started,
    signals: &mut StopSignals,
) -> Result<Option<u64>> {
    let poller = view::Poller::new(m);
    let deadline = Instant::now() + READY_DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = signals.recv() => return Ok(None),
        }
        for (c, n) in started.children.iter_mut().zip(&m.nodes) {
            if let Ok(Some(st)) = c.try_wait() {
                bail!(
                    "{} exited while starting ({st}); the end of {}:\n{}",
                    n.moniker,
                    n.log.display(),
                    n.log_tail(10)
                );
            }
        }
        let nodes = poller.statuses().await;
        let waiting: Vec<String> = nodes
            .iter()
            .zip(&m.nodes)
            .filter(|(s, _)| s.error.is_some() || s.height == 0)
            .map(|(s, n)| match &s.error {
                Some(e) => format!("{}: {e}", n.moniker),
                None => format!("{}: no block committed", n.moniker),
            })
            .collect();
        if waiting.is_empty() {
            return Ok(nodes.iter().map(|s| s.height).min());
        }
        if Instant::now() >= deadline {
            bail!(
                "after {READY_DEADLINE:?} not every node serves a committed chain ({}); see their node.log in {}",
                waiting.join("; "),
                m.dir.display()
            );
        }
    }
}

/// Checks the options, writes the homes and genesis into `a.dir`, and
/// returns the testnet's manifest (no node started yet).
fn generate_testnet(a: &UpArgs, agora: &Path) -> Result<Manifest> {
    if a.byzantine > a.validators {
        bail!(
            "--byzantine {} exceeds --validators {}",
            a.byzantine,
            a.validators
        );
    }
    prepare_dir(&a.dir, a.reset)?;
    let mut plan =
        generate::loopback_plan(a.validators, a.base_port, &a.chain_id, a.unbonding_period)?;
    plan.byzantine = a.byzantine;
    plan.extra_accounts = a.extra_accounts;
    plan.snapshot_interval = a.snapshot_interval;
    plan.signed_blocks_window = a.signed_blocks_window;
    plan.byzantine_once = a.byzantine_once;
    check_ports(&plan)?;
    let (dir, g) = generate::generate_in(&plan, &a.dir)?;
    // Each double signer is tombstoned and leaves the set; more than a third
    // of the power double-signing at once can stall the chain before that.
    let byzantine = ByzantineNote {
        requested: a.byzantine,
        applied: a.byzantine,
        note: (a.byzantine * 3 >= a.validators && a.byzantine > 0).then(|| {
            format!(
                "{} of {} validators double-sign: at least a third of the power, so the chain may stall until they are tombstoned",
                a.byzantine, a.validators
            )
        }),
    };
    if let Some(n) = &byzantine.note {
        eprintln!("note: {n}");
    }
    Ok(Manifest::loopback(
        &a.chain_id,
        &dir,
        agora,
        &plan,
        &g,
        byzantine,
    ))
}

fn print_started(m: &Manifest) {
    say!(
        "started {} validators of chain {:?} in {}",
        m.nodes.len(),
        m.chain_id,
        m.dir.display()
    );
    for n in &m.nodes {
        say!(
            "  {}  pid {:<7} grpc {}  p2p {}  metrics {}  validator {}{}",
            n.moniker,
            n.pid.map(|p| p.to_string()).unwrap_or_default(),
            n.grpc,
            n.p2p,
            n.metrics,
            n.validator_address,
            if n.byzantine { "  (double-signs)" } else { "" }
        );
        if let Some(url) = &n.explorer {
            say!("  explorer {url}  (open it in a browser: it checks every certificate itself)");
        }
    }
    for d in &m.delegators {
        say!(
            "  delegator {}  {}  balance {}  (agora tx bond <validator> <amount> --home {} --from {} --node {})",
            d.name,
            d.address,
            d.balance,
            m.dir.join("delegators").display(),
            d.name,
            m.nodes.first().map(|n| n.grpc.as_str()).unwrap_or("-")
        );
    }
    say!("  manifest {}", Manifest::path(&m.dir).display());
}

/// The node processes `up` started (with their homes, to recognise them),
/// stopped when this is dropped unless [`Started::leave_running`] let them
/// go.
#[derive(Default)]
struct Started {
    children: Vec<Child>,
    homes: Vec<PathBuf>,
}

impl Started {
    fn push(&mut self, child: Child, home: PathBuf) {
        self.children.push(child);
        self.homes.push(home);
        debug_assert_eq!(self.children.len(), self.homes.len());
    }

    /// Lets the nodes outlive this command (`--detach`): dropping a
    /// `Child` neither kills nor waits for it.
    fn leave_running(mut self) {
        self.children.clear();
        self.homes.clear();
    }

    /// Stops every node (SIGTERM, then SIGKILL after the grace period),
    /// reaps it and says so; a second call has nothing left to stop.
    fn stop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut targets: Vec<procs::Target<'_>> = self
            .children
            .iter_mut()
            .zip(&self.homes)
            .map(|(c, home)| procs::Target {
                pid: c.id(),
                home,
                child: Some(c),
            })
            .collect();
        let count = targets.len();
        match procs::stop_all(&mut targets, procs::TERM_GRACE) {
            Ok(killed) if killed.is_empty() => say!("stopped {count} nodes"),
            Ok(killed) => say!(
                "stopped {count} nodes ({} with SIGKILL after {:?}: {killed:?})",
                killed.len(),
                procs::TERM_GRACE
            ),
            Err(e) => {
                eprintln!(
                    "error stopping nodes: {}",
                    agora_node::error_text::chain_text(&e)
                );
                return;
            }
        }
        self.children.clear();
        self.homes.clear();
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Refreshes the view every second until SIGINT or SIGTERM.
async fn watch(m: &Manifest, started: &mut Started, signals: &mut StopSignals) {
    let poller = view::Poller::new(m);
    let mut tracker = view::IntervalTracker::default();
    let mut exited: Vec<Option<String>> = vec![None; started.children.len()];
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = signals.recv() => break,
        }
        for (c, e) in started.children.iter_mut().zip(exited.iter_mut()) {
            if e.is_none()
                && let Ok(Some(st)) = c.try_wait()
            {
                *e = Some(format!("{st} (see its node.log)"));
            }
        }
        let snap = poller.snapshot().await;
        tracker.observe(&snap, Instant::now());
        let text = view::render(m, &snap, &tracker, &exited);
        if tty {
            // Clear the screen and home the cursor, then redraw.
            crate::say::write(&format!(
                "\x1b[2J\x1b[H{text}\n(Ctrl-C stops the testnet)\n"
            ));
        } else {
            say!("{text}");
        }
    }
}
