//! What `agora-testnet` prints on stdout. Unlike `agora`'s answers
//! (`agora_node::client::stdout`, which ends the process when its reader
//! left), a testnet command may own running validators when its reader
//! goes: `agora-testnet up | tee run.log` and a Ctrl-C kills `tee` too, and
//! `println!` would then panic before the nodes were stopped, leaving four
//! orphaned `agora` processes. So output that cannot be delivered is
//! dropped, the command finishes its work (stopping what it started), and
//! `main` then exits with the status a death by SIGPIPE gives (141), as
//! other command-line tools end.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed; later output is not attempted.
static LOST: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout, or drops it (and every later text) once stdout
/// no longer takes it.
pub fn write(text: &str) {
    if LOST.load(Ordering::Relaxed) {
        return;
    }
    if agora_node::client::stdout::try_write(text).is_err() {
        LOST.store(true, Ordering::Relaxed);
    }
}

/// Whether some output could not be written.
pub fn lost() -> bool {
    LOST.load(Ordering::Relaxed)
}

/// `println!` for `agora-testnet` (see the module docs).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;
