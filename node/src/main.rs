//! `agora`: the node and client command-line interface.

// Answers go through `agora_node::outln!`: `println!` panics when the reader has left.
#![deny(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use agora_node::client::{audit_cli, cli};
use agora_node::home::{self, Home};
use agora_node::keys;
use agora_node::node::Node;
use agora_node::outln;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "agora", version, about = "Agora proof-of-stake BFT node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a home directory: keys, TLS certificate, config.toml and a single-validator genesis.
    Init {
        /// Home directory to create.
        #[arg(long)]
        home: PathBuf,
        /// Chain id (1-255 printable ASCII characters).
        #[arg(long)]
        chain_id: String,
        /// Human-readable node name.
        #[arg(long)]
        moniker: Option<String>,
    },
    /// Run the node from its home directory until SIGINT or SIGTERM.
    Start {
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
        /// Log as JSON lines instead of text (filter with RUST_LOG).
        #[arg(long)]
        log_json: bool,
    },
    /// Manage Ed25519 account keys in HOME/keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Sign a transaction locally, submit it to a node, and wait for the outcome.
    Tx(cli::TxArgs),
    /// Read chain state from a node.
    Query(cli::QueryArgs),
    /// Export or import the validator's signing state (the double-sign
    /// guard's memory) in its JSON interchange form; the node must be stopped.
    SigningState {
        #[command(subcommand)]
        command: SigningStateCommand,
    },
    /// Verify a node's chain from genesis (certificates, header links,
    /// validator-set transitions, lottery winners and VRF proofs), trusting
    /// only the genesis file.
    Audit(audit_cli::AuditArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new Ed25519 account key NAME (stored in HOME/keys/NAME.key, mode 0600).
    Add {
        /// Key name (letters, digits, '-' and '_').
        name: String,
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// List the keys, their addresses and kinds (ed25519 accounts, the bls12-381 validator key).
    List {
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// Show the address and public key of key NAME ("validator" for the consensus key).
    Show {
        /// Key name.
        name: String,
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
    },
}

#[derive(Subcommand)]
enum SigningStateCommand {
    /// Write HOME's signing state as JSON (to stdout, or --out FILE).
    Export {
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
        /// Output file (written atomically); stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a signing state exported for this chain and key; the later of
    /// it and the local state is kept (an import never lowers it).
    Import {
        /// Home directory.
        #[arg(long)]
        home: PathBuf,
        /// The exported JSON file.
        file: PathBuf,
    },
}

fn signing_state_command(command: SigningStateCommand) -> Result<()> {
    use agora_node::client::signing_state::{self as ss, Imported};
    match command {
        SigningStateCommand::Export { home, out } => {
            let text = ss::export(&Home::new(&home))?;
            match out {
                Some(path) => {
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, &text)
                        .and_then(|_| std::fs::rename(&tmp, &path))
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("exported to {}", path.display());
                }
                None => agora_node::client::stdout::write(&text),
            }
        }
        SigningStateCommand::Import { home, file } => {
            let show = |s: &agora_validator::consensus::SigningState| {
                format!("height {} round {} step {:?}", s.height, s.round, s.step)
            };
            match ss::import(&Home::new(&home), &file)? {
                Imported::Replaced(s) => outln!("imported: last signed {}", show(&s)),
                Imported::KeptLocal(s) => outln!(
                    "kept the local signing state, which is as new or newer: last signed {}",
                    show(&s)
                ),
            }
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("key name {name:?} must be 1-64 letters, digits, '-' or '_'");
    }
    if name == "tls" {
        bail!("key name \"tls\" is reserved for the node's TLS key");
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C still works through tokio's fallback.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn client<F: std::future::Future<Output = Result<std::process::ExitCode>>>(
    f: impl FnOnce() -> F,
) -> Result<std::process::ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(f())
}

/// The node's allocator: mimalloc instead of glibc's malloc. Under 5,000
/// transfers/s a profile put 10–12% of a validator's CPU in glibc's
/// malloc and free (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`:
/// blocks, transactions and gossip frames made on one thread and freed on
/// another); with mimalloc the same bench committed 13.0–13.1 heights/s at
/// 34 CPU-ms per validator-height against 10.2–10.3 at 44 (ARCHITECTURE.md,
/// "Transactions under load"). The price is memory kept for reuse: peak RSS
/// 238 against 153 MB in that bench, far below `memory::worst_case`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, before it allocates
/// much. mimalloc asks for them on its 2 MiB-aligned regions
/// (`madvise(MADV_HUGEPAGE)`, honoured where THP is "madvise", the common
/// default, and implied where it is "always"), so each first touch of a
/// region made the kernel zero a whole 2 MiB page (`clear_page_erms`, 13%
/// of a catching-up node's CPU in a profile) and the node held memory it
/// never used. Measured with mimalloc's own switch (`MIMALLOC_ALLOW_THP=0`,
/// which makes this same call): a wiped node catching up on 3,458 empty
/// blocks used 1.29–1.31 CPU-s and peaked at 35–36 MB against 1.43–1.46 s
/// and 92–94 MB; `agora-testnet bench` catch-up 2,388 and 2,462 blocks/s
/// against 1,813 and 1,811, its restarted node's startup 0.05 s against
/// 0.12–0.13; 5,000 transfers/s and empty blocks unchanged (ARCHITECTURE,
/// "Audit and catch-up"). A failure (an old kernel) changes nothing else.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and touches no
    // memory of ours; the unused arguments are zero as prctl(2) asks.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", agora_node::error_text::chain_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Tx(a) => return client(|| cli::run_tx(a)),
        Command::Query(a) => return client(|| cli::run_query(a)),
        Command::Audit(a) => return client(|| audit_cli::run_audit(a)),
        Command::SigningState { command } => signing_state_command(command)?,
        Command::Init {
            home,
            chain_id,
            moniker,
        } => init(&home, &chain_id, moniker.as_deref())?,
        Command::Start { home, log_json } => start(&home, log_json)?,
        Command::Keys { command } => match command {
            KeysCommand::Add { name, home } => keys_add(&name, &home)?,
            KeysCommand::List { home } => keys_list(&home)?,
            KeysCommand::Show { name, home } => keys_show(&name, &home)?,
        },
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `agora init`: a new home directory (keys, config, genesis).
fn init(home: &std::path::Path, chain_id: &str, moniker: Option<&str>) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let h = Home::new(home);
    let s = home::init(&h, chain_id, moniker, now)
        .with_context(|| format!("initialising {}", home.display()))?;
    outln!("initialised {}", home.display());
    outln!("chain id:      {chain_id}");
    outln!("validator:     {}", s.address);
    outln!("public key:    {}", s.public_key_hex);
    outln!("operator:      {} (keys/operator.key, Ed25519)", s.operator);
    outln!("genesis hash:  {}", s.genesis_hash_hex);
    Ok(())
}

/// `agora start`: runs the node until a shutdown signal.
fn start(home: &std::path::Path, log_json: bool) -> Result<()> {
    agora_node::logging::init(log_json);
    // Consensus and the transport on this thread, the servers for clients
    // on a pool of their own (`agora_node::threads` says why).
    let rt = agora_node::threads::Runtimes::new().context("starting the tokio runtimes")?;
    let handle = rt.services.handle().clone();
    rt.consensus.block_on(async {
        let node = Node::start_on(&Home::new(home), handle)
            .await
            .with_context(|| format!("starting node from {}", home.display()))?;
        node.run(shutdown_signal())
            .await
            .context("consensus driver failed")?;
        anyhow::Ok(())
    })?;
    Ok(())
}

/// `agora keys add`: a new Ed25519 account key in the home's keys directory.
fn keys_add(name: &str, home: &std::path::Path) -> Result<()> {
    valid_name(name)?;
    let h = Home::new(home);
    let path = h.account_key(name);
    if !h.keys_dir().is_dir() {
        bail!(
            "{} is not a directory; run `agora init` first",
            h.keys_dir().display()
        );
    }
    let info = keys::save_account(&path, &keys::generate_account()?)?;
    outln!(
        "{name}\t{}\t{}",
        info.address,
        hex::encode(&info.public_key)
    );
    Ok(())
}

/// `agora keys list`: every key in the home's keys directory.
fn keys_list(home: &std::path::Path) -> Result<()> {
    let h = Home::new(home);
    let dir = h.keys_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_suffix(".key").map(str::to_string)
        })
        .filter(|n| n != "tls")
        .collect();
    names.sort();
    for name in names {
        match keys::info(&h.account_key(&name)) {
            Ok(i) => outln!("{name}\t{}\t{}", i.address, i.kind),
            Err(e) => outln!("{name}\t<unreadable: {e}>"),
        }
    }
    Ok(())
}

