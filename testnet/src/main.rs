//! `agora-testnet`: local Agora testnets in one command.
//!
//! * `up` generates homes and a shared genesis, starts one `agora start` per
//!   validator, writes `DIR/testnet.json` and shows a live view until Ctrl-C
//!   (or exits at once with `--detach`);
//! * `status` prints one snapshot of a running testnet;
//! * `down` stops the processes listed in `DIR/testnet.json`;
//! * `generate` writes homes for validators on separate machines (`--hosts`)
//!   or in Docker containers on one bridge network (`--compose`);
//! * `demo` walks a newcomer through bonding, unbonding, slashing and audit;
//! * `bench` measures a fresh testnet (see `bench.rs`).

// Output goes through `say!` (`say.rs`): `println!` panics when the reader has
// left, before the nodes this command started are stopped.
#![deny(clippy::print_stdout)]

mod bench;
mod compose;
mod demo;
mod evidence;
mod generate;
mod manifest;
mod procs;
mod say;
mod signals;
mod up;
mod view;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use manifest::Manifest;
use say::say;

#[derive(Parser)]
#[command(name = "agora-testnet", version, about = "Local Agora testnets")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node from its home (what `agora start` does). `up` uses it when
    /// no `agora` binary sits next to this one, so `cargo run -p
    /// agora-testnet -- up` works on its own.
    #[command(hide = true)]
    Start {
        /// Home directory.
        #[arg(long)]
        home: std::path::PathBuf,
    },
    /// Generate a testnet, start its validators and watch them until Ctrl-C.
    Up(up::UpArgs),
    /// Stop the processes of a testnet started with `up --detach`.
    Down {
        /// Testnet directory.
        #[arg(long, default_value = "target/agora-testnet")]
        dir: PathBuf,
    },
    /// Print one snapshot of a testnet.
    Status {
        /// Testnet directory.
        #[arg(long, default_value = "target/agora-testnet")]
        dir: PathBuf,
    },
    /// A scripted walk: 4 validators, bond, unbond, a double signer slashed
    /// and tombstoned, then an audit from genesis. Exits 0 only if every step held.
    Demo {
        /// Testnet directory (a stopped testnet there is replaced).
        #[arg(long, default_value = "target/agora-demo")]
        dir: PathBuf,
        /// Node i uses p2p (UDP) base+10i, gRPC base+10i+1, metrics base+10i+2.
        #[arg(long, default_value_t = 27100)]
        base_port: u16,
    },
    /// Start a fresh testnet, measure heights/s, commit latency, tx/s, CPU
    /// and catch-up, write DIR/bench.json and bench.svg, stop it.
    Bench(bench::BenchArgs),
    /// Write homes for validators on separate machines (`--hosts`: copy
    /// OUT/nodeI to host I) or in Docker containers on this one
    /// (`--compose`: OUT/docker-compose.yml runs them on one bridge network).
    Generate(GenerateArgs),
}

