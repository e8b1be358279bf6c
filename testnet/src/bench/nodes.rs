//! The bench's node processes: started from a manifest, checked while the
//! bench runs, one stopped and restarted for catch-up, and all stopped when
//! the bench ends, fails or is interrupted.

use std::path::PathBuf;
use std::process::Child;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use super::POLL;
use crate::manifest::Manifest;
use crate::procs;

/// The node processes, stopped on drop whatever happens.
pub struct Nodes {
    /// The testnet; each node's `pid` is kept up to date.
    pub m: Manifest,
    /// The `agora` binary the nodes run.
    agora: PathBuf,
    /// Node `i`'s process while it runs.
    children: Vec<Option<Child>>,
}

impl Nodes {
    /// Starts every node of `m` with `agora` and records their pids in the
    /// manifest file.
    pub fn start(m: Manifest, agora: PathBuf) -> Result<Self> {
        let mut nodes = Nodes {
            m,
            agora,
            children: Vec::new(),
        };
        for i in 0..nodes.m.nodes.len() {
            nodes.spawn(i)?;
        }
        nodes.m.save()?;
        Ok(nodes)
    }

    /// Starts node `i` (again after [`Nodes::stop_one`]) and notes its pid in `m`.
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        let n = &mut self.m.nodes[i];
        let c = procs::spawn_node(&self.agora, &n.home, &n.log)?;
        n.pid = Some(c.id());
        if self.children.len() <= i {
            self.children.resize_with(i + 1, || None);
        }
        self.children[i] = Some(c);
        Ok(())
    }

    /// Node `i`'s pid, if this bench started it and has not stopped it.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children.get(i)?.as_ref().map(Child::id)
    }

    /// Fails if a node that should run has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(c) = c
                && let Ok(Some(st)) = c.try_wait()
            {
                bail!(
                    "{} exited: {st} (see {})",
                    self.m.nodes[i].moniker,
                    self.m.nodes[i].log.display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to node `i`, SIGKILL after the grace period; waits for it.
    pub async fn stop_one(&mut self, i: usize) -> Result<()> {
        let Some(mut c) = self.children.get_mut(i).and_then(Option::take) else {
            return Ok(());
        };
        procs::send_signal(c.id(), "TERM")?;
        let deadline = Instant::now() + procs::TERM_GRACE;
        loop {
            if c.try_wait().ok().flatten().is_some() {
                break;
            }
            if Instant::now() >= deadline {
                c.kill().with_context(|| format!("SIGKILL to {}", c.id()))?;
                let _ = c.wait();
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.m.nodes[i].pid = None;
        Ok(())
    }

    /// Stops every running node (SIGTERM, then SIGKILL) and records it.
    pub fn stop_all(&mut self) -> Result<()> {
        let mut targets = procs::running(&mut self.children, &self.m.nodes);
        if targets.is_empty() {
            return Ok(());
        }
        let count = targets.len();
        let r = procs::stop_all(&mut targets, procs::TERM_GRACE);
        drop(targets);
        match &r {
            Ok(k) if k.is_empty() => eprintln!("bench: stopped {count} nodes"),
            Ok(k) => eprintln!("bench: stopped {count} nodes (SIGKILL for {k:?})"),
            Err(e) => eprintln!("bench: error stopping nodes: {e:#}"),
        }
        if r.is_ok() {
            self.children.iter_mut().for_each(|c| *c = None);
            self.m.nodes.iter_mut().for_each(|n| n.pid = None);
            let _ = self.m.save();
        }
        r.map(|_| ())
    }

    /// The last lines of every node's log, for error reports.
    pub fn log_tails(&self) -> String {
        let mut s = String::new();
        for n in &self.m.nodes {
            s.push_str(&format!("--- {} ({}):\n", n.moniker, n.log.display()));
            s.push_str(&n.log_tail(5));
        }
        s
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}
