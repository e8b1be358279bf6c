//! The node's log output: `RUST_LOG` filters (default `info`); plain text,
//! or one JSON object per line.
//!
//! Colour codes only for a person at a terminal: a testnet, a service
//! manager or `agora start > node.log` writes to a file, where escape codes
//! break `grep` and log shippers. `NO_COLOR` (set, not empty) turns them off
//! at a terminal too.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether the text log may colour its output.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the process's log subscriber, writing to stdout.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(colour()).init();
    }
}