fn main() -> ExitCode {
    match real_main() {
        // Output a reader never took: the status of a death by SIGPIPE, once
        // the command's work (stopping its nodes above all) is done.
        Ok(_) if say::lost() => {
            ExitCode::from(agora_node::client::stdout::BROKEN_PIPE_STATUS as u8)
        }
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", agora_node::error_text::chain_text(&e));
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runs a node in this process until SIGINT or SIGTERM.
fn run_node(home: &std::path::Path) -> Result<ExitCode> {
    agora_node::logging::init(false);
    // The same threads as `agora start` (`agora_node::threads`).
    let rt = agora_node::threads::Runtimes::new().context("starting the tokio runtimes")?;
    let services = rt.services.handle().clone();
    rt.consensus.block_on(async {
        let node = agora_node::node::Node::start_on(&agora_node::home::Home::new(home), services)
            .await
            .with_context(|| format!("starting node from {}", home.display()))?;
        node.run(async {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await
        .context("consensus driver failed")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn real_main() -> Result<ExitCode> {
    match Cli::parse().command {
        Cmd::Start { home } => run_node(&home),
        Cmd::Up(a) => up::run(a),
        Cmd::Down { dir } => down(&dir),
        Cmd::Status { dir } => status(&dir),
        Cmd::Demo { dir, base_port } => demo::run(demo::DemoArgs { dir, base_port }),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Generate(a) => generate_cmd(a),
    }
}

/// Options of `generate`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["hosts", "compose"])))]
struct GenerateArgs {
    /// Comma-separated hosts (IP or name, optionally :p2p-port), one per validator.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// Validators as containers of one Docker Compose project on one bridge
    /// network: writes OUT/docker-compose.yml beside the homes.
    #[arg(long)]
    compose: bool,
    /// Validators to generate (with --compose).
    #[arg(long, default_value_t = 4, requires = "compose")]
    validators: usize,
    /// Subnet of the bridge network (with --compose); node i is host 10+i.
    #[arg(long, default_value = compose::DEFAULT_SUBNET, requires = "compose")]
    subnet: compose::Subnet,
    /// Ports on 127.0.0.1 of this machine (with --compose): node i's gRPC at
    /// base+10i+1, metrics at base+10i+2.
    #[arg(long, default_value_t = 27000, requires = "compose")]
    publish_base_port: u16,
    /// Docker build context: the Agora repository root holding
    /// testnet/docker/Dockerfile (with --compose; default: the source tree
    /// this binary was built from).
    #[arg(long, requires = "compose")]
    docker_context: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// p2p port when a host gives none (gRPC +1, metrics +2; with --hosts).
    #[arg(long, default_value_t = 26656, conflicts_with = "compose")]
    base_port: u16,
    /// Chain id.
    #[arg(long, default_value = "agora-testnet")]
    chain_id: String,
    /// Genesis unbonding period (and jail period), in heights.
    #[arg(long, default_value_t = 20)]
    unbonding_period: u64,
}

fn generate_cmd(a: GenerateArgs) -> Result<ExitCode> {
    if a.compose {
        refuse_nonempty(&a.out)?;
        compose::run(compose::ComposeArgs {
            validators: a.validators,
            subnet: a.subnet,
            publish_base_port: a.publish_base_port,
            context: a.docker_context.unwrap_or_else(compose::default_context),
            chain_id: a.chain_id,
            unbonding_period: a.unbonding_period,
            out: a.out,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let (hosts, out, chain_id) = (a.hosts, a.out, a.chain_id);
    let plan = generate::hosts_plan(&hosts, a.base_port, &chain_id, a.unbonding_period)?;
    refuse_nonempty(&out)?;
    let g = generate::generate(&plan, &out)?;
    say!("wrote {} homes under {}", g.homes.len(), out.display());
    for ((node, home), v) in plan.nodes.iter().zip(&g.homes).zip(&g.validators) {
        say!(
            "  {}: copy {} to {} and run `agora start --home <it>`; p2p {}, gRPC :{}, metrics :{}; validator {v}",
            node.moniker,
            home.display(),
            node.p2p_public.ip(),
            node.p2p_public,
            node.grpc_listen.port(),
            node.metrics_listen.port()
        );
    }
    say!("genesis: {}", g.genesis.display());
    // A manifest without pids, so that `status --dir OUT` can watch the
    // remote network from here.
    let out_abs = out
        .canonicalize()
        .with_context(|| format!("resolving {}", out.display()))?;
    let endpoints: Vec<_> = plan
        .nodes
        .iter()
        .map(|n| {
            let ip = n.p2p_public.ip();
            (
                std::net::SocketAddr::new(ip, n.grpc_listen.port()),
                std::net::SocketAddr::new(ip, n.metrics_listen.port()),
            )
        })
        .collect();
    Manifest::remote(&chain_id, &out_abs, &plan, &g, &endpoints).save()?;
    say!(
        "manifest: {} (`agora-testnet status --dir {}` polls the hosts' gRPC)",
        Manifest::path(&out_abs).display(),
        out.display()
    );
    say!(
        "delegator keys: {} (agora tx ... --home {} --from delegatorN)",
        out.join("delegators/keys").display(),
        out.join("delegators").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Fails unless `dir` is absent or empty.
fn refuse_nonempty(dir: &Path) -> Result<()> {
    if let Ok(mut rd) = std::fs::read_dir(dir)
        && rd.next().is_some()
    {
        bail!("{} is not empty; choose another directory", dir.display());
    }
    Ok(())
}

/// Makes `dir` ready for a new testnet: absent, empty, or (with `--reset`) a
/// stopped testnet, which is deleted. Anything else is left alone.
fn prepare_dir(dir: &Path, reset: bool) -> Result<()> {
    let Ok(mut rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    if rd.next().is_none() {
        return Ok(());
    }
    let Ok(m) = Manifest::load(dir) else {
        bail!(
            "{} is not empty and holds no testnet.json; choose another --dir",
            dir.display()
        );
    };
    let running = m.running_pids();
    if !running.is_empty() {
        bail!(
            "the testnet in {} is running (pids {running:?}); run `agora-testnet down --dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    if !reset {
        bail!(
            "{} holds a stopped testnet; pass --reset to delete it and start a new one",
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))
}

/// Fails if a port the plan needs (gRPC, metrics, p2p) is taken.
pub(crate) fn check_ports(plan: &generate::Plan) -> Result<()> {
    for n in &plan.nodes {
        for a in [n.grpc_listen, n.metrics_listen]
            .into_iter()
            .chain(n.explorer_listen)
        {
            std::net::TcpListener::bind(a).with_context(|| {
                format!(
                    "{}: port {} is in use (choose another --base-port)",
                    n.moniker, a
                )
            })?;
        }
        std::net::UdpSocket::bind(n.p2p_listen).with_context(|| {
            format!(
                "{}: UDP port {} is in use (choose another --base-port)",
                n.moniker, n.p2p_listen
            )
        })?;
    }
    Ok(())
}

fn status(dir: &Path) -> Result<ExitCode> {
    let m = Manifest::load(dir)?;
    let rt = runtime()?;
    // The lazy gRPC channels need the runtime's reactor when created.
    let snap = rt.block_on(async { view::Poller::new(&m).snapshot().await });
    let exited: Vec<Option<String>> = m
        .nodes
        .iter()
        .map(|n| match n.pid {
            Some(p) if !procs::is_running(p, Some(&n.home)) => Some(format!("pid {p} not running")),
            _ => None,
        })
        .collect();
    say::write(&view::render(
        &m,
        &snap,
        &view::IntervalTracker::default(),
        &exited,
    ));
    let up = snap.nodes.iter().filter(|n| n.error.is_none()).count();
    Ok(if up == m.nodes.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn down(dir: &Path) -> Result<ExitCode> {
    let mut m = Manifest::load(dir)?;
    let mut targets: Vec<procs::Target<'_>> = m
        .nodes
        .iter()
        .filter_map(|n| {
            n.pid.map(|pid| procs::Target {
                pid,
                home: &n.home,
                child: None,
            })
        })
        .collect();
    let killed = procs::stop_all(&mut targets, procs::TERM_GRACE)?;
    let n = targets.len();
    drop(targets);
    for node in &mut m.nodes {
        node.pid = None;
    }
    m.save()?;
    if killed.is_empty() {
        say!("stopped the testnet in {} ({n} nodes)", m.dir.display());
    } else {
        say!(
            "stopped the testnet in {} ({n} nodes; SIGKILL needed for {killed:?})",
            m.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod readme_commands {
    use super::Cli;
    use agora_node::doc_commands::{command_lines, refused};
    use clap::Parser;

    const README: &str = include_str!("../../README.md");

    /// Every `agora-testnet` command README.md gives (as a `cargo run` or
    /// the built binary) parses with today's flags and subcommands.
    #[test]
    fn every_testnet_command_in_the_readme_parses() {
        let lines = command_lines(README, "agora-testnet").expect("README placeholders");
        // Quick start, local testnets, benches, Docker: a parse that found
        // none of them would pass vacuously.
        assert!(lines.len() >= 8, "only {} lines found", lines.len());
        let broken = refused(&lines, |args| Cli::try_parse_from(args).map(drop));
        assert!(broken.is_empty(), "README.md: {}", broken.join("\n"));
        // Negative control: a subcommand it lacks is refused.
        assert!(Cli::try_parse_from(["agora-testnet", "upp"]).is_err());
    }
}
