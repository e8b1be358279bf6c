//! A TCP server that accepts connections and never answers: what a stuck
//! or hostile gRPC endpoint looks like to a client, for the tests of the
//! bounds on its waits (`node/tests/cli.rs` includes this file by path).

use std::net::{SocketAddr, TcpListener};

/// Starts the server on a loopback port; it holds every connection it
/// accepts, unanswered, until the process ends.
pub fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the silent server");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => return,
            }
        }
    });
    addr
}
