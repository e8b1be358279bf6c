//! The unit a per-address rule counts and a ban binds to: the network one
//! host commonly holds, not its literal address.
//!
//! An IPv4 host is its address. An IPv6 host is its /64: one machine is
//! commonly given a whole /64 (SLAAC, privacy addresses, a VPS's
//! allocation), so a rule on single IPv6 addresses lets that machine pick a
//! fresh source address per connection, out of 2⁶⁴, and dodge every limit
//! and ban. An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`, as a
//! dual-stack socket reports IPv4 peers) is the IPv4 address. Used by the
//! gRPC per-client limits (`rpc/client_addr.rs`) and by the peer-to-peer
//! bans, stranger slots and handshake places (`transport/score.rs`), which
//! share [`Shares`]: the places of a pool one client may hold.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Bits of an IPv6 address that name the host's network.
pub const IPV6_NETWORK_BITS: u32 = 64;

/// The network `ip` counts as: the IPv4 address itself, or the IPv6 /64 it
/// lies in (its host bits zeroed).
pub fn of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_NETWORK_BITS);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// How many of a pool's places each client (a network, or whatever key `K`
/// a rule counts by) holds, and the most one may.
#[derive(Debug)]
pub struct Shares<K: Copy + Eq + Hash> {
    max: usize,
    held: Mutex<HashMap<K, usize>>,
}

impl<K: Copy + Eq + Hash> Shares<K> {
    /// Shares of at most `max` places per client (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The share of a pool of `pool` places one client may hold: a quarter,
    /// rounded up, so that at least four clients are needed to take the
    /// whole pool and a pool of one is still usable.
    pub fn quarter_of(pool: usize) -> Arc<Self> {
        Self::new(pool.div_ceil(4))
    }

    /// One more place for `client`, unless it holds its share already.
    pub fn take(self: &Arc<Self>, client: K) -> Option<Share<K>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        // No entry is made for a refusal: the map holds only clients that
        // hold places, so it is no larger than the pool.
        let n = held.get(&client).copied().unwrap_or(0);
        if n >= self.max {
            return None;
        }
        held.insert(client, n + 1);
        Some(Share {
            owner: self.clone(),
            client,
        })
    }

    /// Clients holding at least one place.
    pub fn clients(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One place of one client; given back on drop.
#[derive(Debug)]
pub struct Share<K: Copy + Eq + Hash> {
    owner: Arc<Shares<K>>,
    client: K,
}

impl<K: Copy + Eq + Hash> Drop for Share<K> {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.client) {
            debug_assert!(*n > 0, "gave back a place never taken");
            *n -= 1;
            if *n == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpAddr {
        of(s.parse().unwrap())
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64_and_a_mapped_ipv4_is_the_ipv4() {
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(
            net("2001:db8:1:2::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:10.0.0.1"), net("10.0.0.1"));
        assert_ne!(net("10.0.0.1"), net("10.0.0.2"));
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let shares = Shares::quarter_of(5); // 2 each
        let a = net("2001:db8::1");
        let a_other_host = net("2001:db8::2");
        let b = net("10.0.0.1");
        let a1 = shares.take(a).expect("first");
        let _a2 = shares.take(a_other_host).expect("second, same /64");
        assert!(shares.take(a).is_none(), "a third for the same /64");
        assert_eq!(shares.clients(), 1, "a refusal adds no entry");
        let _b1 = shares.take(b).expect("another client is not refused");
        drop(a1);
        assert!(shares.take(a).is_some(), "a place given back is reusable");
        assert_eq!(Shares::<IpAddr>::quarter_of(1).max, 1);
        assert_eq!(Shares::<IpAddr>::quarter_of(4).max, 1);
        assert_eq!(Shares::<IpAddr>::quarter_of(32).max, 8);
    }
}
