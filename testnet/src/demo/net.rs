//! The demo's node processes: started and stopped one at a time by the
//! steps, all stopped at the end, killed if the demo ends any other way.

use std::path::Path;
use std::process::Child;

use anyhow::{Context, Result, bail};

use crate::manifest::Manifest;
use crate::procs;
use crate::say::say;

/// The processes of the demo's testnet; whatever is still running when it
/// is dropped is killed (the orderly stop is [`Net::stop_all`]).
#[derive(Default)]
pub(super) struct Net {
    /// The testnet, once step 1 generated it.
    pub(super) manifest: Option<Manifest>,
    /// Node i's process, while this run has it running.
    pub(super) children: Vec<Option<Child>>,
}

impl Net {
    /// The testnet's manifest; an error before step 1 wrote it.
    pub(super) fn m(&self) -> Result<&Manifest> {
        self.manifest.as_ref().context("the testnet is not started")
    }

    /// Fails if a node process exited, naming its log.
    pub(super) fn check_alive(&mut self) -> Result<()> {
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

    /// Stops node `i` (SIGTERM, then SIGKILL after a grace period) and
    /// clears its pid in testnet.json.
    pub(super) fn stop_one(&mut self, i: usize) -> Result<()> {
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

    /// Starts node `i` and records its pid in testnet.json.
    pub(super) fn start_one(&mut self, agora: &Path, i: usize) -> Result<u32> {
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
    pub(super) fn stop_all(&mut self) {
        let Some(m) = self.manifest.as_mut() else {
            return;
        };
        let mut targets = procs::running(&mut self.children, &m.nodes);
        let count = targets.len();
        match procs::stop_all(&mut targets, procs::TERM_GRACE) {
            Ok(killed) if killed.is_empty() => say!("stopped {count} nodes"),
            Ok(killed) => say!("stopped {count} nodes (SIGKILL needed for {killed:?})"),
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
