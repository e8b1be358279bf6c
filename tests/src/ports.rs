//! Loopback ports for test processes that bind them later, chosen where the
//! OS never hands ports out on its own.
//!
//! A port the OS called free a moment ago (bind to port 0, read it, close)
//! comes from the ephemeral range, and the OS hands that range out to every
//! outgoing connection and every other bind to port 0 on the machine. A node
//! started (or restarted after a kill) a few seconds later could find its
//! port taken by another test's gRPC client: CI once failed with "binding
//! metrics on 127.0.0.1:35852: Address already in use". Ports below the
//! ephemeral range are only ever taken by someone who names them, so the
//! ones chosen here are checked free when chosen and stay free unless
//! another test picks the same number.
//!
//! This file is also included by path from `node/tests/support/net.rs`
//! and `node/tests/cli.rs` (their tests cannot depend on this crate), so
//! it uses only `std` and `rand`, and its unit test lives in `lib.rs` (it
//! runs once, not in every binary that includes the file).

// Node tests include this file by path and use only `unused_port`.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

use rand::Rng;

/// The lowest port chosen here: below are the well-known and commonly
/// configured services.
pub const LOWEST: u16 = 10_000;

/// Ports (and port blocks) this process handed out already: a node given
/// one port twice (metrics and gRPC, say) would run without one listener.
static GIVEN: Mutex<Vec<(u16, u16)>> = Mutex::new(Vec::new());

/// The first port of the OS's ephemeral range (Linux's
/// `ip_local_port_range`; 32,768 where it cannot be read, the Linux and
/// IANA-ish default).
pub fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port (TCP, or UDP when `udp`) below the ephemeral range that
/// is free now and was never handed out before by this process.
pub fn unused_port(udp: bool) -> u16 {
    unused_block(1, |p| {
        if udp {
            UdpSocket::bind(("127.0.0.1", p)).is_ok()
        } else {
            TcpListener::bind(("127.0.0.1", p)).is_ok()
        }
    })
}

/// The first of `len` (> 1) consecutive ports below the ephemeral range,
/// a multiple of 10, none handed out before by this process. Whether they
/// are free is the caller's check (`agora-testnet up` checks its own and
/// says "in use").
pub fn unused_base(len: u16) -> u16 {
    assert!(len > 1, "a block of one port is `unused_port`");
    unused_block(len, |_| true)
}

fn unused_block(len: u16, free: impl Fn(u16) -> bool) -> u16 {
    let top = ephemeral_low().saturating_sub(len);
    assert!(
        top > LOWEST + 1_000,
        "the ephemeral port range starts at {}: no room below it for test ports",
        ephemeral_low()
    );
    let mut rng = rand::rng();
    for _ in 0..1_000 {
        let start = if len == 1 {
            rng.random_range(LOWEST..top)
        } else {
            rng.random_range(LOWEST / 10..top / 10) * 10
        };
        let end = start + len;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        let overlaps = given.iter().any(|&(s, e)| start < e && s < end);
        if !overlaps && (start..end).all(&free) {
            given.push((start, end));
            return start;
        }
    }
    panic!("no unused loopback port block of {len} found below {top}");
}