/// `agora keys show`: one key's address, kind and public key.
fn keys_show(name: &str, home: &std::path::Path) -> Result<()> {
    valid_name(name)?;
    let i = keys::info(&Home::new(home).account_key(name))?;
    outln!("name:       {name}");
    outln!("address:    {}", i.address);
    outln!("kind:       {}", i.kind);
    outln!("public key: {}", hex::encode(&i.public_key));
    Ok(())
}

#[cfg(test)]
mod readme_commands {
    use super::Cli;
    use agora_node::doc_commands::{command_lines, refused};
    use clap::Parser;

    const README: &str = include_str!("../../README.md");

    /// Every `agora` command README.md gives parses with today's flags and
    /// subcommands.
    #[test]
    fn every_agora_command_in_the_readme_parses() {
        let lines = command_lines(README, "agora").expect("README placeholders");
        // The README's delegator, operator and auditor sections: a parse
        // that found none of them would pass vacuously.
        assert!(lines.len() >= 15, "only {} agora lines found", lines.len());
        let broken = refused(&lines, |args| Cli::try_parse_from(args).map(drop));
        assert!(broken.is_empty(), "README.md: {}", broken.join("\n"));
    }

    /// Negative control: a flag the CLI does not have is refused, so the
    /// test above can catch a README that names a renamed flag.
    #[test]
    fn a_readme_line_with_a_flag_the_cli_lacks_is_caught() {
        let md = "```\nagora tx bond <validator-address> 5 --frm alice --home h\n```\n";
        let lines = command_lines(md, "agora").unwrap();
        assert_eq!(lines.len(), 1);
        assert!(Cli::try_parse_from(&lines[0].args).is_err());
        let fixed = lines[0].args.iter().map(|a| a.replace("--frm", "--from"));
        assert!(Cli::try_parse_from(fixed).is_ok());
    }
}
