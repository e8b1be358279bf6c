//! The command line's answers on stdout. A reader that leaves early
//! (`agora query block 10 | head -3`, `grep -m1`) ends the process quietly
//! with the status a death by SIGPIPE gives (141), as other command-line
//! tools end, instead of a panic and a backtrace: Rust ignores SIGPIPE, so
//! `println!` panics on the broken pipe.

use std::io::{ErrorKind, Write};

/// The exit status of a process ended by SIGPIPE (128 + 13).
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes `text` to stdout and flushes it, returning the write's error (a
/// reader that left is `ErrorKind::BrokenPipe`) instead of panicking.
pub fn try_write(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush())
}

/// Writes `text` to stdout; on a closed pipe or another write error, ends
/// the process (nothing else is left to do for a command whose answer
/// cannot be delivered).
pub fn write(text: &str) {
    if let Err(e) = try_write(text) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the command line's answers (see the module docs).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::client::stdout::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
