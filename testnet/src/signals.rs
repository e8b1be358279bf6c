//! SIGINT and SIGTERM, caught before a command starts its first node.
//!
//! The nodes run in process groups of their own (`procs::spawn_node`), so a
//! terminal's Ctrl-C reaches only `agora-testnet`, which must then stop
//! them. Under the default disposition a signal that arrives before the
//! handler is installed ends `agora-testnet` on the spot, without unwinding,
//! and the nodes it had started keep running with nobody to stop them. So
//! the commands that start nodes install this first, and ask it
//! ([`StopSignals::arrived`]) before leaving nodes to run on.

use std::task::Poll;

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

    /// Whether SIGINT or SIGTERM arrived since the last check, without
    /// waiting for one. The runtime's driver gets a turn first, so that a
    /// signal the OS already delivered is seen.
    pub async fn arrived(&mut self) -> bool {
        tokio::task::yield_now().await;
        std::future::poll_fn(|cx| {
            let int = self.int.poll_recv(cx).is_ready();
            let term = self.term.poll_recv(cx).is_ready();
            Poll::Ready(int || term)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal sent after `install` is queued, seen once by `arrived`, and
    /// does not end the process.
    #[test]
    fn a_signal_after_install_is_queued_not_fatal() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut s = StopSignals::install().unwrap();
        assert!(!rt.block_on(s.arrived()), "nothing was sent yet");
        let me = std::process::id().to_string();
        let st = std::process::Command::new("kill")
            .args(["-s", "TERM", &me])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let seen = loop {
            if rt.block_on(s.arrived()) {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(seen, "SIGTERM was not seen within 10 s");
        assert!(!rt.block_on(s.arrived()), "one signal is reported once");
    }
}
