//! Node processes: finding the `agora` binary, starting `agora start` with
//! its log file, and stopping processes by pid (SIGTERM, then SIGKILL after a
//! deadline). Signals go through kill(1) so that the crate needs no libc.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a node gets to stop after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);

/// The node binary: `$AGORA_BIN`, else `agora` next to this executable,
/// else this executable itself (its hidden `start` subcommand runs a node
/// exactly as `agora start` does).
pub fn find_agora() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("AGORA_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("AGORA_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locating agora-testnet's own executable")?;
    let dir = exe
        .parent()
        .context("agora-testnet's executable has no parent directory")?;
    let p = dir.join("agora");
    if p.is_file() { Ok(p) } else { Ok(exe) }
}

/// Starts `agora start --home HOME`, appending its output to `log`. The node
/// gets its own process group so that a terminal's Ctrl-C reaches only
/// agora-testnet, which then stops the nodes in order (and so that detached
/// nodes outlive the terminal).
pub fn spawn_node(agora: &Path, home: &Path, log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("duplicating {}", log.display()))?;
    let mut cmd = Command::new(agora);
    cmd.arg("start")
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd.spawn().with_context(|| {
        format!(
            "starting {} start --home {}",
            agora.display(),
            home.display()
        )
    })
}

/// Sends `signal` (`TERM`, `KILL`, ...) to `pid`.
pub fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let out = Command::new("kill")
        .arg("-s")
        .arg(signal)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .context("running kill(1)")?;
    if !out.status.success() && is_running(pid, None) {
        bail!(
            "kill -s {signal} {pid} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether `pid` is a live (not zombie) process; with `home`, also that its
/// command line names that home, so a recycled pid is not mistaken for a node.
pub fn is_running(pid: u32, home: Option<&Path>) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the last ')' (the command name may hold parentheses).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    match home {
        None => true,
        Some(h) => std::fs::read(proc_dir.join("cmdline"))
            .map(|c| {
                let want = h.as_os_str().as_encoded_bytes();
                c.split(|b| *b == 0).any(|arg| arg == want)
            })
            .unwrap_or(false),
    }
}

/// A process to stop: its pid, its home (to recognise it), and the `Child`
/// when this process started it (so that it is reaped, not left a zombie).
pub struct Target<'a> {
    /// Process id.
    pub pid: u32,
    /// Home directory named on its command line.
    pub home: &'a Path,
    /// The child handle, if ours.
    pub child: Option<&'a mut Child>,
}

/// Stop targets for the running ones among `children`, one slot per node
/// of `nodes` (a stopped node's slot is None).
pub fn running<'a>(
    children: &'a mut [Option<Child>],
    nodes: &'a [crate::manifest::NodeEntry],
) -> Vec<Target<'a>> {
    children
        .iter_mut()
        .zip(nodes)
        .filter_map(|(c, n)| {
            c.as_mut().map(|c| Target {
                pid: c.id(),
                home: &n.home,
                child: Some(c),
            })
        })
        .collect()
}

impl Target<'_> {
    fn alive(&mut self) -> bool {
        if let Some(c) = self.child.as_mut() {
            // try_wait reaps an exited child; an error means it is gone.
            return matches!(c.try_wait(), Ok(None));
        }
        is_running(self.pid, Some(self.home))
    }
}

/// Stops every target: SIGTERM to all, wait up to `grace`, SIGKILL the rest,
/// and wait for them too. Returns the pids that had to be killed.
pub fn stop_all(targets: &mut [Target<'_>], grace: Duration) -> Result<Vec<u32>> {
    // A failed SIGTERM is reported but not fatal: SIGKILL follows anyway.
    for t in targets.iter_mut() {
        if t.alive()
            && let Err(e) = send_signal(t.pid, "TERM")
        {
            eprintln!("warning: {e:#}");
        }
    }
    let wait = |targets: &mut [Target<'_>], deadline: Instant| {
        while Instant::now() < deadline {
            if targets.iter_mut().all(|t| !t.alive()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        targets.iter_mut().all(|t| !t.alive())
    };
    if wait(targets, Instant::now() + grace) {
        return Ok(Vec::new());
    }
    let mut killed = Vec::new();
    for t in targets.iter_mut() {
        if t.alive() {
            // Our own children are killed directly, without kill(1).
            match t.child.as_mut() {
                Some(c) => c.kill().with_context(|| format!("SIGKILL to {}", t.pid))?,
                None => send_signal(t.pid, "KILL")?,
            }
            killed.push(t.pid);
        }
    }
    if !wait(targets, Instant::now() + Duration::from_secs(5)) {
        bail!("processes still running after SIGKILL: {killed:?}");
    }
    Ok(killed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_all_terminates_and_reaps_a_child() {
        let dir = std::env::temp_dir();
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id();
        assert!(is_running(pid, None));
        // Its command line does not name this directory: not mistaken for a node.
        assert!(!is_running(pid, Some(&dir)));
        let killed = stop_all(
            &mut [Target {
                pid,
                home: &dir,
                child: Some(&mut child),
            }],
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(killed.is_empty(), "sleep ignores no SIGTERM");
        assert!(!is_running(pid, None));
    }
}
