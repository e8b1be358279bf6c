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
//! bans and stranger slots (`transport/score.rs`).

use std::net::{IpAddr, Ipv6Addr};

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
}
