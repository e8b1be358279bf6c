//! SIGINT and SIGTERM, caught before a command starts its first node.
//!
//! The nodes run in process groups of their own (`procs::spawn_node`), so a
//! terminal's Ctrl-C reaches only `agora-testnet`, which must then stop
//! them. Under the default disposition a signal that arrives before the
//! handler is installed ends `agora-testnet` on the spot, without unwinding,
//! and the nodes it had started keep running with nobody to stop them. So
//! the commands that start nodes install this first, and wait on it
//! ([`StopSignals::recv`]) while the nodes start and run.

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The two signals that ask a command to stop its nodes and end.
pub struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    /// Installs the handlers; needs a tokio runtime entered on this thread
    /// (`Runtime::enter` or inside `block_on`). From here on the signals
    /// are queued for [`StopSignals::recv`] instead of ending the process.
    pub fn install() -> Result<Self> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
        })
    }

    /// Waits for SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal sent after `install` is queued, seen once by `recv`, and
    /// does not end the process.
    #[test]
    fn a_signal_after_install_is_queued_not_fatal() {
        use std::time::Duration;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut s = StopSignals::install().unwrap();
        let quiet = Duration::from_millis(50);
        let nothing = rt.block_on(tokio::time::timeout(quiet, s.recv()));
        assert!(nothing.is_err(), "nothing was sent yet");
        let me = std::process::id().to_string();
        let st = std::process::Command::new("kill")
            .args(["-s", "TERM", &me])
            .status()
            .unwrap();
        assert!(st.success());
        let seen = rt.block_on(tokio::time::timeout(Duration::from_secs(10), s.recv()));
        assert!(seen.is_ok(), "SIGTERM was not seen within 10 s");
        let again = rt.block_on(tokio::time::timeout(quiet, s.recv()));
        assert!(again.is_err(), "one signal is reported once");
    }
}
