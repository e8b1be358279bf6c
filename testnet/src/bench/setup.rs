//! The bench's testnet on disk: a fresh loopback testnet, in a directory
//! marked as a bench's, whose nodes run with the bench's consensus timeouts.

use std::path::{Path, PathBuf};

use agora_node::home::Home;
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use super::{BenchArgs, CHAIN_ID};
use crate::generate;
use crate::manifest::{ByzantineNote, Manifest};

/// Marks a directory as a bench's, so that a later bench may delete it.
const MARKER: &str = "BENCH";

/// The consensus timeouts every node ran with.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timeouts {
    pub propose_ms: u64,
    pub propose_delta_ms: u64,
    pub prevote_ms: u64,
    pub prevote_delta_ms: u64,
    pub precommit_ms: u64,
    pub precommit_delta_ms: u64,
    pub commit_ms: u64,
}

impl Timeouts {
    /// The timeouts `a` asks for; each per-round delta follows from its
    /// round-0 timeout.
    pub fn from_args(a: &BenchArgs) -> Self {
        Self {
            propose_ms: a.timeout_propose_ms,
            propose_delta_ms: (a.timeout_propose_ms / 3).max(1),
            prevote_ms: a.timeout_vote_ms,
            prevote_delta_ms: (a.timeout_vote_ms / 2).max(1),
            precommit_ms: a.timeout_vote_ms,
            precommit_delta_ms: (a.timeout_vote_ms / 2).max(1),
            commit_ms: a.timeout_commit_ms,
        }
    }

    fn apply(&self, c: &mut agora_node::config::ConsensusConfig) {
        c.timeout_propose_ms = self.propose_ms;
        c.timeout_propose_delta_ms = self.propose_delta_ms;
        c.timeout_prevote_ms = self.prevote_ms;
        c.timeout_prevote_delta_ms = self.prevote_delta_ms;
        c.timeout_precommit_ms = self.precommit_ms;
        c.timeout_precommit_delta_ms = self.precommit_delta_ms;
        c.timeout_commit_ms = self.commit_ms;
    }

    /// Puts these timeouts into the config of the node home `h`.
    fn write_into(&self, h: &Path) -> Result<()> {
        let home = Home::new(h);
        let mut cfg = home
            .load_config()
            .with_context(|| format!("reading {}", home.config().display()))?;
        self.apply(&mut cfg.consensus);
        cfg.validate()
            .map_err(|e| anyhow!("bench config of {}: {e}", h.display()))?;
        std::fs::write(home.config(), cfg.to_toml())
            .with_context(|| format!("writing {}", home.config().display()))
    }
}

/// Generates the testnet of `a` in `a.dir`, replacing an earlier bench's,
/// with `timeouts` in every node's config; the nodes will run `agora`.
pub fn testnet(a: &BenchArgs, agora: &Path, timeouts: Timeouts) -> Result<Manifest> {
    prepare_dir(&a.dir)?;
    let mut plan = generate::loopback_plan(a.validators, a.base_port, CHAIN_ID, 20)?;
    plan.delegators = a.accounts;
    crate::check_ports(&plan)?;
    let dir = create_dir(&a.dir)?;
    let g = generate::generate(&plan, &dir)?;
    for h in &g.homes {
        timeouts.write_into(h)?;
    }
    Ok(Manifest::loopback(
        CHAIN_ID,
        &dir,
        agora,
        &plan,
        &g,
        ByzantineNote::default(),
    ))
}

/// Creates `dir` with the bench's marker in it; returns its canonical path.
fn create_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let canonical = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    std::fs::write(canonical.join(MARKER), "agora-testnet bench directory\n")
        .with_context(|| format!("writing {}", canonical.join(MARKER).display()))?;
    Ok(canonical)
}

/// Makes `dir` ready: absent, empty, or an earlier bench (deleted) whose
/// nodes are all stopped.
fn prepare_dir(dir: &Path) -> Result<()> {
    let Ok(mut rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    if rd.next().is_none() {
        return Ok(());
    }
    if !dir.join(MARKER).is_file() {
        bail!(
            "{} is not empty and holds no earlier bench; choose another --dir",
            dir.display()
        );
    }
    if let Ok(m) = Manifest::load(dir) {
        let running = m.running_pids();
        if !running.is_empty() {
            bail!(
                "the bench testnet in {} still runs (pids {running:?}); stop it with `agora-testnet down --dir {}`",
                dir.display(),
                dir.display()
            );
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))
}
